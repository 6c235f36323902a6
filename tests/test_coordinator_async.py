"""AsyncCoordinator on a real Redis: the same core as the sync coordinator, awaited I/O."""

from __future__ import annotations

import asyncio

import pytest
import redis

from damestoilet_contracts.runtime import (
    AsyncCoordinator,
    CoordinatorConfig,
    Emitter,
)
from damestoilet_contracts.runtime.redis._layout import tag_key
from tests.runtime_support import KeysChanged

pytestmark = pytest.mark.redis

STREAM = "async-events"


def _config(**kw: object) -> CoordinatorConfig:
    return CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, **kw)  # type: ignore[arg-type]


def test_async_coordinator_purges_stage_by_stage_and_acks(
    redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.mset({"a": 1, "b": 1, "d": 1})
    Emitter(redis_client, source="//t", stream=STREAM).emit_many(
        [KeysChanged(keys=["a", "b"], derived=["d"]), KeysChanged(keys=["a"])]
    )

    async def main() -> AsyncCoordinator:
        worker = AsyncCoordinator.from_url(redis_url, _config())
        await worker.run(stop_when_idle=True)
        return worker

    worker = asyncio.run(main())
    assert redis_client.exists("a", "b", "d") == 0
    assert worker.stats.events == 2
    [group] = redis_client.xinfo_groups(STREAM)
    assert group["pending"] == 0


def test_async_coordinator_skips_duplicates_through_the_done_store(
    redis_url: str, redis_client: redis.Redis
) -> None:
    emitter = Emitter(redis_client, source="//t", stream=STREAM)
    [env] = [emitter.envelope(KeysChanged(keys=["a"]))]
    emitter.emit_envelopes([env, env])

    async def main() -> AsyncCoordinator:
        # one per batch: the second is checked after the first was marked done
        worker = AsyncCoordinator.from_url(redis_url, _config(batch=1))
        await worker.run(stop_when_idle=True)
        return worker

    worker = asyncio.run(main())
    assert worker.stats.events == 1
    assert worker.stats.duplicates_skipped == 1


def test_async_coordinator_retries_then_dead_letters_with_the_reason(
    redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.set(tag_key("t"), "not a set")  # WRONGTYPE on every purge of the tag
    Emitter(redis_client, source="//t", stream=STREAM).emit(KeysChanged(tags=["t"]))

    async def main() -> AsyncCoordinator:
        worker = AsyncCoordinator.from_url(redis_url, _config(max_deliveries=3, retry_base_s=0.01))
        await worker.run(stop_when_idle=True)
        return worker

    worker = asyncio.run(main())
    assert worker.stats.retries == 2
    assert worker.stats.dead_lettered == 1
    [(_, dead)] = redis_client.xrange(f"{STREAM}:dlq")
    assert b"failed 3 attempts" in dead[b"dlq_reason"]
    assert b"WRONGTYPE" in dead[b"dlq_reason"]
