"""The prefix index on the session's real 3-primary Redis Cluster: shards spread over the
primaries, the cache's separate membership calls, indexed and scanned purges, the audit."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis.asyncio.cluster
import redis.cluster

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import AsyncCache, AsyncRedisPurgeTarget, Cache
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._prefix_index import (
    CLUSTER_SHARDS,
    audit,
    index_key,
    index_keys,
)
from damestoilet_contracts.runtime.redis._purge import PurgeStats, RedisPurgeTarget

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

Cluster = redis.cluster.RedisCluster


def _members(client: Cluster) -> set[bytes]:
    out: set[bytes] = set()
    for index in index_keys(True):
        out.update(client.zrange(index, 0, -1))
    return out


def test_index_shards_spread_over_every_primary(redis_cluster_client: Cluster) -> None:
    client = redis_cluster_client
    shards = index_keys(True)
    assert len(shards) == CLUSTER_SHARDS
    assert len({client.get_node_from_key(s).name for s in shards}) == 3


def test_cluster_fill_indexes_its_key_before_the_loader_runs(
    redis_cluster_client: Cluster,
) -> None:
    client = redis_cluster_client
    cache = Cache(client)
    seen: list[float | None] = []

    def load() -> bytes:
        seen.append(client.zscore(index_key("page:c1:1", True), "page:c1:1"))
        return b"v"

    assert cache.get_or_fill("page:c1:1", load) == b"v"
    assert seen == [0.0]
    assert _members(client) == {b"page:c1:1"}


def test_cluster_indexed_purge_reaches_keys_on_every_primary(
    redis_cluster_client: Cluster,
) -> None:
    client = redis_cluster_client
    cache = Cache(client)
    hot = [f"page:c1:{i}" for i in range(600)]
    for key in [*hot, "page:c2:1", "page:c10:1"]:
        cache.get_or_fill(key, lambda: b"v", tags=["t"])
    assert len({client.get_node_from_key(k).name for k in hot}) == 3
    client.set("page:c1:plain", "x")  # not written through the cache: the index cannot see it
    target = RedisPurgeTarget(client, prefix_index={"cdn"}, chunk_size=30, pipeline_size=3)
    stats = target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")])
    assert stats == PurgeStats(prefix_keys=600)
    assert sum(client.exists(k) for k in hot) == 0
    assert _members(client) == {b"page:c2:1", b"page:c10:1"}
    report = audit(client, ["page:c1:", "page:c2:"])
    assert (report.scanned, report.missing, report.orphans) == (2, 1, 0)
    assert report.missing_sample == ["page:c1:plain"]
    with pytest.raises(ValueError, match="standalone Redis only"):
        audit(client, ["page:c1:"], prune=True)


def test_cluster_indexed_purge_during_a_load_voids_the_fill(
    redis_cluster_client: Cluster,
) -> None:
    client = redis_cluster_client
    cache = Cache(client)
    target = RedisPurgeTarget(client, prefix_index={"cdn"})
    loading, purged = threading.Event(), threading.Event()

    def slow_load() -> bytes:
        loading.set()
        assert purged.wait(5)
        return b"old"

    reader = threading.Thread(target=lambda: cache.get_or_fill("page:c1:1", slow_load))
    reader.start()
    assert loading.wait(5)
    assert target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")]).prefix_keys == 1
    purged.set()
    reader.join(5)
    assert client.hget("page:c1:1", layout.FIELD_VALUE) is None


def test_cluster_scanned_prefixes_share_one_scan_per_primary(
    redis_cluster_client: Cluster,
) -> None:
    client = redis_cluster_client
    pipe = client.pipeline()
    for i in range(900):
        pipe.set(f"page:c{i % 3}:{i}", "x")
    pipe.execute()
    target = RedisPurgeTarget(client)
    stats = target.purge_stage(
        [FlushOp("prefix", "default", "page:c0:"), FlushOp("prefix", "default", "page:c1:")]
    )
    assert stats == PurgeStats(prefix_keys=600)
    assert client.dbsize(target_nodes=Cluster.PRIMARIES) == 300  # redis-py sums the nodes


def test_async_cluster_twin_indexes_and_purges(redis_cluster_url: str) -> None:
    async def run() -> tuple[PurgeStats, int]:
        client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster_url)
        await client.initialize()
        await client.flushall(target_nodes=redis.asyncio.cluster.RedisCluster.PRIMARIES)
        cache = AsyncCache(client)

        async def load() -> bytes:
            return b"v"

        for i in range(200):
            await cache.get_or_fill(f"page:c1:{i}", load)
        target = AsyncRedisPurgeTarget(client, prefix_index={"cdn"}, chunk_size=25)
        stats = await target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")])
        left = 0
        for index in index_keys(True):
            left += int(await client.zcard(index))
        await client.aclose()
        return stats, left

    stats, left = asyncio.run(run())
    assert stats == PurgeStats(prefix_keys=200)
    assert left == 0
