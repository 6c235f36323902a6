"""The flush coordinator in process, against the real redis-server: purge, order, dedup,
dead letters, retries, reclaim, pending re-read."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from damestoilet_contracts._errors import PurgeError
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    PurgeStats,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime.redis._layout import done_key, tag_key
from tests.runtime_support import HANDLERS, KeysChanged
from tests.servers import redis_server

pytestmark = pytest.mark.redis

STREAM = "events"
FAST = CoordinatorConfig(
    stream=STREAM,
    consumer="c1",
    block_ms=20,
    retry_base_s=0.01,
    retry_max_s=0.05,
    claim_min_idle_ms=60_000,
)


def _coordinator(
    client: redis.Redis,
    config: CoordinatorConfig = FAST,
    target: object | None = None,
    handlers: object = None,
) -> Coordinator:
    bus = RedisStreamBus(client, stream=config.stream, group=config.group, consumer=config.consumer)
    return Coordinator(
        bus,
        target or RedisPurgeTarget(client),  # type: ignore[arg-type]
        RedisDoneStore(client),
        config,
        handlers=handlers,  # type: ignore[arg-type]
    )


def _emitter(client: redis.Redis) -> Emitter:
    return Emitter(client, source="//tests", stream=STREAM)


def _pending(client: redis.Redis, group: str = FAST.group) -> int:
    return int(client.xpending(STREAM, group)["pending"])


def _dlq(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.xrange(f"{STREAM}:dlq")]


class FlakyTarget:
    """The real purge target, failing its first ``failures`` calls (or always, with -1)."""

    def __init__(self, inner: RedisPurgeTarget, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        self.calls += 1
        if self.failures < 0 or self.calls <= self.failures:
            raise PurgeError(f"injected failure {self.calls}")
        return self.inner.purge_stage(ops)


class RecordingTarget:
    """The real purge target, recording each stage's keys in order."""

    def __init__(self, inner: RedisPurgeTarget) -> None:
        self.inner, self.stages = inner, []

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        self.stages.append([op.key for op in ops])
        return self.inner.purge_stage(ops)


def test_emitted_events_are_purged_keys_prefixes_and_tags(redis_client: redis.Redis) -> None:
    redis_client.mset({"k:1": 1, "k:2": 1, "list:c1:a": 1, "list:c1:b": 1, "list:c2:a": 1})
    redis_client.set("tagged:1", 1)
    redis_client.sadd(tag_key("cat:1"), "tagged:1")
    with _emitter(redis_client) as emitter:
        emitter.emit_many(
            [KeysChanged(keys=["k:1"], derived=["k:2"]), KeysChanged(prefixes=["list:c1:"])]
        )
        emitter.emit(KeysChanged(tags=["cat:1"]))
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("k:1", "k:2", "list:c1:a", "list:c1:b", "tagged:1") == 0
    assert redis_client.exists("list:c2:a") == 1
    assert worker.stats.events == 3
    assert worker.stats.keys_purged == {"key": 2, "prefix": 2, "tag": 1}
    assert _pending(redis_client) == 0
    assert worker.stats.latency.count == 3


def test_prefix_glob_characters_are_literal(redis_client: redis.Redis) -> None:
    redis_client.mset({"p:[a]*:1": 1, "p:a:1": 1})
    _emitter(redis_client).emit(KeysChanged(prefixes=["p:[a]*:"]))
    _coordinator(redis_client).run(stop_when_idle=True)
    assert redis_client.exists("p:[a]*:1") == 0
    assert redis_client.exists("p:a:1") == 1


def test_each_event_is_marked_done_after_its_purge(redis_client: redis.Redis) -> None:
    ids = _emitter(redis_client).emit_many([KeysChanged(keys=["a"]), KeysChanged(keys=["b"])])
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, done_ttl_s=77)
    _coordinator(redis_client, config).run(stop_when_idle=True)
    for event_id in ids:
        assert redis_client.get(done_key(event_id, config.group)) == b"1"
        assert 0 < redis_client.ttl(done_key(event_id, config.group)) <= 77


def test_stages_run_in_order_and_stage_two_waits_for_every_stage_one(
    redis_client: redis.Redis,
) -> None:
    _emitter(redis_client).emit_many(
        [KeysChanged(keys=["a1"], derived=["a2"]), KeysChanged(keys=["b1"], derived=["b2"])]
    )
    target = RecordingTarget(RedisPurgeTarget(redis_client))
    _coordinator(redis_client, target=target).run(stop_when_idle=True)
    assert target.stages == [["a1", "b1"], ["a2", "b2"]]


def test_malformed_entry_is_dead_lettered_with_reason_and_the_next_is_purged(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("k", 1)
    redis_client.xadd(STREAM, {"v": b"1", "id": b"x"})
    redis_client.xadd(STREAM, {"hello": b"world"})
    _emitter(redis_client).emit(KeysChanged(keys=["k"]))
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("k") == 0
    dead = _dlq(redis_client)
    assert len(dead) == 2
    assert dead[0][b"dlq_reason"].startswith(b"malformed envelope: envelope attribute")
    assert b"`v` is missing" in dead[1][b"dlq_reason"]
    assert dead[1][b"hello"] == b"world"  # original fields kept
    assert dead[1][b"dlq_stream"] == STREAM.encode()
    assert dead[1][b"dlq_deliveries"] == b"1"
    assert int(dead[1][b"dlq_time"]) > 0
    assert dead[1][b"dlq_id"] in {i for i, _ in redis_client.xrange(STREAM)}
    assert worker.stats.dead_lettered == 2
    assert worker.stats.events == 1
    assert _pending(redis_client) == 0


def test_failed_purge_is_retried_with_backoff_until_it_succeeds(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("k", 1)
    _emitter(redis_client).emit(KeysChanged(keys=["k"]))
    target = FlakyTarget(RedisPurgeTarget(redis_client), failures=2)
    worker = _coordinator(redis_client, target=target)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("k") == 0
    assert worker.stats.retries == 2
    assert worker.stats.events == 1
    assert _dlq(redis_client) == []
    assert _pending(redis_client) == 0


def test_entry_reaching_max_deliveries_is_dead_lettered_with_last_error(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("k", 1)
    [event_id] = _emitter(redis_client).emit_many([KeysChanged(keys=["k"])])
    target = FlakyTarget(RedisPurgeTarget(redis_client), failures=-1)
    config = CoordinatorConfig(
        stream=STREAM, consumer="c1", block_ms=20, max_deliveries=3, retry_base_s=0.01
    )
    worker = _coordinator(redis_client, config, target=target)
    worker.run(stop_when_idle=True)
    [dead] = _dlq(redis_client)
    assert dead[b"dlq_reason"] == b"failed 3 attempts; last error: PurgeError: injected failure 3"
    assert dead[b"dlq_deliveries"] == b"3"
    assert Envelope.from_fields(dead).id == event_id
    assert target.calls == 3
    assert worker.stats.retries == 2
    assert redis_client.exists("k") == 1
    assert not redis_client.exists(done_key(event_id, config.group))
    assert _pending(redis_client) == 0


def test_one_failing_event_does_not_hold_back_the_rest_of_its_batch(
    redis_client: redis.Redis,
) -> None:
    redis_client.mset({"good": 1, "bad": 1})

    class FailsOnBad(RecordingTarget):
        def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
            if any(op.key == "bad" for op in ops):
                raise PurgeError("bad key")
            return super().purge_stage(ops)

    _emitter(redis_client).emit_many([KeysChanged(keys=["good"]), KeysChanged(keys=["bad"])])
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, max_deliveries=1)
    worker = _coordinator(redis_client, config, target=FailsOnBad(RedisPurgeTarget(redis_client)))
    worker.run(stop_when_idle=True)
    assert redis_client.exists("good") == 0
    assert [d[b"dlq_reason"] for d in _dlq(redis_client)] == [
        b"failed 1 attempts; last error: PurgeError: bad key"
    ]
    assert _pending(redis_client) == 0


def test_duplicate_event_ids_are_skipped_and_counted(redis_client: redis.Redis) -> None:
    env = Envelope.from_event(KeysChanged(keys=["k"]), source="//tests")
    redis_client.set("k", 1)
    emitter = _emitter(redis_client)
    emitter.emit_envelopes([env])
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    redis_client.set("k", "refilled")  # a later fill must not be purged by a redelivery
    emitter.emit_envelopes([env])
    worker.run(stop_when_idle=True)
    assert redis_client.get("k") == b"refilled"
    assert worker.stats.duplicates_skipped == 1
    assert worker.stats.events == 1
    assert _pending(redis_client) == 0


def test_plan_less_event_is_planned_by_its_handler(redis_client: redis.Redis) -> None:
    redis_client.mset({"k": 1, "d": 1})
    env = Envelope.from_event(KeysChanged(keys=["k"], derived=["d"]), source="//other")
    _emitter(redis_client).emit_envelopes([Envelope(**{**_attrs(env), "plan": None})])
    worker = _coordinator(redis_client, handlers=HANDLERS)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("k", "d") == 0
    assert worker.stats.events == 1


def test_plan_less_event_without_handler_is_dead_lettered(redis_client: redis.Redis) -> None:
    env = Envelope.from_event(KeysChanged(keys=["k"]), source="//other")
    _emitter(redis_client).emit_envelopes([Envelope(**{**_attrs(env), "plan": None})])
    worker = _coordinator(redis_client)
    worker.run(stop_when_idle=True)
    [dead] = _dlq(redis_client)
    assert dead[b"dlq_reason"] == b"no plan and no handler for type test.v1.KeysChanged"
    assert _pending(redis_client) == 0


def test_handler_that_cannot_decode_the_payload_dead_letters(redis_client: redis.Redis) -> None:
    env = Envelope.from_event(KeysChanged(keys=["k"]), source="//other")
    _emitter(redis_client).emit_envelopes([Envelope(**{**_attrs(env), "plan": None, "data": b""})])
    _coordinator(redis_client, handlers=HANDLERS).run(stop_when_idle=True)
    [dead] = _dlq(redis_client)
    assert dead[b"dlq_reason"].startswith(b"handler for test.v1.KeysChanged failed")


def test_entries_of_a_dead_consumer_are_reclaimed(redis_client: redis.Redis) -> None:
    redis_client.mset({"a": 1, "b": 1})
    _emitter(redis_client).emit_many([KeysChanged(keys=["a"]), KeysChanged(keys=["b"])])
    dead = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer="dead")
    dead.ensure_group()
    assert len(dead.read_new(10, 0)) == 2  # read, then the consumer "dies"
    time.sleep(0.1)
    config = CoordinatorConfig(stream=STREAM, consumer="alive", block_ms=20, claim_min_idle_ms=50)
    worker = _coordinator(redis_client, config)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("a", "b") == 0
    assert _pending(redis_client) == 0


def test_entries_not_idle_long_enough_are_left_to_their_consumer(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("a", 1)
    _emitter(redis_client).emit(KeysChanged(keys=["a"]))
    busy = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer="busy")
    busy.ensure_group()
    busy.read_new(10, 0)
    _coordinator(redis_client, CoordinatorConfig(stream=STREAM, consumer="other", block_ms=20)).run(
        stop_when_idle=True
    )
    assert redis_client.exists("a") == 1
    assert _pending(redis_client) == 1


def test_own_pending_entries_are_re_read_on_start(redis_client: redis.Redis) -> None:
    redis_client.set("a", 1)
    _emitter(redis_client).emit(KeysChanged(keys=["a"]))
    before_crash = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer="c1")
    before_crash.ensure_group()
    assert len(before_crash.read_new(10, 0)) == 1  # delivered, never acked
    worker = _coordinator(redis_client)  # same consumer name, reclaim idle 60 s: not used
    worker.run(stop_when_idle=True)
    assert redis_client.exists("a") == 0
    assert _pending(redis_client) == 0


def test_pending_entry_trimmed_from_the_stream_is_dead_lettered(
    redis_client: redis.Redis,
) -> None:
    _emitter(redis_client).emit(KeysChanged(keys=["a"]))
    bus = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer="c1")
    bus.ensure_group()
    bus.read_new(10, 0)
    redis_client.xtrim(STREAM, maxlen=0)
    _coordinator(redis_client).run(stop_when_idle=True)
    [dead] = _dlq(redis_client)
    assert b"trimmed" in dead[b"dlq_reason"]
    assert _pending(redis_client) == 0


def test_entry_delivered_too_often_is_dead_lettered_without_purging(
    redis_client: redis.Redis,
) -> None:
    """A poison entry that crashed coordinators repeatedly (``crash_deliveries`` reads
    without an ack or a failure) is not tried once more."""
    redis_client.set("a", 1)
    _emitter(redis_client).emit(KeysChanged(keys=["a"]))
    bus = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer="c1")
    bus.ensure_group()
    bus.read_new(10, 0)
    for _ in range(5):
        bus.read_pending("0", 10)  # each re-read counts a delivery: 6 in all
    _coordinator(redis_client, dataclasses.replace(FAST, crash_deliveries=5)).run(
        stop_when_idle=True
    )
    [dead] = _dlq(redis_client)
    assert dead[b"dlq_reason"].startswith(b"delivered 7 times without being acknowledged")
    assert redis_client.exists("a") == 1


def test_stop_from_another_thread_ends_run(redis_client: redis.Redis) -> None:
    import threading

    worker = _coordinator(redis_client)
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(0.1)
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_logs_one_record_per_event_with_its_fields_in_extra(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    [event_id] = _emitter(redis_client).emit_many([KeysChanged(keys=["a"])])
    with caplog.at_level("INFO", logger="damestoilet.coordinator"):
        _coordinator(redis_client).run(stop_when_idle=True)
    [purged] = [r for r in caplog.records if r.getMessage() == "purged"]
    fields = purged.damestoilet  # type: ignore[attr-defined]  # the one extra= attribute
    assert fields["outcome"] == "purged"
    assert fields["id"] == event_id
    assert fields["type"] == "test.v1.KeysChanged"


def test_lag_and_pending_are_read_from_the_group(redis_client: redis.Redis) -> None:
    _emitter(redis_client).emit_many([KeysChanged(keys=["a"])] * 3)
    worker = _coordinator(redis_client, CoordinatorConfig(stream=STREAM, consumer="c1", batch=1))
    worker.bus.ensure_group()
    worker.step()  # reads the group info before its first read
    assert worker.stats.lag == 3
    assert worker.stats.pending == 0


def _attrs(env: Envelope) -> dict[str, object]:
    return {name: getattr(env, name) for name in Envelope.__dataclass_fields__}


def test_coordinator_recreates_its_group_when_the_stream_is_deleted(
    redis_client: redis.Redis,
) -> None:
    import threading

    worker = _coordinator(redis_client)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        emitter = _emitter(redis_client)
        redis_client.set("a", 1)
        emitter.emit(KeysChanged(keys=["a"]))
        deadline = time.monotonic() + 10
        while redis_client.exists("a") and time.monotonic() < deadline:
            time.sleep(0.01)
        redis_client.delete(STREAM)  # group gone with it: reads now fail with NOGROUP
        redis_client.set("b", 1)
        emitter.emit(KeysChanged(keys=["b"]))
        deadline = time.monotonic() + 10
        while redis_client.exists("b") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert redis_client.exists("a", "b") == 0
    finally:
        worker.stop()
        thread.join(10)
    assert _pending(redis_client) == 0


def test_real_redis_error_is_retried_until_the_cause_is_fixed(redis_client: redis.Redis) -> None:
    """A tag set that is not a set makes the purge fail in Redis itself (WRONGTYPE)."""
    import threading

    redis_client.set(tag_key("t"), "not a set")
    _emitter(redis_client).emit(KeysChanged(tags=["t"]))
    config = CoordinatorConfig(
        stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.05, max_deliveries=100
    )
    worker = _coordinator(redis_client, config)
    thread = threading.Thread(target=worker.run, kwargs={"stop_when_idle": True})
    thread.start()
    deadline = time.monotonic() + 10
    while worker.stats.retries < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    redis_client.delete(tag_key("t"))  # the cause goes away; the next retry succeeds
    thread.join(20)
    assert not thread.is_alive()
    assert worker.stats.retries >= 2
    assert worker.stats.events == 1
    assert _dlq(redis_client) == []
    assert _pending(redis_client) == 0


def test_real_redis_error_that_persists_is_dead_lettered_with_redis_message(
    redis_client: redis.Redis,
) -> None:
    redis_client.set(tag_key("t"), "not a set")
    _emitter(redis_client).emit(KeysChanged(tags=["t"]))
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, max_deliveries=2)
    _coordinator(redis_client, config).run(stop_when_idle=True)
    [dead] = _dlq(redis_client)
    assert dead[b"dlq_reason"].startswith(b"failed 2 attempts; last error: PurgeError")
    assert b"WRONGTYPE" in dead[b"dlq_reason"]
    assert _pending(redis_client) == 0


def test_killed_connections_mid_run_lose_no_event(
    redis_url: str, redis_client: redis.Redis
) -> None:
    import threading

    keys = [f"k:{i}" for i in range(3000)]
    redis_client.mset(dict.fromkeys(keys, 1))
    worker = _coordinator(redis_client, CoordinatorConfig(stream=STREAM, consumer="c1", batch=50))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        emitter = _emitter(redis_client)
        admin = redis.Redis.from_url(redis_url)
        for start in range(0, len(keys), 300):
            emitter.emit_many([KeysChanged(keys=[k]) for k in keys[start : start + 300]])
            admin.client_kill_filter(_type="normal", skipme=True)  # drop every other client
            time.sleep(0.02)
        deadline = time.monotonic() + 30
        # An ack lost with its connection leaves an entry pending until its retry: wait for it.
        while (redis_client.exists(*keys) or _pending(redis_client)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert redis_client.exists(*keys) == 0
    finally:
        worker.stop()
        thread.join(10)
    assert _pending(redis_client) == 0
    assert _dlq(redis_client) == []


@pytest.mark.parametrize("protocol", [2, 3])
def test_coordinator_works_with_resp2_and_resp3_clients(redis_url: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    client.flushall()
    client.set("a", 1)
    _emitter(client).emit(KeysChanged(keys=["a"]))
    worker = _coordinator(client)
    worker.run(stop_when_idle=True)
    assert client.exists("a") == 0
    assert worker.stats.events == 1
    assert worker.stats.lag == 0
    client.close()


def test_stream_on_one_redis_purges_keys_on_another(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """``--bus``: the stream (and its dead letters) on one server, the cache on another."""
    with redis_server(tmp_path / "bus") as (port, _proc):
        bus_url = f"redis://127.0.0.1:{port}/0"
        bus_client = redis.Redis.from_url(bus_url)
        redis_client.set("k", 1)
        [event_id] = Emitter(bus_client, source="//t", stream=STREAM).emit_many(
            [KeysChanged(keys=["k"])]
        )
        bus_client.xadd(STREAM, {"junk": b"1"})
        config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
        worker = Coordinator.from_url(redis_url, config, bus_url=bus_url)
        worker.run(stop_when_idle=True)
        assert redis_client.exists("k") == 0
        assert redis_client.exists(done_key(event_id, config.group)) == 1
        assert bus_client.xlen(f"{STREAM}:dlq") == 1
        assert not redis_client.exists(STREAM)
        assert bus_client.xpending(STREAM, config.group)["pending"] == 0
        bus_client.close()
