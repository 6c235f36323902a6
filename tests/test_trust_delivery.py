"""Issue 9, findings 4 to 6 on the real redis-server: restarts are no attempts, entries
trimmed before delivery are counted and reported, dead letters are written once, same-batch
duplicates are purged once, hostile letters are listed escaped, dropped on demand, and no
command prints a password."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import random
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.cli._coordinator import coordinator as coordinator_command
from damestoilet_contracts.logging import record_fields
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    RedisPurgeTarget,
    RedisStreamBus,
    Verifier,
    serve_metrics,
)
from damestoilet_contracts.runtime._redact import redact
from damestoilet_contracts.runtime.redis._trust import attempts_key, dlq_index_key, lost_key
from tests.runtime_support import KeysChanged
from tests.test_coordinator_process import STREAM as PROC_STREAM
from tests.test_coordinator_process import Proc, _emit_with_keys, _wait

STREAM = "events"
RENAMED = '{"category_id": "c", "old_name": "a", "new_name": "b"}'
FAST = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01)
GROUP = FAST.group


def _bus(client: redis.Redis, cls: type[RedisStreamBus] = RedisStreamBus) -> RedisStreamBus:
    return cls(client, stream=STREAM, group=GROUP, consumer=FAST.consumer)


def _coordinator(
    client: redis.Redis,
    config: CoordinatorConfig = FAST,
    bus: RedisStreamBus | None = None,
) -> Coordinator:
    return Coordinator(bus or _bus(client), RedisPurgeTarget(client), client, config)


def _letters(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.xrange(f"{STREAM}:dlq")]


def _emit(client: redis.Redis, keys: Sequence[str], *, maxlen: int | None = None) -> None:
    client.mset(dict.fromkeys(keys, 1))
    with Emitter(client, source="//tests", stream=STREAM, maxlen=maxlen) as emitter:
        for start in range(0, len(keys), 500):
            emitter.emit_many([KeysChanged(keys=[k]) for k in keys[start : start + 500]])


# -- finding 4: restarts are no attempts ----------------------------------------------------------


def test_twenty_restarts_re_reading_an_entry_do_not_dead_letter_it(
    redis_client: redis.Redis,
) -> None:
    """Each restart re-reads the consumer's own pending entries, and Redis counts a delivery
    each time; the old coordinator dead-lettered at 6, its purge never tried."""
    _emit(redis_client, ["a", "b"])
    bus = _bus(redis_client)
    bus.ensure_group()
    bus.read_new(10, 0)
    for _ in range(20):
        bus.read_pending("0", 10)  # a restart that died before its purge
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    assert _letters(redis_client) == []
    assert redis_client.exists("a", "b") == 0
    assert worker.stats.events == 2


def test_failed_attempts_are_counted_across_restarts_and_forgotten_once_settled(
    redis_client: redis.Redis,
) -> None:
    class Failing:
        def purge_stage(self, ops: object) -> None:
            raise RuntimeError("target down")

    _emit(redis_client, ["a"])
    config = dataclasses.replace(FAST, max_deliveries=3, retry_base_s=10, retry_max_s=10)
    for _ in range(2):  # two processes, one failed attempt each, then a stop
        worker = Coordinator(_bus(redis_client), Failing(), redis_client, config)  # type: ignore[arg-type]
        worker.bus.ensure_group()
        worker.step()
        worker.step()
    assert redis_client.hvals(attempts_key(STREAM, GROUP)) == [b"2"]
    worker = Coordinator(_bus(redis_client), Failing(), redis_client, config)  # type: ignore[arg-type]
    worker.run(stop_when_idle=True)
    [letter] = _letters(redis_client)
    assert letter[b"dlq_reason"] == b"failed 3 attempts; last error: RuntimeError: target down"
    assert redis_client.exists(attempts_key(STREAM, GROUP)) == 0


def test_a_crash_loop_of_kill_9s_dead_letters_nothing(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Ten SIGKILLs at random moments with --max-deliveries 1: every re-read after a kill
    used to count as the one delivery allowed, and its event was dead-lettered unpurged."""
    keys = _emit_with_keys(redis_client, 20_000)
    rng = random.Random(9)
    interrupted = 0
    procs: list[Proc] = []
    try:
        for i in range(10):
            proc = Proc(
                redis_url, tmp_path / f"{i}.log", "--batch", "100", "--consumer", "loop",
                "--max-deliveries", "1",
            )  # fmt: skip
            procs.append(proc)
            time.sleep(rng.uniform(0.05, 0.4))
            assert proc.stop(signal.SIGKILL) == -signal.SIGKILL
            interrupted += int(redis_client.xpending(PROC_STREAM, GROUP)["pending"]) > 0
        last = Proc(redis_url, tmp_path / "last.log", "--consumer", "loop")
        procs.append(last)

        def drained() -> bool:
            [g] = redis_client.xinfo_groups(PROC_STREAM)
            return g["pending"] == 0 and g["lag"] == 0

        _wait(drained, 120)
        assert last.stop() == 0
    finally:
        for proc in procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait()
    assert interrupted > 0, "no kill caught an entry in hand: nothing was tested"
    assert redis_client.xlen(f"{PROC_STREAM}:dlq") == 0
    left = sum(redis_client.exists(*keys[i : i + 1000]) for i in range(0, len(keys), 1000))
    assert left == 0


# -- finding 5: nothing is lost silently when the stream is trimmed --------------------------------


def test_entries_trimmed_before_delivery_are_counted_logged_and_shown_by_verify(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Coordinator stopped, 2,000 events emitted with maxlen 500: the old coordinator purged
    what was left and counted no loss at all."""
    _bus(redis_client).ensure_group()
    keys = [f"k:{i}" for i in range(2000)]
    _emit(redis_client, keys, maxlen=500)
    info = redis_client.xinfo_stream(STREAM)
    trimmed = info["entries-added"] - info["length"]
    assert trimmed >= 1000
    with caplog.at_level(logging.ERROR, logger="damestoilet.coordinator"):
        worker = _coordinator(redis_client)
        worker.run(stop_when_idle=True)
    assert worker.stats.lost == trimmed
    assert worker.stats.events == info["length"]
    assert redis_client.exists(*keys[-info["length"] :]) == 0  # what was left is purged
    [line] = [record_fields(r) for r in caplog.records if r.getMessage() == "lost"]
    assert line["count"] == trimmed
    assert line["before"] == info["recorded-first-entry-id"].decode()
    # Counted once, in Redis, for every consumer of the group and for `verify`.
    assert _coordinator(redis_client).bus.lost_total().total == trimmed  # type: ignore[attr-defined]
    _coordinator(redis_client, dataclasses.replace(FAST, consumer="c2")).run(stop_when_idle=True)
    assert int(redis_client.hget(lost_key(STREAM, GROUP), "total") or 0) == trimmed
    report = Verifier(redis_client).run(STREAM, sample=10, delay=0)
    assert report.lost == {GROUP: trimmed}


def test_a_trim_while_the_coordinator_runs_is_counted_once(redis_client: redis.Redis) -> None:
    _emit(redis_client, [f"a:{i}" for i in range(300)])
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    assert worker.stats.lost == 0
    _emit(redis_client, [f"b:{i}" for i in range(3000)], maxlen=1000)
    info = redis_client.xinfo_stream(STREAM)
    worker.run(stop_when_idle=True)
    assert worker.stats.lost == 3000 - info["length"]  # the first 300 were read in time


def test_lost_pending_entries_and_the_verify_command_exit_1(
    redis_client: redis.Redis, redis_url: str
) -> None:
    _bus(redis_client).ensure_group()
    _emit(redis_client, [f"k:{i}" for i in range(1000)], maxlen=200)
    _coordinator(redis_client).run(stop_when_idle=True)
    result = CliRunner().invoke(
        main, ["verify", "--redis", redis_url, "--stream", STREAM, "--delay", "0"]
    )
    assert result.exit_code == 1
    assert "trimmed from the stream before a group read them" in result.output


# -- finding 6 ----------------------------------------------------------------------------------


class _KilledError(Exception):
    """Stands for a SIGKILL between the dead letter and the ack."""


class _DiesBeforeAck(RedisStreamBus):
    def ack(self, ids: Sequence[str]) -> None:
        raise _KilledError


def test_a_kill_between_dead_letter_and_ack_gives_one_letter(redis_client: redis.Redis) -> None:
    redis_client.xadd(STREAM, {b"junk": b"1"})
    with pytest.raises(_KilledError):
        _coordinator(redis_client, bus=_bus(redis_client, _DiesBeforeAck)).run(stop_when_idle=True)
    assert int(redis_client.xpending(STREAM, GROUP)["pending"]) == 1
    _coordinator(redis_client).run(stop_when_idle=True)
    assert len(_letters(redis_client)) == 1
    assert int(redis_client.xpending(STREAM, GROUP)["pending"]) == 0
    assert redis_client.hlen(dlq_index_key(f"{STREAM}:dlq")) == 1


def test_duplicates_of_one_id_in_one_batch_are_purged_and_counted_once(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("a", 1)
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        emitter.emit(KeysChanged(keys=["a"]))
    [(_, fields)] = redis_client.xrange(STREAM)
    redis_client.xadd(STREAM, fields)
    redis_client.xadd(STREAM, fields)
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    assert worker.stats.events == 1
    assert worker.stats.duplicates_skipped == 2
    assert worker.stats.keys_purged["key"] == 1
    assert redis_client.exists("a") == 0


def test_dlq_list_shows_hostile_letters_escaped(redis_client: redis.Redis, redis_url: str) -> None:
    from tests.test_trust_decode import nested_blob, v2_blob, v2_head

    redis_client.xadd(STREAM, {b"e": nested_blob(3000)})
    redis_client.xadd(STREAM, {b"e": v2_blob(v2_head(event_id="\ud800abc"))})
    redis_client.xadd(STREAM, {b"v": b"1", b"id": b"\x1b[2Jgone", b"type": b"t\x07"})
    _coordinator(redis_client).run(stop_when_idle=True)
    assert len(_letters(redis_client)) == 3
    result = CliRunner().invoke(main, ["dlq", "list", "--redis", redis_url, "--stream", STREAM])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[2Jgone" in result.output
    assert "\\ud800abc" in result.output
    as_json = CliRunner().invoke(
        main, ["dlq", "list", "--redis", redis_url, "--stream", STREAM, "--json"]
    )
    assert as_json.exit_code == 0
    assert [json.loads(line)["id"] for line in as_json.output.splitlines()][2] == "\x1b[2Jgone"


def test_dlq_drop_removes_letters_by_id_or_all(redis_client: redis.Redis, redis_url: str) -> None:
    for i in range(3):
        redis_client.xadd(STREAM, {b"junk": str(i).encode()})
    _coordinator(redis_client).run(stop_when_idle=True)
    first, second, third = [i.decode() for i, _ in redis_client.xrange(f"{STREAM}:dlq")]
    args = ["dlq", "drop", "--redis", redis_url, "--stream", STREAM]
    result = CliRunner().invoke(main, [*args, "--id", second])
    assert (result.exit_code, result.stdout) == (0, f"{second}\n")
    assert [i.decode() for i, _ in redis_client.xrange(f"{STREAM}:dlq")] == [first, third]
    assert CliRunner().invoke(main, [*args, "--id", "1-1"]).exit_code == 1
    assert CliRunner().invoke(main, args).exit_code == 2
    assert CliRunner().invoke(main, [*args, "--all"]).exit_code == 0
    assert redis_client.xlen(f"{STREAM}:dlq") == 0
    assert redis_client.exists(dlq_index_key(f"{STREAM}:dlq")) == 0


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://app:s3cret@cache:6379/0", "redis://app:***@cache:6379/0"),
        ("rediss://:s3cret@cache/0 and nats://u:p@x", "rediss://:***@cache/0 and nats://u:***@x"),
        ("redis://s3cret@cache", "redis://***@cache"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_urls_lose_their_passwords(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "command",
    [
        ["dlq", "list", "--redis", "redis://app:s3cret@127.0.0.1:1/0"],
        ["dlq", "list", "--redis", "redis://app:s3cret@127.0.0.1:1/x"],
        ["emit", "schemas", "catalog.v1.CategoryRenamed", "--redis",
         "redis://app:s3cret@127.0.0.1:1/0", "--json", RENAMED],
        ["coordinator", "--redis", "redis://app:s3cret@127.0.0.1:1/0"],
        ["verify", "--redis", "redis://app:s3cret@127.0.0.1:1/0", "--delay", "0"],
    ],
)  # fmt: skip
def test_no_command_prints_a_password(command: list[str]) -> None:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert "127.0.0.1" in result.output  # the failure is about the server, not the payload
    assert "s3cret" not in result.output


def test_metrics_bind_loopback_unless_told_otherwise() -> None:
    [addr] = [p for p in coordinator_command.params if p.name == "metrics_addr"]
    assert addr.default == "127.0.0.1"
    assert inspect.signature(serve_metrics).parameters["addr"].default == "127.0.0.1"


def test_trimming_by_the_slowest_group_removes_only_what_every_group_acknowledged(
    redis_client: redis.Redis, redis_url: str
) -> None:
    from damestoilet_contracts.runtime import trim_acknowledged

    _emit(redis_client, [f"k:{i}" for i in range(1000)])
    fast = _coordinator(redis_client)
    fast.run(stop_when_idle=True)  # the coordinator's group read and acked all 1,000
    slow = RedisStreamBus(redis_client, stream=STREAM, group="slow", consumer="s")
    redis_client.xgroup_create(STREAM, "slow", id="0")
    taken = slow.read_new(300, 0)  # the slow group has read 300 and acked 100 of them
    slow.ack([e.id for e in taken[:100]])
    assert trim_acknowledged(redis_client, STREAM) == 100
    assert redis_client.xrange(STREAM, count=1)[0][0].decode() == taken[100].id
    result = CliRunner().invoke(main, ["trim", "--redis", redis_url, "--stream", STREAM])
    assert (result.exit_code, result.output) == (0, f"trimmed 0 entries of {STREAM}\n")
    slow.ack([e.id for e in taken[100:]])
    assert trim_acknowledged(redis_client, STREAM) == 199  # below the last delivered id
    assert _coordinator(redis_client).bus.lost_total().total == 0  # type: ignore[attr-defined]
