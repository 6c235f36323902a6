"""The comparison's workload and its bookkeeping: settings, the key schedule (Zipf-skewed
reads, uniform writes, the same for every strategy), what a run records, and the figures
computed from it afterwards (stale reads beyond the tolerance, hits, flush latency).

Everything here is pure: no Redis, no threads; :mod:`bench._compare` drives it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

#: One benchmark second stands for this many production seconds (TTL 300 s -> 10 s).
TIME_SCALE = 30.0


@dataclass(frozen=True, slots=True)
class CompareSettings:
    """The knobs of ``damestoilet bench compare``; times are benchmark (scaled) seconds."""

    #: Measured seconds per strategy (after the warm-up).
    duration_s: float = 20.0
    #: Unmeasured seconds per strategy before the measurement starts; None: a quarter of
    #: ``duration_s``, at most 5 s.
    warmup_s: float | None = None
    #: Cache reads per second, over all reader threads.
    read_rate: float = 2000.0
    #: Source writes per second (one entity each).
    write_rate: float = 30.0
    #: Entities (products) in the source, so cache keys.
    keys: int = 1000
    #: Zipf exponent of the read popularity (rank r is read with weight 1/r**skew).
    skew: float = 1.0
    #: TTL of a cache entry under TTL-only (300 s in production terms).
    ttl_s: float = 10.0
    #: Backstop TTL of the strategies that purge (3600 s in production terms).
    backstop_ttl_s: float = 120.0
    #: How long after a write the "operator" purges its key (60 s in production terms).
    manual_delay_s: float = 2.0
    #: A read is stale only if it returns a version older than one committed more than this
    #: long before the read began.
    tolerance_ms: float = 100.0
    #: Time a source query takes after it has read the row (the stale-set race window).
    db_latency_ms: float = 2.0
    #: Reader threads sharing the read schedule.
    readers: int = 16
    seed: int = 1

    def __post_init__(self) -> None:
        positive = {
            "duration_s": self.duration_s,
            "read_rate": self.read_rate,
            "write_rate": self.write_rate,
            "ttl_s": self.ttl_s,
            "backstop_ttl_s": self.backstop_ttl_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.keys < 1 or self.readers < 1:
            raise ValueError("keys and readers must be at least 1")
        negative = {
            "warmup_s": self.warmup_s or 0.0,
            "manual_delay_s": self.manual_delay_s,
            "tolerance_ms": self.tolerance_ms,
            "db_latency_ms": self.db_latency_ms,
            "skew": self.skew,
        }
        for name, value in negative.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")

    @property
    def warmup(self) -> float:
        """The warm-up in seconds, the default worked out."""
        if self.warmup_s is not None:
            return self.warmup_s
        return min(5.0, self.duration_s / 4)

    @property
    def total_s(self) -> float:
        """Seconds one strategy runs: warm-up plus measurement."""
        return self.warmup + self.duration_s


@dataclass(frozen=True, slots=True)
class Workload:
    """The entity indexes read and written, in schedule order; every strategy replays it."""

    reads: tuple[int, ...]
    writes: tuple[int, ...]

    @classmethod
    def build(cls, settings: CompareSettings) -> Workload:
        """Draw the schedule of ``settings`` from its seed: reads Zipf-skewed over the keys
        (the most popular first), writes uniform."""
        rng = random.Random(settings.seed)
        weights = [1.0 / (rank**settings.skew) for rank in range(1, settings.keys + 1)]
        cumulative = list(itertools.accumulate(weights))
        top = cumulative[-1]
        n_reads = math.ceil(settings.total_s * settings.read_rate)
        n_writes = math.ceil(settings.total_s * settings.write_rate)
        reads = tuple(
            min(settings.keys - 1, bisect.bisect_left(cumulative, rng.random() * top))
            for _ in range(n_reads)
        )
        writes = tuple(rng.randrange(settings.keys) for _ in range(n_writes))
        return cls(reads, writes)


@dataclass(slots=True)
class Recorder:
    """What one strategy's run saw, appended to from many threads (monotonic seconds)."""

    #: (read began, entity, version returned, served from the cache)
    reads: list[tuple[float, int, int, bool]] = field(default_factory=list)
    #: entity -> [(version, before the write was sent, after it was acknowledged)]
    commits: dict[int, list[tuple[int, float, float]]] = field(default_factory=dict)
    #: entity -> [(purge began, purge done)]
    purges: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, began: float, entity: int, version: int, hit: bool) -> None:
        """Record one read."""
        self.reads.append((began, entity, version, hit))

    def commit(self, entity: int, version: int, before: float, after: float) -> None:
        """Record one committed source write."""
        with self._lock:
            self.commits.setdefault(entity, []).append((version, before, after))

    def purged(self, entity: int, began: float, done: float) -> None:
        """Record that the cache key of ``entity`` was purged."""
        with self._lock:
            self.purges.setdefault(entity, []).append((began, done))


@dataclass(frozen=True, slots=True)
class Latency:
    """Flush latency (write sent -> key purged) of the measured writes, in ms."""

    count: int
    unflushed: int
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True, slots=True)
class Measures:
    """The read-side figures of one run's measured window."""

    reads: int
    stale: int
    hits: int
    writes: int
    latency: Latency

    @property
    def stale_rate(self) -> float:
        """Stale reads over reads."""
        return self.stale / self.reads if self.reads else 0.0

    @property
    def hit_ratio(self) -> float:
        """Reads served without calling the loader, over reads."""
        return self.hits / self.reads if self.reads else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending ``sorted_values`` by nearest rank; raises
    ValueError when empty."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def measure(
    recorder: Recorder,
    start: float,
    end: float,
    tolerance_s: float,
    *,
    purges_expected: bool,
) -> Measures:
    """The figures of reads that began and writes sent within [``start``, ``end``).

    A read is stale when a newer version than it returned was acknowledged more than
    ``tolerance_s`` before the read began. A write is flushed by the first purge of its key
    that began after the write was sent; its latency runs from sending the write to the end
    of that purge. ``purges_expected`` False (TTL-only) gives no latency at all.
    """
    commit_times = {e: [c[2] for c in cs] for e, cs in recorder.commits.items()}
    reads = stale = hits = 0
    for began, entity, version, hit in recorder.reads:
        if not start <= began < end:
            continue
        reads += 1
        hits += hit
        times = commit_times.get(entity)
        if not times:
            continue
        # the newest commit acknowledged before (read began - tolerance)
        i = bisect.bisect_left(times, began - tolerance_s) - 1
        if i >= 0 and recorder.commits[entity][i][0] > version:
            stale += 1
    latencies: list[float] = []
    writes = unflushed = 0
    for entity, commits in recorder.commits.items():
        purges = recorder.purges.get(entity, [])
        purge_starts = [p[0] for p in purges]
        for _version, before, _after in commits:
            if not start <= before < end:
                continue
            writes += 1
            j = bisect.bisect_left(purge_starts, before)
            if j < len(purges):
                latencies.append(max(0.0, purges[j][1] - before) * 1000)
            else:
                unflushed += 1
    latencies.sort()
    if purges_expected and latencies:
        latency = Latency(
            count=len(latencies),
            unflushed=unflushed,
            p50_ms=percentile(latencies, 0.5),
            p99_ms=percentile(latencies, 0.99),
            mean_ms=sum(latencies) / len(latencies),
        )
    else:
        latency = Latency(len(latencies), unflushed, None, None, None)
    return Measures(reads, stale, hits, writes, latency)
