"""The promises every bus keeps, tested on each real server (FastStream's
``tests/brokers/base``): :class:`BusPromises` holds the tests, one subclass per bus says how
to reach it and how to put raw bytes on it. Kafka joins by adding a subclass.

The purge target and the done store are the session's Redis in every case: what differs is
only the bus the events travel on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import (
    AsyncCoordinator,
    Coordinator,
    CoordinatorConfig,
    Emitter,
    FlushAgent,
    RedisDoneStore,
    open_backend,
)
from damestoilet_contracts.runtime._envelope import STREAM_VERSION
from damestoilet_contracts.runtime.redis._layout import tag_key
from tests.runtime_support import KeysChanged, produce_kafka

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class BusPromises:
    """The conformance suite; a subclass provides ``bus_url`` and :meth:`publish_raw`."""

    @pytest.fixture
    def bus_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def stream(self) -> str:
        return f"conf-{uuid.uuid4().hex[:10]}:events"

    def publish_raw(self, bus_url: str, stream: str, body: bytes, msg_id: str) -> None:
        """Put ``body`` on the bus as one message, as a foreign producer would."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    def config(self, stream: str, **kw: Any) -> CoordinatorConfig:
        options: dict[str, Any] = {
            "stream": stream,
            "consumer": "c1",
            "block_ms": 50,
            "retry_base_s": 0.05,
            "claim_min_idle_ms": 10_000,
        }
        options.update(kw)
        return CoordinatorConfig(**options)

    def emitter(self, bus_url: str, stream: str) -> Emitter:
        return Emitter.from_url(bus_url, source="//conformance", stream=stream, maxlen=None)

    def backlog(self, bus_url: str, config: CoordinatorConfig) -> Any:
        bus = open_backend(
            "bus", bus_url, stream=config.stream, group=config.group, consumer="probe"
        )
        try:
            bus.open(config.policy())
            return bus.backlog()
        finally:
            bus.close()

    def dead_letters(self, bus_url: str, stream: str) -> list[Any]:
        letters = open_backend("dead_letters", bus_url)
        try:
            result: list[Any] = letters.entries(f"{stream}:dlq")
            return result
        finally:
            letters.close()

    def coordinator(self, redis_url: str, bus_url: str, config: CoordinatorConfig) -> Coordinator:
        return Coordinator.from_url(redis_url, config, bus_url=bus_url)

    # -- the promises -----------------------------------------------------------------------

    def test_every_event_is_purged_and_nothing_is_left_pending(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        keys = [f"k:{i}" for i in range(200)]
        redis_client.mset(dict.fromkeys(keys, 1))
        with self.emitter(bus_url, stream) as emitter:
            emitter.emit_many([KeysChanged(keys=[k]) for k in keys])
        config = self.config(stream, batch=50)
        with self.coordinator(redis_url, bus_url, config) as worker:
            worker.run(stop_when_idle=True)
        assert redis_client.exists(*keys) == 0
        assert worker.stats.events == len(keys)
        assert self.backlog(bus_url, config).pending == 0
        assert self.dead_letters(bus_url, stream) == []

    def test_a_resent_event_is_purged_once(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        """The same envelope published twice, past any dedup of the bus itself (a new
        message id): the done store skips the second."""
        redis_client.set("a", 1)
        emitter = self.emitter(bus_url, stream)
        env = emitter.envelope(KeysChanged(keys=["a"]))
        emitter.close()
        body = env.to_bytes(version=STREAM_VERSION)
        self.publish_raw(bus_url, stream, body, f"{env.id}-1")
        self.publish_raw(bus_url, stream, body, f"{env.id}-2")
        with self.coordinator(redis_url, bus_url, self.config(stream, batch=1)) as worker:
            worker.run(stop_when_idle=True)
        assert worker.stats.events == 1
        assert worker.stats.duplicates_skipped == 1
        assert redis_client.exists("a") == 0

    def test_a_failing_target_is_retried_with_backoff_then_dead_lettered_with_the_reason(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        redis_client.set(tag_key("t"), "not a set")  # every purge of the tag: WRONGTYPE
        with self.emitter(bus_url, stream) as emitter:
            emitter.emit(KeysChanged(tags=["t"]))
        config = self.config(stream, max_deliveries=3, retry_base_s=0.2, retry_max_s=1.0)
        with self.coordinator(redis_url, bus_url, config) as worker:
            started = time.monotonic()
            worker.run(stop_when_idle=True)
            elapsed = time.monotonic() - started
        assert worker.stats.retries == 2
        assert worker.stats.dead_lettered == 1
        # equal jitter: at least half of 0.2 s, then half of 0.4 s, before the 3rd delivery
        assert elapsed >= 0.3
        [letter] = self.dead_letters(bus_url, stream)
        assert "failed 3 attempts" in letter.reason
        assert "WRONGTYPE" in letter.reason
        assert letter.deliveries == 3
        assert self.backlog(bus_url, config).pending == 0

    def test_poison_is_dead_lettered_at_once(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        self.publish_raw(bus_url, stream, b"not an envelope", "poison-1")
        redis_client.set("b", 1)
        with self.emitter(bus_url, stream) as emitter:
            emitter.emit(KeysChanged(keys=["b"]))  # its batch-mate is purged all the same
        config = self.config(stream)
        with self.coordinator(redis_url, bus_url, config) as worker:
            worker.run(stop_when_idle=True)
        assert worker.stats.retries == 0
        assert worker.stats.events == 1
        assert redis_client.exists("b") == 0
        [letter] = self.dead_letters(bus_url, stream)
        assert letter.reason.startswith("malformed envelope")
        assert letter.deliveries == 1
        assert self.backlog(bus_url, config).pending == 0

    def test_twins_in_one_batch_are_purged_once(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        """The same envelope twice in one fetched batch (a replay, a producer retry): one
        purge, the copy counted as a duplicate, both settled."""
        redis_client.set("a", 1)
        emitter = self.emitter(bus_url, stream)
        env = emitter.envelope(KeysChanged(keys=["a"]))
        emitter.close()
        body = env.to_bytes(version=STREAM_VERSION)
        self.publish_raw(bus_url, stream, body, f"{env.id}-1")
        self.publish_raw(bus_url, stream, body, f"{env.id}-2")
        config = self.config(stream, batch=50)
        with self.coordinator(redis_url, bus_url, config) as worker:
            worker.run(stop_when_idle=True)
        assert worker.stats.events == 1
        assert worker.stats.duplicates_skipped == 1
        assert redis_client.exists("a") == 0
        assert self.backlog(bus_url, config).pending == 0

    def test_a_plan_the_contracts_do_not_allow_is_dead_lettered_and_nothing_deleted(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        """Anyone who can publish on the bus can write a plan: with the contracts' flush
        specs, a plan outside them never deletes anything, and its batch-mate is purged."""
        redis_client.mset({"k:1": 1, "session:admin": 1})
        with self.emitter(bus_url, stream) as emitter:
            emitter.emit_many([KeysChanged(keys=["session:admin"]), KeysChanged(keys=["k:1"])])
        specs = {"test.v1.KeysChanged": [("key", "default", "delete", "k:{id}")]}
        config = self.config(stream)
        worker = Coordinator.from_url(redis_url, config, bus_url=bus_url, flush_specs=specs)
        with worker:
            worker.run(stop_when_idle=True)
        assert redis_client.exists("session:admin") == 1
        assert redis_client.exists("k:1") == 0
        assert worker.stats.events == 1
        [letter] = self.dead_letters(bus_url, stream)
        assert letter.reason.startswith("plan refused")
        assert self.backlog(bus_url, config).pending == 0

    def test_stage_order_holds_across_a_batch(
        self, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        calls: list[list[FlushOp]] = []

        class Recording:
            def purge_stage(self, ops: Sequence[FlushOp]) -> None:
                calls.append(list(ops))

        events = [KeysChanged(keys=[f"s1:{i}"], derived=[f"s2:{i}"]) for i in range(20)]
        with self.emitter(bus_url, stream) as emitter:
            emitter.emit_many(events)
        config = self.config(stream, batch=100)
        bus = open_backend(
            "bus", bus_url, stream=stream, group=config.group, consumer=config.consumer
        )
        with Coordinator(bus, Recording(), RedisDoneStore(redis_client), config) as worker:
            worker.run(stop_when_idle=True)
        position = {op.key: n for n, stage in enumerate(calls) for op in stage}
        for i in range(20):
            assert position[f"s1:{i}"] < position[f"s2:{i}"], i
        assert max(len(stage) for stage in calls) > 1  # the batch shared its round trips

    def test_agents_in_their_own_groups_each_receive_every_event(
        self, redis_url: str, bus_url: str, stream: str
    ) -> None:
        with self.emitter(bus_url, stream) as emitter:
            ids = emitter.emit_many([KeysChanged(keys=[f"k:{i}"]) for i in range(30)])
        seen: dict[str, list[str]] = {"team-a": [], "team-b": []}
        for group, got in seen.items():
            agent = FlushAgent.from_url(
                redis_url,
                ["default"],
                self.config(stream, group=group),
                bus_url=bus_url,
                purge=False,
                on_purge=[lambda op, got=got: got.append(op.key)],
            )
            agent.run(stop_when_idle=True)
            assert agent.stats.events == len(ids)
        assert (
            sorted(seen["team-a"]) == sorted(seen["team-b"]) == sorted(f"k:{i}" for i in range(30))
        )

    def test_the_async_coordinator_keeps_the_same_promises(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        keys = [f"a:{i}" for i in range(50)]
        redis_client.mset(dict.fromkeys(keys, 1))
        with self.emitter(bus_url, stream) as emitter:
            emitter.emit_many([KeysChanged(keys=[k]) for k in keys])
        self.publish_raw(bus_url, stream, b"poison", "poison-async")
        config = self.config(stream, batch=20)

        async def main() -> AsyncCoordinator:
            async with AsyncCoordinator.from_url(redis_url, config, bus_url=bus_url) as worker:
                await worker.run(stop_when_idle=True)
            return worker

        worker = asyncio.run(main())
        assert redis_client.exists(*keys) == 0
        assert worker.stats.events == len(keys)
        assert worker.stats.dead_lettered == 1
        assert self.backlog(bus_url, config).pending == 0

    # -- crash and shutdown, with a coordinator process -------------------------------------

    def _start(
        self, redis_url: str, bus_url: str, stream: str, batch: int = 100
    ) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": REPO}
        args = [
            sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
            "coordinator",
            "--redis", redis_url, "--bus", bus_url, "--stream", stream,
            "--consumer", "c1", "--batch", str(batch), "--block-ms", "100",
            "--claim-idle-ms", "1000", "--claim-interval", "0.5", "--log-level", "warning",
        ]  # fmt: skip
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def test_kill_9_mid_batch_loses_nothing(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        keys = [f"kill:{i}" for i in range(10_000)]
        redis_client.mset(dict.fromkeys(keys, 1))
        with self.emitter(bus_url, stream) as emitter:
            for start in range(0, len(keys), 1000):
                emitter.emit_many([KeysChanged(keys=[k]) for k in keys[start : start + 1000]])
        # Small batches: the backlog takes a thousand round trips, so the kill lands mid-run.
        first = self._start(redis_url, bus_url, stream, batch=10)
        try:
            _wait(lambda: not redis_client.exists(keys[0]), 60, "the first purges")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert redis_client.exists(*keys) > 0, "killed too late to test a crash mid-run"
        second = self._start(redis_url, bus_url, stream)
        config = self.config(stream)
        try:
            _wait(lambda: redis_client.exists(*keys) == 0, 90, "every key purged")
            _wait(lambda: self.backlog(bus_url, config).pending == 0, 30, "nothing pending")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, second.stderr.read() if second.stderr else ""
        assert self.dead_letters(bus_url, stream) == []

    def test_sigterm_finishes_the_batch_and_exits_0(
        self, redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str
    ) -> None:
        redis_client.set("t:1", 1)
        worker = self._start(redis_url, bus_url, stream)
        try:
            with self.emitter(bus_url, stream) as emitter:
                emitter.emit(KeysChanged(keys=["t:1"]))
            _wait(lambda: redis_client.exists("t:1") == 0, 30, "the purge")
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(20)
        assert code == 0, worker.stderr.read() if worker.stderr else ""
        assert self.backlog(bus_url, self.config(stream)).pending == 0


@pytest.mark.redis
class TestRedisStreams(BusPromises):
    """The promises on Redis Streams."""

    @pytest.fixture
    def bus_url(self, redis_url: str) -> str:
        return redis_url

    def publish_raw(self, bus_url: str, stream: str, body: bytes, msg_id: str) -> None:
        client = redis.Redis.from_url(bus_url)
        try:
            client.xadd(stream, {"e": body})
        finally:
            client.close()


@pytest.mark.nats
class TestJetStream(BusPromises):
    """The promises on NATS JetStream."""

    @pytest.fixture
    def bus_url(self, nats_url: str) -> str:
        return nats_url

    def publish_raw(self, bus_url: str, stream: str, body: bytes, msg_id: str) -> None:
        import nats

        from damestoilet_contracts.runtime.nats._layout import ensure_stream

        async def main() -> None:
            nc = await nats.connect(bus_url)
            try:
                js = nc.jetstream()
                await ensure_stream(js, stream)
                await js.publish(stream, body, headers={"Nats-Msg-Id": msg_id})
            finally:
                await nc.close()

        asyncio.run(main())


@pytest.mark.kafka
class TestKafka(BusPromises):
    """The promises on Kafka (Tansu, or the broker DAMESTOILET_KAFKA_BOOTSTRAP names)."""

    @pytest.fixture
    def bus_url(self, kafka_bootstrap: str) -> str:
        # a librdkafka option through the URL: Tansu's first join waits half of it
        return f"kafka://{kafka_bootstrap}?session.timeout.ms=6000"

    def publish_raw(self, bus_url: str, stream: str, body: bytes, msg_id: str) -> None:
        produce_kafka(bus_url, stream, body, key=msg_id.encode())

    def backlog(self, bus_url: str, config: CoordinatorConfig) -> Any:
        """On Kafka a probe sees no one else's pending records; what the promise means there
        is that the group committed every record: the lag, with end offsets read from the
        records themselves (Tansu's ListOffsets answers short, docs/kafka.md)."""
        from tests.kafka_support import committed_lag

        class Backlog:
            pending = committed_lag(bus_url, config.stream, config.group)

        return Backlog
