"""Flush agents against the real redis-server: target filtering, a consumer group (and dedup)
of their own, the on_purge hook, L1 listeners, and the ``damestoilet agent`` command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    DEFAULT_GROUP,
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    FlushAgent,
    L1Cache,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
    agent_group,
)
from damestoilet_contracts.runtime.redis._layout import done_key, tag_key
from tests.conftest import SCHEMAS

pytestmark = pytest.mark.redis

STREAM = "events"
TYPE = "test.v1.PriceChanged"
GRAPH = str(SCHEMAS / "flush-graph.yaml")


def _config(**overrides: object) -> CoordinatorConfig:
    settings: dict[str, object] = {
        "stream": STREAM,
        "consumer": "c1",
        "block_ms": 20,
        "retry_base_s": 0.01,
        "retry_max_s": 0.02,
    }
    settings.update(overrides)
    return CoordinatorConfig(**settings)  # type: ignore[arg-type]


def _envelope(*stages: Sequence[FlushOp]) -> Envelope:
    plan = Plan(TYPE, tuple(tuple(s) for s in stages))
    return Envelope.new(
        type=TYPE, data=b"", plan=plan, source="//tests", datacontenttype="avro/binary"
    )


def _emit(client: redis.Redis, *envelopes: Envelope) -> list[str]:
    return Emitter(client, source="//tests", stream=STREAM).emit_envelopes(list(envelopes))


def _pending(client: redis.Redis, group: str) -> int:
    return int(client.xpending(STREAM, group)["pending"])


def _mixed_plan() -> Envelope:
    """Stage 1: a default key, a pricing key, prefix and tag; stage 2: a derived key of each."""
    return _envelope(
        [
            FlushOp("key", "default", "catalog:product:p1"),
            FlushOp("key", "pricing", "pricing:s1:p1"),
            FlushOp("prefix", "pricing", "pricing:list:"),
            FlushOp("tag", "pricing", "price-tag"),
            FlushOp("prefix", "default", "catalog:listing:"),
        ],
        [
            FlushOp("key", "default", "page:product:p1"),
            FlushOp("key", "pricing", "pricing:page:p1"),
        ],
    )


PRICING_KEYS = ["pricing:s1:p1", "pricing:list:1", "pricing:list:2", "tagged", "pricing:page:p1"]
DEFAULT_KEYS = ["catalog:product:p1", "catalog:listing:1", "page:product:p1"]


def _fill(client: redis.Redis) -> None:
    client.mset(dict.fromkeys(PRICING_KEYS + DEFAULT_KEYS + ["pricing:other"], b"1"))
    client.sadd(tag_key("price-tag"), "tagged")


def _existing(client: redis.Redis, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if client.exists(k)]


def test_agent_purges_only_its_targets_and_leaves_default_keys(redis_client: redis.Redis) -> None:
    _fill(redis_client)
    _emit(redis_client, _mixed_plan())
    worker = FlushAgent(redis_client, {"pricing"}, _config())
    worker.run(stop_when_idle=True)
    assert _existing(redis_client, PRICING_KEYS) == []
    assert _existing(redis_client, DEFAULT_KEYS) == DEFAULT_KEYS
    assert redis_client.exists("pricing:other") == 1
    assert worker.group == "damestoilet-agent-pricing"
    assert worker.stats.events == 1
    assert worker.stats.keys_purged == {"key": 2, "prefix": 2, "tag": 1}
    assert _pending(redis_client, worker.group) == 0


def test_default_group_is_named_after_the_sorted_targets() -> None:
    assert agent_group(["pricing", "catalog", "pricing"]) == "damestoilet-agent-catalog,pricing"


def test_agent_never_joins_the_coordinators_group(redis_client: redis.Redis) -> None:
    implicit = FlushAgent(redis_client, ["pricing"], _config(group=DEFAULT_GROUP))
    explicit = FlushAgent(redis_client, ["pricing"], _config(group="team-pricing"))
    assert implicit.group == "damestoilet-agent-pricing"
    assert explicit.group == "team-pricing"


def test_agent_refuses_empty_targets(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="target names"):
        FlushAgent(redis_client, [], _config())
    with pytest.raises(ValueError, match="target names"):
        FlushAgent(redis_client, ["pricing", ""], _config())


def test_two_agents_in_different_groups_each_process_every_event(
    redis_client: redis.Redis,
) -> None:
    """The second agent runs after the first marked every event done for its own group."""
    _fill(redis_client)
    envelopes = [_mixed_plan() for _ in range(5)]
    _emit(redis_client, *envelopes)
    catalog = FlushAgent(redis_client, ["default"], _config())
    catalog.run(stop_when_idle=True)
    assert _existing(redis_client, DEFAULT_KEYS) == []
    assert len(_existing(redis_client, PRICING_KEYS)) == len(PRICING_KEYS)
    pricing = FlushAgent(redis_client, ["pricing"], _config())
    pricing.run(stop_when_idle=True)
    assert _existing(redis_client, PRICING_KEYS) == []
    for worker in (catalog, pricing):
        assert worker.stats.events == 5
        assert worker.stats.duplicates_skipped == 0
        assert _pending(redis_client, worker.group) == 0
        assert all(redis_client.exists(done_key(e.id, worker.group)) for e in envelopes)


def test_agent_and_coordinator_each_purge_after_the_other_marked_done(
    redis_client: redis.Redis,
) -> None:
    _fill(redis_client)
    _emit(redis_client, _mixed_plan())
    config = _config()
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c1")
    target = RedisPurgeTarget(redis_client, targets={"default"})
    central = Coordinator(bus, target, RedisDoneStore(redis_client), config)
    central.run(stop_when_idle=True)
    pricing = FlushAgent(redis_client, ["pricing"], _config())
    pricing.run(stop_when_idle=True)
    assert _existing(redis_client, DEFAULT_KEYS + PRICING_KEYS) == []
    assert central.stats.events == pricing.stats.events == 1


def test_a_redelivered_event_is_skipped_once_per_group(redis_client: redis.Redis) -> None:
    env = _envelope([FlushOp("key", "pricing", "k")])
    redis_client.set("k", 1)
    _emit(redis_client, env)
    first = FlushAgent(redis_client, ["pricing"], _config(group="a"))
    first.run(stop_when_idle=True)
    redis_client.set("k", b"refilled")
    _emit(redis_client, env)  # the same id again (at-least-once emit, or a DLQ replay)
    first.run(stop_when_idle=True)
    assert redis_client.get("k") == b"refilled"
    second = FlushAgent(redis_client, ["pricing"], _config(group="b", batch=1))
    second.run(stop_when_idle=True)
    assert redis_client.exists("k") == 0
    assert (first.stats.events, first.stats.duplicates_skipped) == (1, 1)
    assert (second.stats.events, second.stats.duplicates_skipped) == (1, 1)


def test_on_purge_hook_gets_each_op_of_its_targets_after_the_redis_purge(
    redis_client: redis.Redis,
) -> None:
    _fill(redis_client)
    _emit(redis_client, _mixed_plan())
    seen: list[tuple[FlushOp, bool]] = []

    def hook(op: FlushOp) -> None:
        # the Redis key of a key op is already gone when the hook runs
        seen.append((op, op.op == "key" and redis_client.exists(op.key) == 0))

    FlushAgent(redis_client, ["pricing"], _config(), on_purge=[hook]).run(stop_when_idle=True)
    assert [op.key for op, _ in seen] == [
        "pricing:s1:p1",
        "pricing:list:",
        "price-tag",
        "pricing:page:p1",
    ]
    assert all(gone for op, gone in seen if op.op == "key")


def test_l1_hook_drops_key_prefix_and_tag_entries(redis_client: redis.Redis) -> None:
    l1: L1Cache[str] = L1Cache()
    l1.set("pricing:s1:p1", "by key")
    l1.set("pricing:list:1", "by prefix")
    l1.set("pricing:list:2", "by prefix")
    l1.set("pricing:summary:p1", "by tag", tags=["price-tag"])
    l1.set("catalog:product:p1", "other target")
    l1.set("pricing:kept", "not named")
    _emit(redis_client, _mixed_plan())
    FlushAgent(redis_client, ["pricing"], _config(), on_purge=[l1]).run(stop_when_idle=True)
    assert l1.get("catalog:product:p1") == "other target"
    assert l1.get("pricing:kept") == "not named"
    assert len(l1) == 2


def test_a_failing_hook_retries_the_event_until_it_succeeds(redis_client: redis.Redis) -> None:
    calls: list[str] = []

    def flaky(op: FlushOp) -> None:
        calls.append(op.key)
        if len(calls) == 1:
            raise RuntimeError("L1 busy")

    redis_client.set("k", 1)
    _emit(redis_client, _envelope([FlushOp("key", "pricing", "k")]))
    worker = FlushAgent(redis_client, ["pricing"], _config(), on_purge=[flaky])
    worker.run(stop_when_idle=True)
    assert calls == ["k", "k"]
    assert worker.stats.retries == 1
    assert worker.stats.events == 1
    assert _pending(redis_client, worker.group) == 0


def test_l1_listener_has_its_own_group_from_the_end_and_leaves_redis_alone(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("pricing:s1:p1", 1)
    _emit(redis_client, _envelope([FlushOp("key", "pricing", "old-event")]))
    l1: L1Cache[int] = L1Cache()
    l1.set("pricing:s1:p1", 1)
    l1.set("old-event", 1)
    listener = FlushAgent(
        redis_client,
        ["pricing"],
        _config(consumer="pod-7"),
        on_purge=[l1],
        purge=False,
        ephemeral=True,
    )
    assert listener.group == "damestoilet-agent-pricing:pod-7"
    thread = listener.run_in_thread()
    _emit(redis_client, _envelope([FlushOp("key", "pricing", "pricing:s1:p1")]))
    deadline = time.monotonic() + 5
    while "pricing:s1:p1" in l1 and time.monotonic() < deadline:
        time.sleep(0.01)
    listener.stop()
    thread.join(5)
    assert "pricing:s1:p1" not in l1
    assert "old-event" in l1  # emitted before the listener started: not its concern
    assert redis_client.exists("pricing:s1:p1") == 1  # purge=False
    groups = {g["name"] for g in redis_client.xinfo_groups(STREAM)}
    assert b"damestoilet-agent-pricing:pod-7" not in groups


def test_agent_command_purges_its_targets_and_exits_when_idle(
    redis_client: redis.Redis, redis_url: str
) -> None:
    _fill(redis_client)
    _emit(redis_client, _mixed_plan())
    result = CliRunner().invoke(
        main,
        [
            "agent",
            "--redis",
            redis_url,
            "--targets",
            "pricing",
            "--stream",
            STREAM,
            "--consumer",
            "cli",
            "--block-ms",
            "20",
            "--until-idle",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _existing(redis_client, PRICING_KEYS) == []
    assert _existing(redis_client, DEFAULT_KEYS) == DEFAULT_KEYS
    assert _pending(redis_client, "damestoilet-agent-pricing") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--targets", "a,,b"], "target names separated by commas"),
        (["--targets", "a", "--grace", "a"], "TARGET=SECONDS"),
        (["--targets", "a", "--grace", "a=-1"], "TARGET=SECONDS"),
        (["--targets", "a", "--group", DEFAULT_GROUP], "the coordinator's group"),
    ],
)
def test_agent_command_rejects_bad_options_with_exit_2(
    redis_url: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["agent", "--redis", redis_url, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_agent_command_exits_1_when_redis_is_unreachable() -> None:
    result = CliRunner().invoke(
        main, ["agent", "--redis", "redis://127.0.0.1:1/0", "--targets", "pricing"]
    )
    assert result.exit_code == 1
    assert "agent cannot start" in result.output


def test_agent_process_purges_while_running_and_exits_0_on_sigterm(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-c",
        "from damestoilet_contracts.cli import main; main()",
        "agent",
        "--redis",
        redis_url,
        "--targets",
        "pricing",
        "--stream",
        STREAM,
        "--consumer",
        "proc",
        "--block-ms",
        "50",
    ]
    with (tmp_path / "agent.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _fill(redis_client)
            _emit(redis_client, _mixed_plan())
            deadline = time.monotonic() + 20
            while _existing(redis_client, PRICING_KEYS) and time.monotonic() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert code == 0, (tmp_path / "agent.log").read_text()
    assert _existing(redis_client, PRICING_KEYS) == []
    assert _existing(redis_client, DEFAULT_KEYS) == DEFAULT_KEYS
    assert _pending(redis_client, "damestoilet-agent-pricing") == 0
    assert '"msg": "stopped"' in (tmp_path / "agent.log").read_text()


@pytest.mark.parametrize(
    ("extra", "window_ms"),
    [
        ([], 30_000),  # the default window
        (["--flush-graph", GRAPH], 5_000),  # pricing: grace_seconds 5 in the reference graph
        (["--flush-graph", GRAPH, "--grace", "pricing=2"], 2_000),
    ],
)
def test_agent_soft_purges_with_the_window_of_the_flush_graph_or_grace(
    redis_client: redis.Redis, redis_url: str, extra: list[str], window_ms: int
) -> None:
    """A soft purge shortens the key's life to its target's window, read once at start."""
    redis_client.set("price:soft", "old")
    _emit(redis_client, _envelope([FlushOp("key", "pricing", "price:soft", "soft")]))
    result = CliRunner().invoke(
        main,
        [
            *("agent", "--redis", redis_url, "--targets", "pricing", "--stream", STREAM),
            *("--consumer", "cli", "--block-ms", "20", "--until-idle", *extra),
        ],
    )
    assert result.exit_code == 0, result.output
    ttl = redis_client.pttl("price:soft")
    assert window_ms - 1_000 < ttl <= window_ms
    assert redis_client.get("price:soft") == b"old"  # still readable, as stale


def test_worker_commands_refuse_a_broken_flush_graph(redis_url: str, tmp_path: Path) -> None:
    graph = tmp_path / "flush-graph.yaml"
    graph.write_text("targets:\n  pricing: {grace_seconds: -1}\n")
    for command in (["agent", "--targets", "pricing"], ["coordinator"]):
        result = CliRunner().invoke(
            main, [*command, "--redis", redis_url, "--flush-graph", str(graph)]
        )
        assert result.exit_code == 1, result.output
        assert "is not a valid flush graph" in result.output
        assert "grace_seconds of target pricing is -1" in result.output


def test_agent_command_with_a_signing_key_purges_the_signed_and_dead_letters_the_rest(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    from damestoilet_contracts.runtime import SigningKeys

    key_file = tmp_path / "key"
    key_file.write_bytes(b"agent-signing-key-0123456789\n")  # a trailing newline is no part
    keys = SigningKeys(b"agent-signing-key-0123456789")
    redis_client.mset({"price:signed": b"1", "price:unsigned": b"1"})
    signed = _envelope([FlushOp("key", "pricing", "price:signed")])
    Emitter(redis_client, source="//tests", stream=STREAM, signing=keys).emit_envelopes([signed])
    _emit(redis_client, _envelope([FlushOp("key", "pricing", "price:unsigned")]))
    result = CliRunner().invoke(
        main,
        [
            *("agent", "--redis", redis_url, "--targets", "pricing", "--stream", STREAM),
            *("--consumer", "cli", "--block-ms", "20", "--until-idle"),
            *("--signing-key-file", str(key_file)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert redis_client.exists("price:signed") == 0
    assert redis_client.get("price:unsigned") == b"1"
    letters = redis_client.xrange(f"{STREAM}:dlq")
    assert [f[b"dlq_reason"] for _, f in letters] == [
        b"signature: the entry is not signed and this coordinator requires signatures"
    ]
