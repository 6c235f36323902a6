"""The storm guard on a real Redis, standalone and cluster: past ``storm_max_keys`` keys of one
``delete`` op, the rest keep serving until a moment spread over the window, then go stale the
soft way (one reader refills); ``hard`` ops and soft ops are never spread; ``verify`` counts a
spread key as consistent until its window ends."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime import (
    AsyncCoordinator,
    Cache,
    Coordinator,
    CoordinatorConfig,
    Emitter,
)
from damestoilet_contracts.runtime._metrics import CoordinatorStats
from damestoilet_contracts.runtime._router import TargetRouter
from damestoilet_contracts.runtime._storm import StormBudget
from damestoilet_contracts.runtime._verify import SPREAD, STALE, Verifier
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._purge import PurgeStats, RedisPurgeTarget
from damestoilet_contracts.runtime.redis._purge_async import AsyncRedisPurgeTarget
from tests.runtime_support import KeysChanged

pytestmark = pytest.mark.redis

GUARD = {"default": StormGuard(max_keys=10, spread_seconds=1.5)}
GRACE = {"default": 0.5}


def op(kind: str, text: str, mode: str = "delete") -> FlushOp:
    return FlushOp(kind, "default", text, mode)


def fill(cache: Cache, keys: list[str], tag: str) -> None:
    for k in keys:
        cache.get_or_fill(k, lambda k=k: f"old:{k}".encode(), tags=[tag])


def classify(client: redis.Redis | redis.cluster.RedisCluster, keys: list[str]) -> dict[str, int]:
    now_ms = int(time.time() * 1000)
    counts = {"gone": 0, "spread": 0, "plain": 0}
    for k in keys:
        entry = client.hgetall(k)
        if not entry:
            counts["gone"] += 1
        elif b"spread" in entry:
            assert int(entry[b"stale"]) <= now_ms + 1600  # within the window
            assert int(entry[b"spread"]) == int(entry[b"stale"]) + 500
            counts["spread"] += 1
        else:
            counts["plain"] += 1
    return counts


@pytest.mark.parametrize(
    ("kind", "text", "indexed"),
    [
        ("tag", "category:c1", False),
        ("prefix", "listing:c1:", True),
        ("prefix", "listing:c1:", False),
    ],
    ids=["tag", "indexed-prefix", "scanned-prefix"],
)
def test_a_wide_delete_removes_max_keys_and_spreads_the_rest(
    redis_client: redis.Redis, kind: str, text: str, indexed: bool
) -> None:
    cache = Cache(redis_client, ttl=60)
    keys = [f"listing:c1:{i}" for i in range(50)]
    fill(cache, keys, "category:c1")
    redis_client.set("listing:c2:0", "other")
    target = RedisPurgeTarget(
        redis_client, grace=GRACE, storm=GUARD, prefix_index=["default"] if indexed else ()
    )
    stats = target.purge_stage([op(kind, text)])
    assert stats.spread == 40
    assert stats.unlinked == 10
    assert classify(redis_client, keys) == {"gone": 10, "spread": 40, "plain": 0}
    assert redis_client.get("listing:c2:0") == b"other"
    # before its moment a spread key reads as it was, without a load
    spread_keys = [k for k in keys if redis_client.exists(k)]
    early = [
        k for k in spread_keys if int(redis_client.hget(k, "stale")) > time.time() * 1000 + 300
    ]
    for k in early:
        assert cache.get_or_fill(k, lambda: b"new") == f"old:{k}".encode()
    # after the window and its grace every key is gone or refilled
    time.sleep(1.5 + 0.5 + 0.2)
    assert all(not redis_client.exists(k) for k in keys)


def test_spread_keys_go_stale_the_soft_way_one_refill_each(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client, ttl=60)
    keys = [f"listing:c1:{i}" for i in range(30)]
    fill(cache, keys, "category:c1")
    guard = {"default": StormGuard(max_keys=0 + 1, spread_seconds=0.3)}
    RedisPurgeTarget(redis_client, grace={"default": 5}, storm=guard).purge_stage(
        [op("tag", "category:c1")]
    )
    time.sleep(0.4)  # every spread key is now past its moment, within its grace
    loads: list[str] = []

    def loader(k: str) -> bytes:
        loads.append(k)
        return b"new"

    first = {k: cache.get_or_fill(k, lambda k=k: loader(k)) for k in keys}
    assert sorted(loads) == sorted(keys)  # one refill per key: 29 stale refills, 1 miss
    assert set(first.values()) <= {b"new"}
    assert all(cache.get_or_fill(k, lambda: b"again") == b"new" for k in keys)


def test_hard_and_soft_ops_are_never_spread(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client, ttl=60)
    fill(cache, [f"a:{i}" for i in range(30)], "a")
    fill(cache, [f"b:{i}" for i in range(30)], "b")
    target = RedisPurgeTarget(redis_client, grace={"default": 5}, storm=GUARD)
    stats = target.purge_stage([op("tag", "a", "hard"), op("tag", "b", "soft")])
    assert stats.spread == 0
    assert not any(redis_client.exists(f"a:{i}") for i in range(30))
    assert all(redis_client.hexists(f"b:{i}", "stale") for i in range(30))
    assert not any(redis_client.hexists(f"b:{i}", "spread") for i in range(30))


def test_hard_wins_over_a_guarded_delete_of_the_same_tag(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client, ttl=60)
    fill(cache, [f"a:{i}" for i in range(30)], "a")
    stats = RedisPurgeTarget(redis_client, storm=GUARD).purge_stage(
        [op("tag", "a"), op("tag", "a", "hard")]
    )
    assert stats.spread == 0 and stats.unlinked == 30


def test_unguarded_targets_and_small_purges_are_untouched(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client, ttl=60)
    fill(cache, [f"a:{i}" for i in range(8)], "a")
    fill(cache, [f"b:{i}" for i in range(30)], "b")
    target = RedisPurgeTarget(redis_client, storm=GUARD)
    stats = target.purge_stage([op("tag", "a"), FlushOp("tag", "other", "b", "delete")])
    assert stats.spread == 0 and stats.unlinked == 38


def test_a_second_event_respreads_but_never_postpones(redis_client: redis.Redis) -> None:
    """Spread members stay in their tag set, so a later purge finds them; a stale moment
    already set is never moved later."""
    cache = Cache(redis_client, ttl=60)
    keys = [f"k:{i}" for i in range(40)]
    fill(cache, keys, "t")
    target = RedisPurgeTarget(redis_client, grace=GRACE, storm=GUARD)
    target.purge_stage([op("tag", "t")])
    before = {k: int(redis_client.hget(k, "stale")) for k in keys if redis_client.exists(k)}
    assert redis_client.scard(layout.tag_key("t")) == 30
    target.purge_stage([op("tag", "t")])
    for k, at in before.items():
        if redis_client.exists(k):
            assert int(redis_client.hget(k, "stale")) <= at


def test_verify_counts_a_spread_key_consistent_until_its_window_ends(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client, ttl=60)
    cache.get_or_fill("k:1", lambda: b"old", tags=["t"])
    cache.get_or_fill("k:2", lambda: b"old", tags=["t"])
    event_ms = int(time.time() * 1000) + 1
    time.sleep(0.01)
    guard = {"default": StormGuard(max_keys=1, spread_seconds=0.2)}
    RedisPurgeTarget(redis_client, grace={"default": 0.3}, storm=guard).purge_stage(
        [op("tag", "t")]
    )
    verifier = Verifier(redis_client)

    def checks(flush: FlushOp) -> list[object]:
        keys, _ = verifier._keys(flush)
        return list(verifier._inspect_keys([(k, flush) for k in keys], event_ms))

    (check,) = checks(op("tag", "t"))
    assert check.verdict == SPREAD and check.consistent  # type: ignore[attr-defined]
    # the key outlives its window only if something keeps it alive: then it is stale
    (left,) = [k for k in ("k:1", "k:2") if redis_client.exists(k)]
    redis_client.persist(left)
    redis_client.hset(left, "spread", int(time.time() * 1000) - 1)
    (check,) = checks(op("key", left))
    assert check.verdict == STALE  # type: ignore[attr-defined]


def test_budget_counts_each_op_on_its_own() -> None:
    budget = StormBudget(random.Random(1))
    guard = StormGuard(max_keys=5, spread_seconds=2.0)
    assert budget.split("a", guard, list(range(3))) == ([0, 1, 2], [])
    assert budget.split("a", guard, list(range(4))) == ([0, 1], [2, 3])
    assert budget.split("b", guard, list(range(6))) == ([0, 1, 2, 3, 4], [5])
    delays = budget.delays_ms(guard, 1000)
    assert all(0 <= d < 2000 for d in delays) and max(delays) > 1500 and min(delays) < 500
    assert budget.spread == 3 and set(budget.engaged()) == {"a", "b"}


@pytest.fixture
def async_client(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.asyncio.Redis]:
    yield redis.asyncio.Redis.from_url(redis_url)


def test_async_target_spreads_like_the_sync_one(
    redis_client: redis.Redis, async_client: redis.asyncio.Redis
) -> None:
    cache = Cache(redis_client, ttl=60)
    keys = [f"listing:c1:{i}" for i in range(50)]
    fill(cache, keys, "category:c1")

    async def run() -> object:
        target = AsyncRedisPurgeTarget(async_client, grace=GRACE, storm=GUARD)
        try:
            return await target.purge_stage([op("tag", "category:c1")])
        finally:
            await async_client.aclose()

    stats = asyncio.run(run())
    assert isinstance(stats, PurgeStats)
    assert (stats.spread, stats.unlinked) == (40, 10)
    assert classify(redis_client, keys) == {"gone": 10, "spread": 40, "plain": 0}


@pytest.mark.cluster
@pytest.mark.parametrize("kind", ["tag", "prefix"])
def test_cluster_spreads_per_slot(
    redis_cluster_client: redis.cluster.RedisCluster, kind: str
) -> None:
    cache = Cache(redis_cluster_client, ttl=60)
    keys = [f"listing:c1:{i}" for i in range(60)]
    fill(cache, keys, "category:c1")
    target = RedisPurgeTarget(redis_cluster_client, grace=GRACE, storm=GUARD)
    text = "category:c1" if kind == "tag" else "listing:c1:"
    stats = target.purge_stage([op(kind, text)])
    assert stats.spread == 50
    assert classify(redis_cluster_client, keys) == {"gone": 10, "spread": 50, "plain": 0}


# -- the coordinator says on which event the guard engaged ---------------------------------


def _run_coordinator(url: str, stream: str, asynchronous: bool) -> CoordinatorStats:
    config = CoordinatorConfig(stream=stream, consumer="c1", block_ms=20)
    options: dict[str, Any] = {"grace": GRACE, "storm": GUARD}
    if not asynchronous:
        worker = Coordinator.from_url(url, config, **options)
        worker.run(stop_when_idle=True)
        return worker.stats

    async def main() -> CoordinatorStats:
        worker = AsyncCoordinator.from_url(url, config, **options)
        await worker.run(stop_when_idle=True)
        return worker.stats

    return asyncio.run(main())


def _guard_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        r.damestoilet  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "storm_guard"
    ]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_guard_line_names_the_event_whose_op_it_spread(
    redis_url: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    asynchronous: bool,
) -> None:
    """One batch, three events: only the one that flushes the wide tag is named."""
    fill(Cache(redis_client, ttl=60), [f"listing:c1:{i}" for i in range(50)], "category:c1")
    emitter = Emitter(redis_client, source="//t", stream="storm-events")
    ids = emitter.emit_many(
        [
            KeysChanged(keys=["k:1"]),
            KeysChanged(tags=["category:c1"]),
            KeysChanged(prefixes=["nothing:"]),
        ]
    )
    with caplog.at_level("WARNING", logger="damestoilet.purge"):
        stats = _run_coordinator(redis_url, "storm-events", asynchronous)
    [line] = _guard_lines(caplog)
    assert line["id"] == ids[1] and "ids" not in line
    assert (line["op"], line["text"]) == ("tag", "category:c1")
    assert (line["deleted"], line["spread"], line["max_keys"]) == (10, 40, 10)
    assert stats.storm_spread == 40 and stats.storm_engaged == 1


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_guarded_op_shared_by_several_events_names_them_all(
    redis_url: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    asynchronous: bool,
) -> None:
    """Two events of one batch flush the same tag: the stage purges it once, so the line
    cannot say which one it was and names both (``ids``), never one of them alone."""
    fill(Cache(redis_client, ttl=60), [f"listing:c1:{i}" for i in range(50)], "category:c1")
    emitter = Emitter(redis_client, source="//t", stream="storm-events")
    ids = emitter.emit_many(
        [
            KeysChanged(tags=["category:c1"]),
            KeysChanged(keys=["k:1"]),
            KeysChanged(tags=["category:c1"], keys=["k:2"]),
        ]
    )
    with caplog.at_level("WARNING", logger="damestoilet.purge"):
        _run_coordinator(redis_url, "storm-events", asynchronous)
    [line] = _guard_lines(caplog)
    assert "id" not in line
    assert line["ids"] == [ids[0], ids[2]] and line["attributed"] is True
    assert line["spread"] == 40


def test_the_guard_line_without_an_owning_op_names_the_whole_stage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from damestoilet_contracts.runtime._storm import Engagement, report

    with caplog.at_level("WARNING", logger="damestoilet.purge"):
        report(
            [Engagement("tag", "t", 10, 5, 10, 60.0)],
            [("e1", (op("tag", "u"),)), ("e2", (op("tag", "t", "hard"),))],
        )
    [line] = _guard_lines(caplog)
    assert line["ids"] == ["e1", "e2"] and line["attributed"] is False


def test_a_router_over_several_backends_keeps_the_guard_counts(
    redis_client: redis.Redis,
) -> None:
    fill(Cache(redis_client, ttl=60), [f"listing:c1:{i}" for i in range(50)], "category:c1")
    guarded = RedisPurgeTarget(redis_client, grace=GRACE, storm=GUARD)
    router = TargetRouter({"other": RedisPurgeTarget(redis_client)}, default=guarded)
    stats = router.purge_stage([op("tag", "category:c1"), FlushOp("key", "other", "x")])
    collected = CoordinatorStats()
    collected.add_purge(stats)
    assert (collected.storm_spread, collected.storm_engaged) == (40, 1)
