"""Issue 9: optional HMAC signing with key rotation, and a stop that interrupts a long stage
between round trips; on the real redis-server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisPurgeTarget,
    RedisStreamBus,
    SigningKeys,
)
from damestoilet_contracts.runtime._signing import signed_bytes
from damestoilet_contracts.runtime.redis._trust import attempts_key
from tests.runtime_support import KeysChanged

STREAM = "signed-events"
FAST = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01)
OLD = SigningKeys(b"old-key-0123456789abcdef")
NEW = SigningKeys(b"new-key-0123456789abcdef", accepted=(OLD.key,))


def _run(client: redis.Redis, signing: SigningKeys | None) -> Coordinator:
    bus = RedisStreamBus(client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    worker = Coordinator(bus, RedisPurgeTarget(client), client, FAST, signing=signing)
    worker.run(stop_when_idle=True)
    return worker


def _reasons(client: redis.Redis) -> list[str]:
    return [f[b"dlq_reason"].decode() for _, f in client.xrange(f"{STREAM}:dlq")]


def _emit(client: redis.Redis, key: str, signing: SigningKeys | None) -> None:
    client.set(key, 1)
    with Emitter(client, source="//tests", stream=STREAM, signing=signing) as emitter:
        emitter.emit(KeysChanged(keys=[key]))


def test_signed_entries_are_purged_and_decode_without_a_key_too(redis_client: redis.Redis) -> None:
    _emit(redis_client, "a", NEW)
    [(_, fields)] = redis_client.xrange(STREAM)
    assert set(fields) == {b"e", b"s"} and fields[b"s"].startswith(b"v1=")
    assert NEW.check(fields) is None
    Envelope.from_fields(fields)  # a reader without keys ignores `s`
    assert _run(redis_client, NEW).stats.events == 1
    assert redis_client.exists("a") == 0


def test_unsigned_forged_and_foreign_entries_are_dead_lettered(redis_client: redis.Redis) -> None:
    _emit(redis_client, "unsigned", None)
    _emit(redis_client, "foreign", SigningKeys(b"someone-else-0123456789"))
    _emit(redis_client, "tampered", NEW)
    [*_, (entry_id, fields)] = redis_client.xrange(STREAM)
    forged = dict(fields)
    forged[b"e"] = forged[b"e"].replace(b"tampered", b"victim00")
    redis_client.xdel(STREAM, entry_id)
    redis_client.xadd(STREAM, forged)
    redis_client.set("victim00", 1)
    worker = _run(redis_client, NEW)
    assert worker.stats.events == 0
    assert _reasons(redis_client) == [
        "signature: the entry is not signed and this coordinator requires signatures",
        "signature: the entry's signature does not match any accepted key",
        "signature: the entry's signature does not match any accepted key",
    ]
    assert redis_client.exists("unsigned", "foreign", "victim00") == 3


def test_rotation_accepts_the_previous_key_until_it_is_dropped(redis_client: redis.Redis) -> None:
    _emit(redis_client, "by-old", OLD)  # an emitter not yet rotated
    _emit(redis_client, "by-new", NEW)
    assert _run(redis_client, NEW).stats.events == 2
    _emit(redis_client, "old-after-rotation", OLD)
    assert _run(redis_client, SigningKeys(NEW.key)).stats.events == 0
    assert _reasons(redis_client) == [
        "signature: the entry's signature does not match any accepted key"
    ]


def test_version_1_entries_are_signed_over_every_field() -> None:
    env = Envelope.new(
        type="t.v1.T", data=b"x", plan=None, source="//s", datacontenttype="avro/binary"
    )
    fields: dict[str, bytes] = env.to_fields()
    fields["s"] = NEW.sign(fields)
    assert NEW.check(fields) is None
    fields["type"] = b"t.v1.Other"
    assert NEW.check(fields) == "the entry's signature does not match any accepted key"
    assert signed_bytes({b"e": b"blob", b"s": b"x"}) == b"blob"


def test_keys_come_from_files_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "new").write_bytes(NEW.key + b"\n")
    (tmp_path / "old").write_bytes(OLD.key)
    keys = SigningKeys.from_files([tmp_path / "new", tmp_path / "old"])
    assert keys == NEW
    env = {"DAMESTOILET_SIGNING_KEY": NEW.key.decode()}
    assert SigningKeys.from_env(env) == SigningKeys(NEW.key)
    env["DAMESTOILET_SIGNING_KEY_PREVIOUS"] = OLD.key.decode()
    assert SigningKeys.from_env(env) == NEW
    assert SigningKeys.from_env({}) is None
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SigningKeys(b"short")


def test_emit_signs_with_a_key_file_and_a_short_key_exits_1(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "key").write_bytes(NEW.key)
    payload = '{"category_id": "c1", "old_name": "a", "new_name": "b"}'
    args = ["emit", "schemas", "catalog.v1.CategoryRenamed", "--redis", redis_url,
            "--stream", STREAM, "--json", payload]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--signing-key-file", str(tmp_path / "key")])
    assert result.exit_code == 0, result.output
    [(_, fields)] = redis_client.xrange(STREAM)
    assert NEW.check(fields) is None
    (tmp_path / "short").write_bytes(b"short")
    result = CliRunner().invoke(main, [*args, "--signing-key-file", str(tmp_path / "short")])
    assert result.exit_code == 1
    assert "at least 16 bytes" in result.output


# -- a stop interrupts a long stage ----------------------------------------------------------------


def test_a_stop_interrupts_a_long_prefix_stage_and_leaves_the_event_pending(
    redis_client: redis.Redis,
) -> None:
    """One event whose prefix covers nothing of 200,000 keys used to hold the batch, and a
    SIGTERM, until the whole keyspace was scanned."""
    for start in range(0, 200_000, 20_000):
        redis_client.mset({f"other:{i}": 1 for i in range(start, start + 20_000)})
    redis_client.set("p:1", 1)
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        emitter.emit(KeysChanged(prefixes=["p:"]))
    bus = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    target = RedisPurgeTarget(redis_client, scan_count=100)
    worker = Coordinator(bus, target, redis_client, FAST)
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + 10
    while not redis_client.xpending(STREAM, FAST.group)["pending"]:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.05)  # well inside the scan of 2,000 round trips
    asked = time.monotonic()
    worker.stop()
    runner.join(10)
    assert not runner.is_alive()
    assert time.monotonic() - asked < 1.0
    assert redis_client.xpending(STREAM, FAST.group)["pending"] == 1  # retried later
    assert redis_client.exists(attempts_key(STREAM, FAST.group)) == 0  # no failed attempt
    assert worker.stats.retries == 0 and worker.stats.dead_lettered == 0
    again = Coordinator(bus, RedisPurgeTarget(redis_client), redis_client, FAST)
    again.run(stop_when_idle=True)
    assert redis_client.exists("p:1") == 0
    assert redis_client.xpending(STREAM, FAST.group)["pending"] == 0
