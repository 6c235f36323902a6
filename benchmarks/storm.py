"""A cache storm, with the storm guard off and on: one event flushes a tag shared by every
listing entry while readers keep reading through the read-through cache.

The script starts its own redis-server on a free loopback port, fills --entries entries
(default 50,000) through the Cache under one tag, then reads them at random at --reads a second
(default 2,000; an open loop of asyncio tasks over AsyncCache) from a source that takes
--source-ms (default 20) per query. After --warmup seconds the source's data changes and one
event flushes the tag through RedisPurgeTarget: once with no guard, then once per
``storm_spread_seconds`` given (--spread, default 300 and 600) with ``storm_max_keys``
(--max-keys, default 1,000). It prints, for each run, the source's peak queries per second
(1 s windows, each query counted when it reaches the source, and again by when the read
that made it was due on the loop's schedule), the p50 and p99 read latency
after the event, the reads per second achieved, how late the read loop ever fell behind its
schedule (a stall of this process, not of the system, bunches reads; a large lag makes that
run's peak suspect), the reads that returned the old data within and after the window (spread
+ the target's grace; 0 expected after), and with --chart PATH draws the queries per second of
every run from the event on. With --refill-rate R (and --refill-burst B), each window runs a
second time with the reading cache's refill budget (``AsyncCache(refill_rate=R)``), and the
table counts the stale reads it deferred.

    python benchmarks/storm.py                          # the figures (about 18 minutes)
    python benchmarks/storm.py --entries 5000 --reads 500 --spread 30   # a quick look
    python benchmarks/storm.py --chart docs/benchmarks-storm.png
    python benchmarks/storm.py --entries 5000 --reads 2000 --spread 30 --max-keys 100 \
        --refill-rate 170 --refill-burst 5 --tail 10                  # the refill budget
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.bench._local import local_redis
from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime import AsyncCache, Cache, PurgeStats, RedisPurgeTarget

TAG = "category:c1"


@dataclass
class Run:
    """What one run measured."""

    name: str
    event_at: float = 0.0
    #: When the purge began, in s from the start of the run.
    purge_began: float = 0.0
    window_end: float = 0.0
    #: Source queries per 100 ms bucket, from the start of the run: when each reached the
    #: source, and when the read that made it was due on the read loop's schedule.
    queries: Counter[int] = field(default_factory=Counter)
    scheduled: Counter[int] = field(default_factory=Counter)
    latencies_after: list[float] = field(default_factory=list)
    reads: int = 0
    stale_after_window: int = 0
    stale_in_window: int = 0
    duration: float = 0.0
    spread: int = 0
    #: How far behind its schedule the read loop started a read, at worst (s).
    lag_max: float = 0.0
    #: Stale values served without a refill because the cache's refill budget was spent.
    deferred: int = 0

    def peak(self, scheduled: bool = False) -> float:
        """The most source queries in any 1 s window (10 buckets of 100 ms), by when they
        reached the source or (``scheduled``) by when their reads were due."""
        buckets = self.scheduled if scheduled else self.queries
        if not buckets:
            return 0.0
        last = max(buckets)
        return max(sum(buckets[b + i] for i in range(10)) for b in range(last + 1))

    def p(self, q: float) -> float:
        values = sorted(self.latencies_after)
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def fill(url: str, entries: int) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    cache = Cache(client, ttl=3600)
    for i in range(entries):
        cache.get_or_fill(f"listing:c1:{i}", lambda: b"v1", tags=[TAG])
    client.close()


async def run_once(
    url: str, args: argparse.Namespace, guard: StormGuard | None, refill_rate: float | None = None
) -> Run:
    name = f"on, {guard.spread_seconds:g} s" if guard else "guard off"
    run = Run(name if refill_rate is None else f"{name}, cap {refill_rate:g}/s")
    version = {"data": b"v1"}
    client = redis.asyncio.Redis.from_url(url, max_connections=4096)
    burst = args.refill_burst if refill_rate is not None else None
    cache = AsyncCache(
        client, ttl=3600, lease_wait=5.0, refill_rate=refill_rate, refill_burst=burst
    )
    start = time.monotonic()
    in_flight: set[asyncio.Task[None]] = set()
    rng = random.Random(7)
    limit = asyncio.Semaphore(200)  # below the pool size: a read waits here, not on the pool

    async def source(due: float) -> bytes:
        # counted when the query reaches the source (not when it returns, which a stalled
        # event loop would bunch), and what the database holds at that moment; also by when
        # its read was due, which a stall of this process does not move
        run.queries[int((time.monotonic() - start) * 10)] += 1
        run.scheduled[int((due - start) * 10)] += 1
        data = version["data"]
        await asyncio.sleep(args.source_ms / 1000)
        return data

    async def read(key: str, due: float) -> None:
        async with limit:
            began = time.monotonic()
            value = await cache.get_or_fill(key, functools.partial(source, due), tags=[TAG])
            now = time.monotonic()
            run.reads += 1
            if run.event_at and began >= run.event_at:
                run.latencies_after.append(now - began)
                if value == b"v1":
                    if began > run.window_end:
                        run.stale_after_window += 1
                    else:
                        run.stale_in_window += 1

    grace = {"default": args.grace}
    storm = {"default": guard} if guard else None
    target = RedisPurgeTarget(redis.Redis.from_url(url), grace=grace, storm=storm)
    tail = (guard.spread_seconds + args.grace + 5) if guard else args.tail
    total = args.warmup + tail
    interval = 1.0 / args.reads
    next_at = start
    purge: asyncio.Future[PurgeStats] | None = None

    def purged(done: asyncio.Future[PurgeStats]) -> None:
        run.spread = done.result().spread
        run.event_at = time.monotonic()
        window = guard.spread_seconds if guard else 0.0
        run.window_end = run.event_at + window + args.grace

    while (now := time.monotonic()) - start < total:
        if purge is None and now - start >= args.warmup:
            version["data"] = b"v2"  # the write, then its invalidation event
            run.purge_began = now - start
            # in a thread, while the reads go on: awaiting it here would hold every read back
            # for the purge's second or so, then fire them all at once
            flush = [FlushOp("tag", "default", TAG)]
            purge = asyncio.ensure_future(asyncio.to_thread(target.purge_stage, flush))
            purge.add_done_callback(purged)
        if next_at <= now:
            run.lag_max = max(run.lag_max, now - next_at)
        while next_at <= now:
            task = asyncio.create_task(read(f"listing:c1:{rng.randrange(args.entries)}", next_at))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            next_at += interval
        await asyncio.sleep(max(0.0, min(next_at - time.monotonic(), 0.005)))
    await asyncio.gather(*in_flight, *([purge] if purge else []))
    run.duration = time.monotonic() - start
    run.deferred = cache.refill_budget.deferred if cache.refill_budget else 0
    await client.aclose()
    target.client.close()
    return run


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for run in runs:
        # 1 s windows from the event on (the buckets are 100 ms from the run's start)
        first = int(run.purge_began * 10)
        last = max(run.queries, default=first)
        xs = list(range((last - first) // 10 + 1))
        ys = [sum(run.queries[first + s * 10 + i] for i in range(10)) for s in xs]
        label = "guard off" if run.name == "guard off" else f"guard {run.name}"
        ax.plot(xs, ys, label=f"{label} (peak {run.peak():.0f}/s)", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("seconds from the event")
    ax.set_ylabel("source queries per second")
    ax.set_title("One event flushes a tag of every listing entry while readers keep reading")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--reads", type=float, default=2000.0, help="reads per second")
    parser.add_argument("--source-ms", type=float, default=20.0)
    parser.add_argument("--max-keys", type=int, default=1000)
    parser.add_argument(
        "--spread",
        type=float,
        nargs="+",
        default=[300.0, 600.0],
        help="storm_spread_seconds, one guard-on run for each",
    )
    parser.add_argument("--grace", type=float, default=30.0, help="the target's grace_seconds")
    parser.add_argument(
        "--refill-rate",
        type=float,
        help="also run each guard-on window with the cache's refill budget at this many/s",
    )
    parser.add_argument(
        "--refill-burst", type=int, help="the refill budget's burst (default: one second's worth)"
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--tail", type=float, default=40.0, help="seconds after the event, off")
    parser.add_argument("--chart", type=Path)
    args = parser.parse_args()
    runs = []
    with local_redis() as url:
        plans: list[tuple[StormGuard | None, float | None]] = [(None, None)]
        for spread in args.spread:
            plans.append((StormGuard(args.max_keys, spread), None))
            if args.refill_rate is not None:
                plans.append((StormGuard(args.max_keys, spread), args.refill_rate))
        for guard, rate in plans:
            fill(url, args.entries)
            name = f"on, {guard.spread_seconds:g} s" if guard else "off"
            capped = f", refill budget {rate:g}/s" if rate is not None else ""
            print(f"filled {args.entries} entries; running {name}{capped}", flush=True)
            runs.append(asyncio.run(run_once(url, args, guard, rate)))
    spreads = ", ".join(f"{s:g}" for s in args.spread)
    print(
        f"\n{args.entries} entries under one tag, {args.reads:.0f} reads/s asked, source "
        f"{args.source_ms:g} ms/query; guard: storm_max_keys {args.max_keys}, "
        f"storm_spread_seconds {spreads}, grace {args.grace:g} s\n"
    )
    header = (
        f"{'run':<22} {'peak q/s':>9} {'by due':>7} {'queries':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'reads/s':>8} {'lag max ms':>10} {'spread':>7} {'old in window':>13} {'old after':>9} "
        f"{'deferred':>8}"
    )
    print(header)
    for run in runs:
        print(
            f"{run.name:<22} {run.peak():>9.0f} {run.peak(scheduled=True):>7.0f} "
            f"{sum(run.queries.values()):>8} "
            f"{run.p(0.5):>7.1f} {run.p(0.99):>7.1f} {run.reads / run.duration:>8.0f} "
            f"{run.lag_max * 1000:>10.0f} {run.spread:>7} {run.stale_in_window:>13} "
            f"{run.stale_after_window:>9} {run.deferred:>8}"
        )
    off, *ons = runs
    spreads_of_runs = [
        spread for spread in args.spread for _ in range(1 + (args.refill_rate is not None))
    ]
    print()
    for on, spread in zip(ons, spreads_of_runs, strict=True):
        # the steady refill rate the window allows: every spread key is refilled once
        steady = on.spread / spread
        ratio = off.peak() / on.peak() if on.peak() else float("inf")
        due = on.peak(scheduled=True)
        by_due = off.peak(scheduled=True) / due if due else float("inf")
        print(
            f"{on.name}: peak {ratio:.1f}x lower than guard off "
            f"({by_due:.1f}x by when the reads were due); steady refill rate {steady:.0f}/s"
        )
    if args.chart:
        chart(runs, args.chart)
        print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
