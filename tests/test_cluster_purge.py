"""RedisPurgeTarget and Cache against a real 3-primary Redis Cluster started by the session:
keys across slots, prefixes on every primary, tags whose set and members live apart."""

from __future__ import annotations

import threading
import time

import pytest
import redis.cluster

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._cache import Cache
from damestoilet_contracts.runtime.redis._purge import PurgeStats, RedisPurgeTarget

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

Cluster = redis.cluster.RedisCluster


def nodes_holding(client: Cluster, keys: list[str]) -> set[str]:
    return {client.get_node_from_key(k).name for k in keys}


def fill(client: Cluster, keys: list[str], value: str = "v") -> None:
    pipe = client.pipeline()
    for k in keys:
        pipe.set(k, value)
    pipe.execute()


def count_keys(client: Cluster) -> int:
    sizes = client.dbsize(target_nodes=Cluster.PRIMARIES)
    return int(sum(sizes.values()) if isinstance(sizes, dict) else sizes)


def test_the_session_cluster_has_three_primaries(redis_cluster_client: Cluster) -> None:
    assert len(redis_cluster_client.get_primaries()) == 3
    info = redis_cluster_client.cluster_info()
    assert info["cluster_state"] == "ok"


def test_exact_keys_across_slots_are_unlinked(redis_cluster_client: Cluster) -> None:
    client = redis_cluster_client
    keys = [f"catalog:product:{i}" for i in range(3000)]
    fill(client, [*keys, "keep:1", "keep:2"])
    assert len({client.keyslot(k) for k in keys}) > 1000
    assert len(nodes_holding(client, keys)) == 3
    stats = RedisPurgeTarget(client, chunk_size=50).purge_stage(
        [FlushOp("key", "default", k) for k in keys]
    )
    assert stats == PurgeStats(keys=3000)
    assert count_keys(client) == 2


def test_prefix_purge_scans_every_primary(redis_cluster_client: Cluster) -> None:
    client = redis_cluster_client
    hot = [f"catalog:listing:c1:{i}" for i in range(2000)]
    cold = [f"catalog:listing:c2:{i}" for i in range(500)] + ["a*b:1", "ab:1"]
    fill(client, hot + cold)
    assert len(nodes_holding(client, hot)) == 3
    target = RedisPurgeTarget(client, scan_count=100, chunk_size=64)
    assert target.purge_stage([FlushOp("prefix", "default", "catalog:listing:c1:")]) == (
        PurgeStats(prefix_keys=2000)
    )
    assert target.purge_stage([FlushOp("prefix", "default", "a*")]).prefix_keys == 1
    assert count_keys(client) == 501
    assert client.exists("ab:1") == 1


def test_tag_purge_reaches_members_on_every_node(redis_cluster_client: Cluster) -> None:
    client = redis_cluster_client
    members = [f"p:{i}" for i in range(600)]
    fill(client, [*members, "other"])
    client.sadd(layout.tag_key("category:c1"), *members)
    assert len(nodes_holding(client, members)) == 3
    stats = RedisPurgeTarget(client, chunk_size=40).purge_stage(
        [FlushOp("tag", "default", "category:c1")]
    )
    assert stats == PurgeStats(tag_keys=600)
    assert client.exists(layout.tag_key("category:c1")) == 0
    assert count_keys(client) == 1


def test_soft_purge_across_slots(redis_cluster_client: Cluster) -> None:
    client = redis_cluster_client
    keys = [f"e:{i}" for i in range(300)]
    for k in keys:
        client.hset(k, layout.FIELD_VALUE, "old")
    client.set("plain", "v")
    stats = RedisPurgeTarget(client, grace={"default": 0.3}).purge_stage(
        [FlushOp("key", "default", k, "soft") for k in [*keys, "plain"]]
    )
    assert stats == PurgeStats(keys=301, soft_marked=301)
    assert all(client.hexists(k, layout.FIELD_STALE) for k in keys[:20])
    time.sleep(0.45)
    # EXISTS, not DBSIZE: DBSIZE may still count expired keys the server has not reclaimed
    assert sum(client.exists(k) for k in [*keys, "plain"]) == 0


def test_cluster_cache_fills_with_tags_and_tag_purge_voids_in_flight_fill(
    redis_cluster_url: str, redis_cluster_client: Cluster
) -> None:
    client = redis_cluster_client
    cache = Cache(client, ttl=60)
    tags = ["category:c1", "store:s1", "store:s2"]
    assert len({client.keyslot(layout.tag_key(t)) for t in tags}) == 3
    assert cache.get_or_fill("catalog:product:p1", lambda: b"v1", tags=tags) == b"v1"
    assert cache.get_or_fill("catalog:product:p1", lambda: b"never") == b"v1"
    for t in tags:
        assert client.sismember(layout.tag_key(t), "catalog:product:p1")
        assert client.pttl(layout.tag_key(t)) > 59_000

    # a tag purge while a load is in flight voids its lease
    release = threading.Event()
    started = threading.Event()

    def slow() -> bytes:
        started.set()
        assert release.wait(10)
        return b"old"

    thread = threading.Thread(
        target=lambda: cache.get_or_fill("catalog:product:p2", slow, tags=["store:s2"])
    )
    thread.start()
    assert started.wait(5)
    target = RedisPurgeTarget(client)
    assert target.purge_stage([FlushOp("tag", "default", "store:s2")]).tag_keys == 2
    release.set()
    thread.join(5)
    assert client.exists("catalog:product:p2") == 0
    assert client.exists("catalog:product:p1") == 0


def test_cluster_cache_single_flight(redis_cluster_client: Cluster) -> None:
    cache = Cache(redis_cluster_client, lease_wait=2.0)
    calls = 0
    lock = threading.Lock()

    def load() -> bytes:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.2)
        return b"v"

    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        results.append(cache.get_or_fill("k", load))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [b"v"] * 8
    assert calls == 1


def test_async_cache_on_a_cluster_adds_tags_across_slots_and_honours_leases(
    redis_cluster_url: str, redis_cluster_client: Cluster
) -> None:
    import asyncio

    import redis.asyncio.cluster

    from damestoilet_contracts.runtime.redis._cache import AsyncCache

    tags = ["category:c1", "store:s1", "store:s2"]

    async def scenario() -> None:
        client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster_url)
        await client.initialize()
        cache = AsyncCache(client, ttl=60)
        gate = asyncio.Event()
        started = asyncio.Event()
        calls = 0

        async def load() -> bytes:
            nonlocal calls
            calls += 1
            started.set()
            await gate.wait()
            return b"v"

        readers = [asyncio.create_task(cache.get_or_fill("k", load, tags=tags)) for _ in range(5)]
        await asyncio.wait_for(started.wait(), 10)
        for t in tags:  # the memberships are there before the loader returns
            assert await client.sismember(layout.tag_key(t), "k")
        gate.set()
        assert await asyncio.gather(*readers) == [b"v"] * 5
        assert calls == 1
        await client.aclose()

    asyncio.run(scenario())
    assert redis_cluster_client.hget("k", layout.FIELD_VALUE) == b"v"
    RedisPurgeTarget(redis_cluster_client).purge_stage([FlushOp("tag", "default", "store:s2")])
    assert redis_cluster_client.exists("k") == 0
