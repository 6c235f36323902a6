"""The stale-set race on a real Redis (issue 5): with fill leases no key ends stale; plain
cache-aside, run through the same workload, does leave stale keys."""

from __future__ import annotations

import pytest
import redis
import redis.cluster

from tests.race import run_race

pytestmark = pytest.mark.redis


def test_plain_cache_aside_leaves_stale_keys(redis_client: redis.Redis) -> None:
    """The control: the workload really triggers the race, so the helper's 0 means something."""
    result = run_race(redis_client, "plain", keys=30, writes_per_writer=200)
    assert result.stale > 0, result


def test_fill_leases_leave_no_stale_key_after_the_last_purge(redis_client: redis.Redis) -> None:
    result = run_race(redis_client, "helper", keys=30, writes_per_writer=200)
    assert result.loads > result.keys  # keys were refilled many times over
    assert result.stale == 0, result


def test_fill_leases_leave_no_stale_key_after_soft_purges_and_their_grace(
    redis_client: redis.Redis,
) -> None:
    result = run_race(redis_client, "helper", mode="soft", keys=30, writes_per_writer=200)
    assert result.cached > 0, result  # readers refilled within the windows
    assert result.stale == 0, result


def test_fill_leases_leave_no_stale_key_when_purged_by_tag(redis_client: redis.Redis) -> None:
    result = run_race(redis_client, "helper", op="tag", keys=30, writes_per_writer=200)
    assert result.stale == 0, result


@pytest.mark.cluster
@pytest.mark.parametrize("op", ["key", "tag"])
def test_fill_leases_leave_no_stale_key_on_a_cluster(
    redis_cluster_client: redis.cluster.RedisCluster, op: str
) -> None:
    """On a cluster the tag set and its members live on other slots than the entry."""
    result = run_race(redis_cluster_client, "helper", op=op, keys=30, writes_per_writer=200)
    assert result.stale == 0, result


@pytest.mark.cluster
def test_plain_cache_aside_leaves_stale_keys_on_a_cluster(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    result = run_race(redis_cluster_client, "plain", keys=30, writes_per_writer=200)
    assert result.stale > 0, result
