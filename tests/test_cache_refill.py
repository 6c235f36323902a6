"""The refill budget of the read-through cache (docs/cache.md, "Refill budget"): the token
bucket on its own (a fake clock), then against a real redis-server: stale values past the
budget are served as they are and take no lease, misses always fill, the budget comes back
with time, and the grace window still bounds how long a stale value is served."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import AsyncCache, Cache, RefillBudget
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._purge import RedisPurgeTarget


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_budget_gives_its_burst_then_its_rate() -> None:
    clock = Clock()
    budget = RefillBudget(2.0, burst=3, clock=clock)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.25  # half a refill
    assert budget.take() is False
    clock.now += 0.25
    assert [budget.take(), budget.take()] == [True, False]
    clock.now += 60  # a long quiet spell refills up to the burst, not beyond
    assert [budget.take() for _ in range(4)] == [True, True, True, False]


def test_a_refill_given_back_is_there_for_the_next_read_up_to_the_burst() -> None:
    clock = Clock()
    budget = RefillBudget(1.0, burst=1, clock=clock)
    assert budget.take() is True
    budget.give_back()
    budget.give_back()  # never above the burst
    assert [budget.take(), budget.take()] == [True, False]


def test_the_default_burst_is_one_second_of_refills_and_at_least_one() -> None:
    assert RefillBudget(50.0).burst == 50
    assert RefillBudget(2.5).burst == 3
    assert RefillBudget(0.1).burst == 1


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0.0, None, "refill_rate must be a positive"),
        (-1.0, None, "refill_rate must be a positive"),
        (float("inf"), None, "refill_rate must be a positive"),
        (float("nan"), None, "refill_rate must be a positive"),
        (5.0, 0, "refill_burst must be at least 1"),
    ],
)
def test_a_budget_that_cannot_work_is_refused(rate: float, burst: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RefillBudget(rate, burst)


def test_a_burst_without_a_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="refill_burst needs a refill_rate"):
        Cache(redis.Redis(), refill_burst=5)  # refused before any connection is made


# -- against a real redis-server ----------------------------------------------------------------

pytest_redis = pytest.mark.redis


def _budgeted(cache: Cache | AsyncCache, rate: float, burst: int) -> Clock:
    # the cache's own budget, on a clock the test moves
    clock = Clock()
    cache.core.refill = RefillBudget(rate, burst, clock=clock)
    return clock


def _soft_purge(client: redis.Redis, keys: list[str], grace_s: float = 30.0) -> None:
    target = RedisPurgeTarget(client, grace={"default": grace_s})
    target.purge_stage([FlushOp("key", "default", k, "soft") for k in keys])


class Loader:
    def __init__(self, value: bytes) -> None:
        self.value = value
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        return self.value


@pytest_redis
def test_past_the_budget_a_stale_value_is_served_as_it_is_and_takes_no_lease(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client, ttl=60, refill_rate=1.0, refill_burst=2)
    clock = _budgeted(cache, 1.0, 2)
    keys = [f"refill:{i}" for i in range(5)]
    for key in keys:
        cache.get_or_fill(key, Loader(b"old"))
    _soft_purge(redis_client, keys)
    new = Loader(b"new")
    assert [cache.get_or_fill(key, new) for key in keys] == [b"new"] * 2 + [b"old"] * 3
    assert new.calls == 2
    assert cache.refill_budget is not None and cache.refill_budget.deferred == 3
    for key in keys[2:]:  # still stale, no lease held: any reader with budget refills it
        entry = redis_client.hgetall(key)
        assert entry[b"v"] == b"old" and b"stale" in entry and b"lease" not in entry
        assert 0 < redis_client.pttl(key) <= 30_000  # the grace window still bounds it
    clock.now += 1.0  # one refill more
    assert [cache.get_or_fill(key, new) for key in keys[2:]] == [b"new", b"old", b"old"]
    assert new.calls == 3
    assert redis_client.hget(keys[2], layout.FIELD_VALUE) == b"new"
    assert not redis_client.hexists(keys[2], layout.FIELD_STALE)


@pytest_redis
def test_misses_always_fill_and_do_not_spend_the_budget(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client, ttl=60)
    _budgeted(cache, 1.0, 1)
    loader = Loader(b"v")
    assert [cache.get_or_fill(f"miss:{i}", loader) for i in range(4)] == [b"v"] * 4
    assert loader.calls == 4
    cache.get_or_fill("stale:1", Loader(b"old"))
    _soft_purge(redis_client, ["stale:1"])
    assert cache.get_or_fill("stale:1", loader) == b"v"  # the one refill is still there


@pytest_redis
def test_a_deferred_read_leaves_the_refill_to_a_reader_with_budget(
    redis_client: redis.Redis,
) -> None:
    # two processes' caches: one spent its budget, the other still has some
    spent = Cache(redis_client, ttl=60)
    _budgeted(spent, 1.0, 1)
    assert spent.refill_budget is not None and spent.refill_budget.take()
    other = Cache(redis_client, ttl=60, refill_rate=10)
    other.get_or_fill("shared", Loader(b"old"))
    _soft_purge(redis_client, ["shared"])
    assert spent.get_or_fill("shared", Loader(b"new")) == b"old"
    assert other.get_or_fill("shared", Loader(b"new")) == b"new"
    assert spent.get_or_fill("shared", Loader(b"newer")) == b"new"  # a fresh hit


@pytest_redis
def test_past_the_grace_window_a_deferred_entry_is_gone_and_the_next_read_fills(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client, ttl=60)
    _budgeted(cache, 1.0, 1)
    cache.get_or_fill("g:1", Loader(b"old"))
    cache.get_or_fill("g:2", Loader(b"old"))
    _soft_purge(redis_client, ["g:1", "g:2"], grace_s=0.2)
    assert cache.get_or_fill("g:1", Loader(b"new")) == b"new"
    assert cache.get_or_fill("g:2", Loader(b"new")) == b"old"  # deferred
    time.sleep(0.35)
    assert redis_client.exists("g:2") == 0
    assert cache.get_or_fill("g:2", Loader(b"new")) == b"new"  # a miss: fills, budget or not


@pytest.fixture
def async_client(redis_url: str) -> Iterator[redis.asyncio.Redis]:
    yield redis.asyncio.Redis.from_url(redis_url)


@pytest_redis
def test_the_async_cache_keeps_the_same_budget(
    redis_client: redis.Redis, async_client: redis.asyncio.Redis
) -> None:
    async def main() -> list[bytes]:
        cache = AsyncCache(async_client, ttl=60, refill_rate=1.0, refill_burst=1)
        _budgeted(cache, 1.0, 1)
        for key in ("a:1", "a:2", "a:3"):
            await cache.get_or_fill(key, _value(b"old"))
        _soft_purge(redis_client, ["a:1", "a:2", "a:3"])
        out = [await cache.get_or_fill(k, _value(b"new")) for k in ("a:1", "a:2", "a:3")]
        assert cache.refill_budget is not None and cache.refill_budget.deferred == 2
        await async_client.aclose()
        return out

    assert asyncio.run(main()) == [b"new", b"old", b"old"]


def _value(value: bytes):  # type: ignore[no-untyped-def]
    async def load() -> bytes:
        return value

    return load
