"""AsyncRedisPurgeTarget against the real standalone server and the real cluster: the same
behaviour as the sync target, through redis.asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from damestoilet_contracts._errors import PurgeError
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._purge import PurgeStats
from damestoilet_contracts.runtime.redis._purge_async import AsyncRedisPurgeTarget

pytestmark = pytest.mark.redis

AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def run(
    make_client: Callable[[], AsyncClient],
    scenario: Callable[[AsyncRedisPurgeTarget, AsyncClient], Awaitable[None]],
    **settings: object,
) -> None:
    async def main() -> None:
        client = make_client()
        try:
            await scenario(AsyncRedisPurgeTarget(client, **settings), client)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    asyncio.run(main())


async def exercise(target: AsyncRedisPurgeTarget, client: AsyncClient) -> None:
    """Keys, an escaped prefix, a tag and a soft key, in one stage, then idempotence."""
    keys = [f"k:{i}" for i in range(700)]
    listing = [f"listing:c1:{i}" for i in range(900)]
    members = [f"p:{i}" for i in range(300)]
    pipe = client.pipeline()
    for k in [*keys, *listing, *members, "a*b:1", "ab:1", "keep"]:
        pipe.set(k, "v")
    pipe.hset("soft:1", layout.FIELD_VALUE, "old")
    pipe.sadd(layout.tag_key("T"), *members)
    await pipe.execute()
    stage = [
        *(FlushOp("key", "default", k) for k in keys),
        FlushOp("prefix", "default", "listing:c1:"),
        FlushOp("prefix", "default", "a*"),
        FlushOp("tag", "default", "T"),
        FlushOp("key", "default", "soft:1", "soft"),
        FlushOp("key", "other", "keep"),
    ]
    stats = await target.purge_stage(stage)
    assert stats == PurgeStats(keys=701, prefix_keys=901, tag_keys=300, soft_marked=1)
    assert await client.exists("ab:1", "keep") == 2
    assert await client.exists(*keys[:50], *listing[:50], *members[:50]) == 0
    assert await client.hexists("soft:1", layout.FIELD_STALE)
    assert 0 < await client.pttl("soft:1") <= 4000
    assert await client.exists(layout.tag_key("T")) == 0
    assert (await target.purge_stage(stage[:-2])).total == 0


def test_async_target_purges_keys_prefixes_tags_and_soft_keys(
    redis_url: str, redis_client: redis.Redis
) -> None:
    run(
        lambda: redis.asyncio.Redis.from_url(redis_url),
        exercise,
        chunk_size=64,
        pipeline_size=4,
        scan_count=100,
        grace={"default": 4},
        targets={"default"},
    )


@pytest.mark.cluster
def test_async_target_on_a_cluster(
    redis_cluster_url: str, redis_cluster_client: redis.cluster.RedisCluster
) -> None:
    run(
        lambda: redis.asyncio.cluster.RedisCluster.from_url(redis_cluster_url),
        exercise,
        chunk_size=64,
        pipeline_size=4,
        scan_count=100,
        grace={"default": 4},
        targets={"default"},
    )


def test_async_redis_failure_raises_purge_error() -> None:
    from tests.servers import free_port

    async def scenario(target: AsyncRedisPurgeTarget, client: AsyncClient) -> None:
        with pytest.raises(PurgeError, match="retry"):
            await target.purge_stage([FlushOp("key", "default", "k")])

    run(lambda: redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.2), scenario)
