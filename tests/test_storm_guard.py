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
from damestoilet_contracts.runtime._seams import StageOps
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


def one_event(ops: list[FlushOp], event_id: str = "e1") -> StageOps:
    return StageOps(ops, (event_id,), (len(ops),))


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


def test_spread_moments_are_stratified_one_per_slice_and_shuffled() -> None:
    """Of n moments over the window, each n-th of the window holds exactly one (independent
    uniform moments would leave some slices empty and bunch others), not in key order."""
    budget = StormBudget(random.Random(3))
    guard = StormGuard(max_keys=1, spread_seconds=5.0)
    delays = budget.delays_ms(guard, 500)
    slices = sorted(d * 500 // 5000 for d in delays)
    assert slices == list(range(500))
    assert delays != sorted(delays)
    assert budget.delays_ms(guard, 0) == []


@pytest.mark.cluster
def test_a_clusters_slot_calls_share_one_stratified_draw_per_page(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    """On a cluster a page's spread keys go out a slot per call, a few keys each; their
    moments are still drawn for the page as a whole, one per slice."""
    target = RedisPurgeTarget(redis_cluster_client, grace=GRACE, storm=GUARD)
    scan = target.planner.plan([op("tag", "t")]).tags[0]
    keys = [f"listing:{i}" for i in range(300)]
    calls = target.spread_calls(keys, scan, StormBudget(random.Random(5)))
    assert len(calls) > 100  # about one slot per key
    delays = [d for call in calls for d in call[3 + call[2] + 1 :]]
    assert sorted(d * 300 // 1500 for d in delays) == list(range(300))


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
@pytest.mark.parametrize("kind", ["tag", "prefix", "key"])
def test_cluster_spreads_per_slot(
    redis_cluster_client: redis.cluster.RedisCluster, kind: str
) -> None:
    cache = Cache(redis_cluster_client, ttl=60)
    keys = [f"listing:c1:{i}" for i in range(60)]
    fill(cache, keys, "category:c1")
    target = RedisPurgeTarget(redis_cluster_client, grace=GRACE, storm=GUARD)
    if kind == "key":
        stats = target.purge_stage(one_event([op("key", k) for k in keys]))
    else:
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
    assert (line["target"], line["op"], line["text"]) == ("default", "tag", "category:c1")
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


# -- exact keys: one event's fan-out past max_keys -------------------------------------------


def test_one_events_exact_keys_past_max_keys_are_spread(redis_client: redis.Redis) -> None:
    """A template over an array field fans out to 50 keys of one event: 10 are deleted, 40
    spread, and the engagement names the event."""
    cache = Cache(redis_client, ttl=60)
    keys = [f"pricing:{i}:p1" for i in range(50)]
    fill(cache, keys, "t")
    stats = RedisPurgeTarget(redis_client, grace=GRACE, storm=GUARD).purge_stage(
        one_event([op("key", k) for k in keys], "e7")
    )
    assert (stats.keys, stats.spread, stats.unlinked) == (50, 40, 10)
    assert classify(redis_client, keys) == {"gone": 10, "spread": 40, "plain": 0}
    assert not any(redis_client.exists(k) for k in keys[:10])  # the first max_keys go at once
    [engaged] = stats.storm
    assert (engaged.op, engaged.event, engaged.deleted, engaged.spread) == ("key", "e7", 10, 40)
    time.sleep(1.5 + 0.5 + 0.2)
    assert not any(redis_client.exists(k) for k in keys)


def test_an_exact_key_engagement_counts_the_keys_it_spread(redis_client: redis.Redis) -> None:
    """Of 50 keys of one event only 30 exist: 10 deleted, and the engagement says 20 spread,
    as ``PurgeStats.spread`` does, not the 40 the plan had past max_keys."""
    keys = [f"pricing:{i}:p1" for i in range(50)]
    redis_client.mset(dict.fromkeys(keys[:30], 1))
    stats = RedisPurgeTarget(redis_client, grace=GRACE, storm=GUARD).purge_stage(
        one_event([op("key", k) for k in keys], "e7")
    )
    [engaged] = stats.storm
    assert (engaged.target, engaged.event) == ("default", "e7")
    assert (engaged.spread, stats.spread) == (20, 20)


def test_exact_keys_are_counted_per_event_not_per_batch(redis_client: redis.Redis) -> None:
    """Fifty events of one key each in one stage: no event passes max_keys, none is spread."""
    keys = [f"k:{i}" for i in range(50)]
    redis_client.mset(dict.fromkeys(keys, 1))
    ops = StageOps([op("key", k) for k in keys], [f"e{i}" for i in range(50)], range(1, 51))
    stats = RedisPurgeTarget(redis_client, storm=GUARD).purge_stage(ops)
    assert (stats.unlinked, stats.spread, stats.storm) == (50, 0, ())


def test_exact_keys_hard_soft_or_deleted_elsewhere_are_never_spread(
    redis_client: redis.Redis,
) -> None:
    """``storm: never`` (mode hard) keys are deleted however many; a key another event of the
    stage deletes within its budget, or also soft-purges, is not spread but deleted (as the
    planner does without a guard: delete beats soft)."""
    cache = Cache(redis_client, ttl=60)
    hard = [f"acl:{i}" for i in range(30)]
    wide = [f"w:{i}" for i in range(30)]
    fill(cache, hard + wide, "t")
    ops = StageOps(
        [
            *(op("key", k, "hard") for k in hard),
            *(op("key", k) for k in wide),
            op("key", "w:29"),
            op("key", "w:28", "soft"),
        ],
        ["hard", "wide", "small", "soft"],
        [30, 60, 61, 62],
    )
    stats = RedisPurgeTarget(redis_client, grace={"default": 5}, storm=GUARD).purge_stage(ops)
    assert not any(redis_client.exists(k) for k in hard)
    assert not redis_client.exists("w:29")
    assert not redis_client.exists("w:28")  # delete beats soft, as without a guard
    assert stats.spread == 18
    [engaged] = stats.storm
    assert (engaged.event, engaged.spread) == ("wide", 18)


def test_a_plain_list_of_ops_has_no_event_to_count_by(redis_client: redis.Redis) -> None:
    """Without :class:`StageOps` the target cannot tell events apart: exact keys are deleted."""
    keys = [f"k:{i}" for i in range(30)]
    redis_client.mset(dict.fromkeys(keys, 1))
    stats = RedisPurgeTarget(redis_client, storm=GUARD).purge_stage([op("key", k) for k in keys])
    assert (stats.unlinked, stats.spread) == (30, 0)


def test_stage_ops_keep_their_events_through_take() -> None:
    ops = StageOps([op("key", str(i)) for i in range(6)], ["a", "b", "c"], [2, 3, 6])
    part = ops.take([1, 3, 5])
    assert list(part) == [op("key", "1"), op("key", "3"), op("key", "5")]
    assert part.events() == [("a", [op("key", "1")]), ("c", [op("key", "3"), op("key", "5")])]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_coordinator_spreads_one_events_key_fan_out_and_names_it(
    redis_url: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    asynchronous: bool,
) -> None:
    keys = [f"pricing:{i}:p1" for i in range(50)]
    fill(Cache(redis_client, ttl=60), keys, "t")
    emitter = Emitter(redis_client, source="//t", stream="storm-events")
    ids = emitter.emit_many(
        [KeysChanged(keys=["k:1"]), KeysChanged(keys=keys), KeysChanged(keys=["k:2", "k:3"])]
    )
    with caplog.at_level("WARNING", logger="damestoilet.purge"):
        stats = _run_coordinator(redis_url, "storm-events", asynchronous)
    [line] = _guard_lines(caplog)
    assert line["id"] == ids[1]
    assert (line["op"], line["deleted"], line["spread"]) == ("key", 10, 40)
    assert stats.storm_spread == 40
    assert classify(redis_client, keys) == {"gone": 10, "spread": 40, "plain": 0}


@pytest.mark.cluster
def test_cluster_guard_counts_exact_keys_per_event(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    keys = [f"k:{i}" for i in range(40)]
    fill(Cache(redis_cluster_client, ttl=60), keys, "t")
    ops = StageOps([op("key", k) for k in keys], ["small", "wide"], [5, 40])
    stats = RedisPurgeTarget(redis_cluster_client, grace=GRACE, storm=GUARD).purge_stage(ops)
    assert (stats.unlinked, stats.spread) == (15, 25)
    assert classify(redis_cluster_client, keys) == {"gone": 15, "spread": 25, "plain": 0}


# -- the asyncio purge target on the real cluster -------------------------------------------


def _async_cluster_purge(url: str, ops: list[FlushOp] | StageOps, **options: Any) -> PurgeStats:
    async def run() -> PurgeStats:
        client = redis.asyncio.cluster.RedisCluster.from_url(url)
        try:
            target = AsyncRedisPurgeTarget(client, grace=GRACE, storm=GUARD, **options)
            return await target.purge_stage(ops)
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("kind", "indexed"),
    [("tag", False), ("prefix", True), ("prefix", False), ("key", False)],
    ids=["tag", "indexed-prefix", "scanned-prefix", "key"],
)
def test_async_cluster_spreads_per_slot(
    redis_cluster_url: str,
    redis_cluster_client: redis.cluster.RedisCluster,
    kind: str,
    indexed: bool,
) -> None:
    """The async target on a real cluster: 10 of 60 keys deleted, 50 spread, each spread
    entry with its stale moment in the window and ``spread`` one grace later."""
    cache = Cache(redis_cluster_client, ttl=60)
    keys = [f"listing:c1:{i}" for i in range(60)]
    fill(cache, keys, "category:c1")
    redis_cluster_client.set("listing:c2:0", "other")
    ops: list[FlushOp] | StageOps
    if kind == "key":
        ops = one_event([op("key", k) for k in keys])
    else:
        ops = [op(kind, "category:c1" if kind == "tag" else "listing:c1:")]
    options = {"prefix_index": ["default"]} if indexed else {}
    stats = _async_cluster_purge(redis_cluster_url, ops, **options)
    assert (stats.spread, stats.unlinked) == (50, 10)
    assert classify(redis_cluster_client, keys) == {"gone": 10, "spread": 50, "plain": 0}
    assert redis_cluster_client.get("listing:c2:0") == b"other"
    [engaged] = stats.storm
    assert (engaged.op, engaged.deleted, engaged.spread) == (kind, 10, 50)
    if kind == "tag":  # spread members stay in the set, so a later purge finds them
        assert redis_cluster_client.scard(layout.tag_key("category:c1")) == 50


@pytest.mark.cluster
def test_async_cluster_guard_counts_exact_keys_per_event(
    redis_cluster_url: str, redis_cluster_client: redis.cluster.RedisCluster
) -> None:
    keys = [f"k:{i}" for i in range(40)]
    fill(Cache(redis_cluster_client, ttl=60), keys, "t")
    ops = StageOps([op("key", k) for k in keys], ["small", "wide"], [5, 40])
    stats = _async_cluster_purge(redis_cluster_url, ops)
    assert (stats.unlinked, stats.spread) == (15, 25)
    assert classify(redis_cluster_client, keys) == {"gone": 15, "spread": 25, "plain": 0}
    [engaged] = stats.storm
    assert (engaged.op, engaged.event, engaged.deleted, engaged.spread) == ("key", "wide", 10, 25)
