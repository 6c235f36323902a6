"""The read-through cache against a real redis-server: fills, leases, lease voiding,
single-flight, soft-purge windows and tag atomicity."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._cache import (
    AsyncCache,
    Cache,
    JsonSerializer,
    Status,
)
from damestoilet_contracts.runtime.redis._purge import RedisPurgeTarget

pytestmark = pytest.mark.redis

V, L, S = (f.encode() for f in (layout.FIELD_VALUE, layout.FIELD_LEASE, layout.FIELD_STALE))
T = layout.FIELD_FILLED.encode()


def filled(entry: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A filled entry without its fill time ``t``, after checking ``t`` is a recent time in ms."""
    assert abs(int(entry[T]) - time.time() * 1000) < 60_000
    return {k: v for k, v in entry.items() if k != T}


class Loader:
    """A loader that counts its calls, optionally waiting on an event or sleeping."""

    def __init__(self, value: bytes = b"fresh", delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0
        self.started = threading.Event()
        self.release: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        self.started.set()
        if self.release is not None:
            assert self.release.wait(10)
        time.sleep(self.delay)
        return self.value


def in_thread(fn: Callable[[], bytes]) -> tuple[threading.Thread, list[bytes]]:
    out: list[bytes] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


@pytest.fixture
def cache(redis_client: redis.Redis) -> Cache:
    return Cache(redis_client, ttl=60, lease_wait=2.0)


def test_miss_fills_and_hit_returns_without_loading(
    cache: Cache, redis_client: redis.Redis
) -> None:
    loader = Loader(b"v1")
    assert cache.get_or_fill("k", loader, ttl=30) == b"v1"
    assert cache.get_or_fill("k", loader) == b"v1"
    assert loader.calls == 1
    assert filled(redis_client.hgetall("k")) == {V: b"v1"}
    assert 29_000 < redis_client.pttl("k") <= 30_000


def test_miss_takes_a_lease_with_a_short_expiry(cache: Cache, redis_client: redis.Redis) -> None:
    loader = Loader()
    loader.release = threading.Event()
    thread, _ = in_thread(lambda: cache.get_or_fill("k", loader))
    assert loader.started.wait(5)
    entry = redis_client.hgetall("k")
    assert set(entry) == {L}
    assert 0 < redis_client.pttl("k") <= layout.LEASE_TTL_MS
    loader.release.set()
    thread.join(5)
    assert filled(redis_client.hgetall("k")) == {V: b"fresh"}


def test_purge_voids_the_lease_so_the_old_value_is_not_written_back(
    cache: Cache, redis_client: redis.Redis
) -> None:
    loader = Loader(b"old row")
    loader.release = threading.Event()
    thread, out = in_thread(lambda: cache.get_or_fill("k", loader))
    assert loader.started.wait(5)
    # the row changes and the invalidation arrives while the reader still loads
    RedisPurgeTarget(redis_client).purge_stage([FlushOp("key", "default", "k")])
    loader.release.set()
    thread.join(5)
    assert out == [b"old row"]  # the reader gets what it loaded...
    assert redis_client.exists("k") == 0  # ...but the cache does not keep it
    assert cache.get_or_fill("k", Loader(b"new row")) == b"new row"


def test_invalidate_voids_the_lease_too(cache: Cache, redis_client: redis.Redis) -> None:
    loader = Loader(b"old")
    loader.release = threading.Event()
    thread, _ = in_thread(lambda: cache.get_or_fill("k", loader))
    assert loader.started.wait(5)
    assert cache.invalidate("k")
    loader.release.set()
    thread.join(5)
    assert redis_client.exists("k") == 0
    assert not cache.invalidate("k")


def test_concurrent_misses_call_the_loader_once(cache: Cache) -> None:
    loader = Loader(b"v", delay=0.2)
    barrier = threading.Barrier(16)
    results: list[bytes] = []

    def read() -> None:
        barrier.wait()
        results.append(cache.get_or_fill("k", loader))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [b"v"] * 16
    assert loader.calls == 1


def test_waiter_loads_without_filling_after_the_wait_bound(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client, lease_wait=0.1)
    holder = Loader(b"holder")
    holder.release = threading.Event()
    thread, _ = in_thread(lambda: cache.get_or_fill("k", holder))
    assert holder.started.wait(5)
    impatient = Loader(b"impatient")
    started = time.monotonic()
    assert cache.get_or_fill("k", impatient) == b"impatient"
    assert 0.1 <= time.monotonic() - started < 1.0
    assert set(redis_client.hgetall("k")) == {L}  # it did not fill over the lease
    holder.release.set()
    thread.join(5)
    assert redis_client.hget("k", "v") == b"holder"


def test_failed_load_gives_the_lease_back(cache: Cache, redis_client: redis.Redis) -> None:
    def boom() -> bytes:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_fill("k", boom)
    assert redis_client.exists("k") == 0
    assert cache.get_or_fill("k", Loader(b"v")) == b"v"


def test_soft_purged_entry_serves_stale_while_exactly_one_reader_refills(
    cache: Cache, redis_client: redis.Redis
) -> None:
    cache.get_or_fill("k", Loader(b"old"))
    RedisPurgeTarget(redis_client, grace={"default": 5}).purge_stage(
        [FlushOp("key", "default", "k", "soft")]
    )
    refill = Loader(b"new", delay=0.3)
    barrier = threading.Barrier(12)
    results: list[bytes] = []

    def read() -> None:
        barrier.wait()
        results.append(cache.get_or_fill("k", refill))

    threads = [threading.Thread(target=read) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert refill.calls == 1
    assert sorted(results) == [b"new"] + [b"old"] * 11
    assert filled(redis_client.hgetall("k")) == {V: b"new"}
    assert redis_client.pttl("k") > 50_000  # the fill's TTL replaced the grace window


def test_soft_purged_entry_is_gone_after_the_grace_window(
    cache: Cache, redis_client: redis.Redis
) -> None:
    cache.get_or_fill("k", Loader(b"old"))
    RedisPurgeTarget(redis_client, grace={"default": 0.2}).purge_stage(
        [FlushOp("key", "default", "k", "soft")]
    )
    assert redis_client.hget("k", "v") == b"old"
    assert redis_client.hexists("k", "stale")
    time.sleep(0.35)
    assert redis_client.exists("k") == 0
    loader = Loader(b"new")
    assert cache.get_or_fill("k", loader) == b"new"
    assert loader.calls == 1


def test_soft_purge_during_a_fill_voids_its_lease(cache: Cache, redis_client: redis.Redis) -> None:
    cache.get_or_fill("k", Loader(b"v0"))
    target = RedisPurgeTarget(redis_client, grace={"default": 5})
    soft = [FlushOp("key", "default", "k", "soft")]
    target.purge_stage(soft)
    refill = Loader(b"v1 (loaded before the second change)")
    refill.release = threading.Event()
    thread, _ = in_thread(lambda: cache.get_or_fill("k", refill))
    assert refill.started.wait(5)
    target.purge_stage(soft)  # a second change, while the refill loads
    refill.release.set()
    thread.join(5)
    assert redis_client.hget("k", "v") == b"v0"  # still the stale value, not v1
    assert redis_client.hexists("k", "stale")


def test_fill_and_its_tag_memberships_appear_together(
    cache: Cache, redis_client: redis.Redis
) -> None:
    """Watch the entry and its tag sets from another connection while fills run: whenever a
    value is visible, every one of its memberships is too."""
    tags = ["category:c1", "store:s1"]
    stop = threading.Event()
    violations: list[str] = []
    observations = 0

    def watch() -> None:
        nonlocal observations
        observer = redis.Redis(connection_pool=redis_client.connection_pool)
        while not stop.is_set():
            pipe = observer.pipeline(transaction=True)  # one atomic snapshot
            pipe.hexists("k", "v")
            for t in tags:
                pipe.sismember(layout.tag_key(t), "k")
            has_value, *members = pipe.execute()
            observations += 1
            if has_value and not all(members):
                violations.append(f"value without membership: {members}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    target = RedisPurgeTarget(redis_client)
    for i in range(200):
        cache.get_or_fill("k", Loader(f"v{i}".encode()), tags=tags)
        target.purge_stage([FlushOp("tag", "default", tags[i % 2])])
    stop.set()
    watcher.join(5)
    assert observations > 50
    assert violations == []


def test_tag_purge_finds_a_key_whose_load_is_in_flight(
    cache: Cache, redis_client: redis.Redis
) -> None:
    """The membership is taken with the lease, so a tag purge during the load voids it."""
    loader = Loader(b"old")
    loader.release = threading.Event()
    thread, _ = in_thread(lambda: cache.get_or_fill("k", loader, tags=["T"]))
    assert loader.started.wait(5)
    assert redis_client.sismember(layout.tag_key("T"), "k")
    RedisPurgeTarget(redis_client).purge_stage([FlushOp("tag", "default", "T")])
    loader.release.set()
    thread.join(5)
    assert redis_client.exists("k") == 0


def test_tag_set_lives_at_least_as_long_as_its_longest_fill(
    cache: Cache, redis_client: redis.Redis
) -> None:
    cache.get_or_fill("a", Loader(), ttl=100, tags=["T"])
    cache.get_or_fill("b", Loader(), ttl=10, tags=["T"])
    assert 99_000 < redis_client.pttl(layout.tag_key("T")) <= 100_000
    cache.get_or_fill("c", Loader(), ttl=500, tags=["T"])
    assert redis_client.pttl(layout.tag_key("T")) > 499_000


def test_a_plain_key_is_foreign_and_never_overwritten(
    cache: Cache, redis_client: redis.Redis
) -> None:
    redis_client.set("k", "someone else's")
    assert cache.get_or_fill("k", Loader(b"mine")) == b"mine"
    assert redis_client.get("k") == b"someone else's"


def test_empty_tag_is_refused(cache: Cache) -> None:
    with pytest.raises(ValueError, match="tag"):
        cache.get_or_fill("k", Loader(), tags=[""])


def test_typed_values_round_trip_through_the_serializer(cache: Cache) -> None:
    calls = 0

    def load() -> dict[str, object]:
        nonlocal calls
        calls += 1
        return {"id": "p1", "price_cents": 1299}

    for _ in range(3):
        assert cache.get_or_fill_value("p", load, JsonSerializer()) == {
            "id": "p1",
            "price_cents": 1299,
        }
    assert calls == 1


def test_status_codes_match_the_script() -> None:
    assert [s.value for s in Status] == [1, 2, 3, 4, 5, 6, 7]


@pytest.fixture
def async_client(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.asyncio.Redis]:
    yield redis.asyncio.Redis.from_url(redis_url)


def test_async_cache_single_flight_and_lease_voiding(
    async_client: redis.asyncio.Redis, redis_client: redis.Redis
) -> None:
    async def scenario() -> None:
        cache = AsyncCache(async_client, lease_wait=2.0)
        calls = 0
        gate = asyncio.Event()
        started = asyncio.Event()

        async def load() -> bytes:
            nonlocal calls
            calls += 1
            started.set()
            await gate.wait()
            return b"v"

        readers = [asyncio.create_task(cache.get_or_fill("k", load)) for _ in range(10)]
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.05)  # the other readers are polling the lease meanwhile
        gate.set()
        assert await asyncio.gather(*readers) == [b"v"] * 10
        assert calls == 1

        gate.clear()
        started.clear()
        voided = asyncio.create_task(cache.get_or_fill("k2", load, tags=["T"]))
        await asyncio.wait_for(started.wait(), 10)
        assert await cache.invalidate("k2")
        gate.set()
        assert await voided == b"v"
        assert await async_client.exists("k2") == 0
        assert await async_client.sismember(layout.tag_key("T"), "k2")
        assert await cache.get_or_fill_value("j", _async_json, JsonSerializer()) == [1, 2]
        await async_client.aclose()

    asyncio.run(scenario())


async def _async_json() -> list[int]:
    return [1, 2]
