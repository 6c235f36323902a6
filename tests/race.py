"""The "stale set" race, as a harness shared by tests/test_race.py and benchmarks/race.py.

Reader threads read keys through a cache; their loader reads a row of a "database" (a dict
under a lock) and then waits a little before returning it, the way a slow query or a GC
pause would. Writer threads update a row and then purge its key through RedisPurgeTarget,
the way the flush coordinator would. When the writers are done and every reader has finished
what it was doing, the harness counts the keys whose cached value differs from their row.

``helper`` reads with :class:`Cache` (fill leases); ``plain`` is the cache-aside everyone
writes first (``GET``; on a miss load and ``SET``), which leaves keys stale when a load that
began before a write is written back after the write's purge.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
import redis.cluster

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._cache import Cache
from damestoilet_contracts.runtime.redis._purge import RedisPurgeTarget

STRATEGIES = ("helper", "plain")


@dataclass(frozen=True)
class RaceResult:
    """What one run did and how many keys it left stale."""

    strategy: str
    mode: str
    keys: int
    reads: int
    loads: int
    writes: int
    #: Keys holding a value at the end (stale or not): a count of 0 stale means something
    #: only when this is not 0 too.
    cached: int
    stale: int
    seconds: float


class Database:
    """Rows of versioned values under one lock: the source of truth the cache mirrors."""

    def __init__(self, keys: list[str]) -> None:
        self._lock = threading.Lock()
        self._rows = dict.fromkeys(keys, 0)

    def read(self, key: str) -> bytes:
        with self._lock:
            return f"{key}@{self._rows[key]}".encode()

    def write(self, key: str) -> None:
        with self._lock:
            self._rows[key] += 1


def run_race(
    client: redis.Redis | redis.cluster.RedisCluster,
    strategy: str,
    *,
    mode: str = "delete",
    op: str = "key",
    keys: int = 20,
    readers: int = 12,
    writers: int = 4,
    writes_per_writer: int = 150,
    loader_delay: tuple[float, float] = (0.002, 0.015),
    writer_pause: tuple[float, float] = (0.0, 0.002),
    grace: float = 0.2,
    seed: int = 5,
) -> RaceResult:
    """Run one race on ``client`` (its database is flushed first) and count stale keys.

    ``strategy`` is ``helper`` or ``plain``; ``mode`` the purge mode the writers use
    (``delete`` or ``soft``; for soft the count waits out the ``grace`` window first); ``op``
    how they purge: ``key`` the key itself, ``tag`` a tag of its own that readers fill it
    under."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(client, redis.cluster.RedisCluster):
        client.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    else:
        client.flushdb()
    names = [f"race:{strategy}:{i}" for i in range(keys)]
    db = Database(names)
    target = RedisPurgeTarget(client, grace={"default": grace})
    cache = Cache(client, ttl=600, lease_wait=2.0)
    stop = threading.Event()
    counts = {"reads": 0, "loads": 0, "writes": 0}
    count_lock = threading.Lock()

    def bump(name: str) -> None:
        with count_lock:
            counts[name] += 1

    def loader_for(key: str, rng: random.Random) -> Callable[[], bytes]:
        def load() -> bytes:
            bump("loads")
            row = db.read(key)
            time.sleep(rng.uniform(*loader_delay))  # the row may change meanwhile
            return row

        return load

    def tags_of(key: str) -> list[str]:
        return [f"row:{key}"] if op == "tag" else []

    def read_plain(key: str, rng: random.Random) -> None:
        if client.get(key) is None:
            value = loader_for(key, rng)()
            for tag in tags_of(key):
                client.sadd(layout.tag_key(tag), key)
            client.set(key, value, ex=600)

    def read_helper(key: str, rng: random.Random) -> None:
        cache.get_or_fill(key, loader_for(key, rng), tags=tags_of(key))

    read_one = read_helper if strategy == "helper" else read_plain

    def reader(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while not stop.is_set():
            read_one(rng.choice(names), rng)
            bump("reads")

    def writer(n: int) -> None:
        rng = random.Random(seed * 2000 + n)
        for _ in range(writes_per_writer):
            key = rng.choice(names)
            db.write(key)
            purged = f"row:{key}" if op == "tag" else key
            target.purge_stage([FlushOp(op, "default", purged, mode)])
            bump("writes")
            time.sleep(rng.uniform(*writer_pause))

    started = time.monotonic()
    reader_threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    writer_threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in reader_threads + writer_threads:
        t.start()
    for t in writer_threads:
        t.join()
    stop.set()
    for t in reader_threads:
        t.join()  # every load in flight has now written back, or been refused
    if mode == "soft":
        time.sleep(grace + 0.1)  # soft-purged entries are stale by design until then
    seconds = time.monotonic() - started
    values = {k: _cached(client, k, strategy) for k in names}
    cached = sum(1 for v in values.values() if v is not None)
    stale = sum(1 for k, v in values.items() if v not in (None, db.read(k)))
    return RaceResult(
        strategy, mode, keys, counts["reads"], counts["loads"], counts["writes"], cached, stale,
        seconds,
    )  # fmt: skip


def _cached(
    client: redis.Redis | redis.cluster.RedisCluster, key: str, strategy: str
) -> bytes | None:
    if strategy == "plain":
        value: bytes | None = client.get(key)
        return value
    entry: dict[bytes, bytes] = client.hgetall(key)
    return entry.get(layout.FIELD_VALUE.encode())
