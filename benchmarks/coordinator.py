"""The flush coordinator end to end: throughput on a backlog, and emit-to-purged latency at a
steady rate, against a redis-server this script starts on a free loopback port.

Throughput, for each shape of --shapes (default 1,4,10 exact keys per event): --events events
(default 100,000) are emitted onto the stream as a backlog while --resident other keys
(default 1,000,000) sit in the same server; a coordinator (in this process, JSON logs off)
drains the backlog, and the script prints keys purged per second next to a plain pipelined
UNLINK of the same keys from Python (median of three), in the same run, and checks that every
target is gone and every resident key is still there. With --profile, the 1-key shape is
drained once more under cProfile and the functions that cost most are printed; with
--phases, the 5-key shape is drained once more with each step of the coordinator timed in
process CPU (fetch, decode, done check, plan check, purge, done mark, settle, counting),
printed per event beside redis-server's CPU per event.

Latency: a ``damestoilet coordinator`` process consumes while this script emits --rate
events per second (default 2,000) for --seconds (default 10), one XADD per event; each purged
event's latency (from the envelope's ``time`` to purge done, as the coordinator logs it) is
collected from the JSON log and p50, p99 and max are printed. The envelope time has
millisecond resolution and is truncated, so a figure may read up to 1 ms high.

Scale, for each size of --sizes (default 10,000 and 1,000,000 resident keys, loaded as cache
entries that are all in the prefix index): the 5-exact-keys shape (--exact-events events)
against a plain pipelined UNLINK; the prefix shape (--prefix-events events of one 5-key prefix
each) drained by the coordinator reading the prefix index, by the coordinator scanning once
per batch, and by the seed article's KEYS+DEL per event (capped at --seed-seconds), against a
client unlinking the known keys; and the cost of ``damestoilet index-audit`` over them.

Scaling, for each shape of --scaling-shapes (default 5 and 1 exact keys per event): the same
backlog of --events events over --resident keys, drained by 1, 2, 4 (--processes) real
``damestoilet coordinator`` processes of this tree in one consumer group (distinct
--consumer names, --batch, --log-level warning). The processes start before the clock and
are handed the whole backlog at once (``XGROUP SETID``); the clock stops when the group has
nothing pending and a lag of 0, then every target must be gone and every resident key there.
Printed per process count: keys/s and events/s, the ratio to the plain pipelined UNLINK of the
same keys in the same run, redis-server's main-thread CPU (``INFO cpu``) and the coordinators'
CPU (``/proc``) per event and in cores, the machine's busy cores (``/proc/stat``, every
session on it) and its load average; then where the curve flattens and what was saturated
there, read from those figures.

Whether redis-py uses hiredis (the ``fast`` extra) is printed first: it speeds up both sides.

    python benchmarks/coordinator.py [--sections throughput,scaling,scale,latency]
                                     [--events 100000] [--shapes 1,4,10] [--batch 500]
                                     [--resident 1000000] [--rate 2000] [--seconds 10]
                                     [--profile] [--phases] [--sizes 10000,1000000]
                                     [--exact-events 20000] [--prefix-events 2000]
                                     [--seed-seconds 20]
                                     [--processes 1,2,4] [--scaling-shapes 5,1]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import logging
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.utils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._prefix_index import INDEX_KEY, audit
from tests.servers import redis_server

REPO = Path(__file__).resolve().parent.parent
STREAM = "bench:events"
#: redis-server's main-thread CPU time (INFO cpu) per key of the last plain run and per event
#: of the last coordinator run: what no client-side work can remove.
SERVER_US: dict[str, float] = {}
LOAD_BATCH = 10_000


def load(client: redis.Redis, keys: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), LOAD_BATCH):
        pipe.mset(dict.fromkeys(keys[start : start + LOAD_BATCH], "x" * 32))
        if len(pipe) >= 10:
            pipe.execute()
    pipe.execute()


def envelope(*keys: str) -> Envelope:
    """An event purging ``keys``, as a generated event's envelope would carry it."""
    plan = Plan("bench.v1.KeyChanged", (tuple(FlushOp("key", "default", k) for k in keys),))
    return Envelope.new(
        type="bench.v1.KeyChanged",
        data=keys[0].encode(),
        plan=plan,
        source="//bench",
        datacontenttype="avro/binary",
        dataschema="bench",
    )


def left_of(client: redis.Redis, keys: list[str]) -> int:
    return sum(int(client.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000))


def server_us(client: redis.Redis) -> float:
    """CPU microseconds redis-server's main thread has used (commands, scripts, network)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"]) * 1e6


def plain_unlink(client: redis.Redis, keys: list[str], per_call: int = 500) -> float:
    load(client, keys)
    gc.collect()  # no collection of an earlier shape's garbage inside the timed part
    cpu = server_us(client)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), per_call):
        pipe.unlink(*keys[start : start + per_call])
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - started
    SERVER_US["plain"] = (server_us(client) - cpu) / len(keys)
    assert left_of(client, keys) == 0
    return len(keys) / elapsed


def backlog_of(client: redis.Redis, keys: list[str], per_event: int) -> list[list[str]]:
    """Load ``keys`` and put a fresh stream of events purging ``per_event`` of them each in
    front of a consumer; returns the events' keys."""
    client.delete(STREAM)
    load(client, keys)
    emitter = Emitter(client, source="//bench", stream=STREAM, maxlen=None)
    events = [keys[i : i + per_event] for i in range(0, len(keys), per_event)]
    for start in range(0, len(events), 1000):
        emitter.emit_envelopes([envelope(*e) for e in events[start : start + 1000]])
    return events


def coordinator_backlog(
    client: redis.Redis,
    keys: list[str],
    batch: int,
    per_event: int,
    profile: cProfile.Profile | None = None,
    phases: dict[str, float] | None = None,
) -> float:
    events = backlog_of(client, keys, per_event)
    config = CoordinatorConfig(stream=STREAM, consumer="bench", batch=batch, block_ms=1)
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer="bench")
    target, done = RedisPurgeTarget(client), RedisDoneStore(client)
    worker = Coordinator(bus, target, done, config)
    if phases is not None:
        steps = {
            "fetch": (bus, "fetch"),
            "settle": (bus, "settle"),
            "done check": (done, "seen"),
            "done mark": (done, "mark"),
            "purge": (target, "purge_stage"),
            "decode": (worker.core, "_decode"),
            "plan check": (worker.core, "_plan"),
            "counting": (worker.core, "record"),
        }
        for name, (owner, method) in steps.items():
            setattr(owner, method, timed(getattr(owner, method), name, phases))
    gc.collect()
    if profile is not None:
        profile.enable()
    cpu = server_us(client)
    started = time.perf_counter()
    own_cpu = time.process_time()
    worker.run(stop_when_idle=True)
    elapsed = time.perf_counter() - started
    if phases is not None:
        phases["total"] = time.process_time() - own_cpu
    if profile is not None:
        profile.disable()
    SERVER_US["coordinator"] = (server_us(client) - cpu) / len(events)
    if left_of(client, keys) or worker.stats.events != len(events):
        raise SystemExit(f"coordinator left keys; purged {worker.stats.events} events")
    if client.xpending(STREAM, config.group)["pending"]:
        raise SystemExit("coordinator left entries pending")
    client.xgroup_destroy(STREAM, config.group)
    client.delete(STREAM)
    return len(keys) / elapsed


def bare_backlog(client: redis.Redis, keys: list[str], batch: int, per_event: int) -> float:
    """The floor under any consumer of this stream: the same backlog drained by a loop that
    only reads a batch (``XREADGROUP``), takes each envelope's keys out of its JSON head,
    unlinks them and acks the batch, in one pipeline per batch. No dedup, no done markers,
    no checks, no retries, no objects: what the coordinator does beyond this is what its
    guarantees cost. Returns keys/s."""
    backlog_of(client, keys, per_event)
    group = "bare"
    client.xgroup_create(STREAM, group, id="0")
    loads = json.loads
    gc.collect()
    started = time.perf_counter()
    while True:
        reply = client.xreadgroup(group, "bare", {STREAM: ">"}, count=batch)
        if not reply:
            break
        entries = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]
        if not entries:
            break
        ids, purge = [], []
        for entry_id, fields in entries:
            blob = fields[b"e"]
            head = loads(blob[8 : 8 + int.from_bytes(blob[4:8], "big")])
            for stage in head[8]:
                for group_ops in stage:
                    purge += group_ops[3]
            ids.append(entry_id)
        pipe = client.pipeline(transaction=False)
        pipe.unlink(*purge)
        pipe.xack(STREAM, group, *ids)
        pipe.execute()
    elapsed = time.perf_counter() - started
    if left_of(client, keys):
        raise SystemExit("the bare consumer left keys")
    client.xgroup_destroy(STREAM, group)
    client.delete(STREAM)
    return len(keys) / elapsed


def timed(method: Any, name: str, into: dict[str, float]) -> Any:
    """``method``, adding the process CPU each call takes to ``into[name]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            into[name] = into.get(name, 0.0) + time.process_time() - began

    return wrapper


def load_entries(client: redis.Redis, keys: list[str]) -> None:
    """``keys`` as the read-through cache leaves them: a hash with a value and a fill time,
    and a member of the prefix index (written directly: a million fills through the cache's
    scripts would take minutes and end in the same data)."""
    now = str(int(time.time() * 1000))
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        for key in chunk:
            pipe.hset(key, mapping={"v": "x" * 32, "t": now})
        pipe.zadd(INDEX_KEY, dict.fromkeys(chunk, 0))
        pipe.execute()


def prefix_envelope(prefix: str) -> Envelope:
    """An event purging one prefix of the indexed target ``cdn``."""
    plan = Plan("bench.v1.CategoryChanged", ((FlushOp("prefix", "cdn", prefix),),))
    return Envelope.new(
        type="bench.v1.CategoryChanged",
        data=prefix.encode(),
        plan=plan,
        source="//bench",
        datacontenttype="avro/binary",
        dataschema="bench",
    )


def emit_backlog(client: redis.Redis, envelopes: list[Envelope]) -> None:
    client.delete(STREAM)
    emitter = Emitter(client, source="//bench", stream=STREAM, maxlen=None)
    for start in range(0, len(envelopes), 1000):
        emitter.emit_envelopes(envelopes[start : start + 1000])


def drop_bookkeeping(client: redis.Redis, group: str | None) -> None:
    """Remove the stream, its group and the done markers, so the next run starts alike."""
    if group is not None and client.exists(STREAM):
        client.xgroup_destroy(STREAM, group)
    client.delete(STREAM)
    for batch in chunked(client.scan_iter(match="damestoilet:done:*", count=10_000)):
        client.unlink(*batch)


@dataclass
class Run:
    """One measured drain: what it did, how long, how much redis-server CPU."""

    events: int
    keys: int
    seconds: float
    server_us: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def keys_per_s(self) -> float:
        return self.keys / self.seconds


def prefix_coordinator(
    client: redis.Redis, prefixes: dict[str, list[str]], *, indexed: bool, batch: int
) -> Run:
    """Drain one prefix event per entry of ``prefixes`` with the coordinator; the target
    ``cdn`` read from the index (``indexed``) or scanned once per batch."""
    keys = [k for ks in prefixes.values() for k in ks]
    load_entries(client, keys)
    emit_backlog(client, [prefix_envelope(p) for p in prefixes])
    config = CoordinatorConfig(stream=STREAM, consumer="bench", batch=batch, block_ms=1)
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer="bench")
    target = RedisPurgeTarget(client, prefix_index={"cdn"} if indexed else ())
    worker = Coordinator(bus, target, RedisDoneStore(client), config)
    gc.collect()
    cpu = server_us(client)
    started = time.perf_counter()
    worker.run(stop_when_idle=True)
    elapsed = time.perf_counter() - started
    run = Run(len(prefixes), len(keys), elapsed, server_us(client) - cpu)
    if left_of(client, keys) or worker.stats.events != len(prefixes):
        raise SystemExit(f"prefix run left keys; purged {worker.stats.events} events")
    drop_bookkeeping(client, config.group)
    return run


def seed_keys_del(
    client: redis.Redis, prefixes: dict[str, list[str]], *, budget_s: float, batch: int
) -> Run:
    """The seed article's coordinator: per event ``KEYS prefix*`` then ``DEL`` of what it
    found, then ``XACK``; stopped after ``budget_s`` (it does not finish at 1M keys)."""
    keys = [k for ks in prefixes.values() for k in ks]
    load_entries(client, keys)
    emit_backlog(client, [prefix_envelope(p) for p in prefixes])
    group = "seed"
    client.xgroup_create(STREAM, group, id="0")
    done = purged = 0
    cpu = server_us(client)
    started = time.perf_counter()
    while time.perf_counter() - started < budget_s:
        reply = client.xreadgroup(group, "seed", {STREAM: ">"}, count=batch)
        if not reply:
            break
        for entry_id, fields in reply[0][1]:
            envelope = Envelope.from_fields(fields)
            assert envelope.plan is not None
            for stage in envelope.plan.stages:
                for op in stage:
                    found = client.keys(layout.escape_glob(op.key) + "*")
                    if found:
                        purged += int(client.delete(*found))
            client.xack(STREAM, group, entry_id)
            done += 1
            if time.perf_counter() - started >= budget_s:
                break
    elapsed = time.perf_counter() - started
    run = Run(done, purged, elapsed, server_us(client) - cpu)
    for batch_keys in chunked(iter(keys)):
        client.unlink(*batch_keys)
        client.zrem(INDEX_KEY, *batch_keys)
    drop_bookkeeping(client, group)
    return run


def plain_prefix_baseline(client: redis.Redis, prefixes: dict[str, list[str]]) -> Run:
    """The same keys unlinked by a client that already knows them: pipelined ``UNLINK``, one
    call per prefix's keys (what no prefix purge can beat)."""
    keys = [k for ks in prefixes.values() for k in ks]
    load_entries(client, keys)
    gc.collect()
    cpu = server_us(client)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for ks in prefixes.values():
        pipe.unlink(*ks)
        if len(pipe) >= 500:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - started
    run = Run(len(prefixes), len(keys), elapsed, server_us(client) - cpu)
    for batch_keys in chunked(iter(keys)):
        client.zrem(INDEX_KEY, *batch_keys)
    return run


def audit_cost(client: redis.Redis, prefixes: dict[str, list[str]]) -> tuple[Run, int]:
    """``damestoilet index-audit``'s work over the bench prefixes' common lead."""
    keys = [k for ks in prefixes.values() for k in ks]
    load_entries(client, keys)
    cpu = server_us(client)
    started = time.perf_counter()
    report = audit(client, ["page:category:"])
    elapsed = time.perf_counter() - started
    run = Run(0, report.scanned, elapsed, server_us(client) - cpu)
    for batch_keys in chunked(iter(keys)):
        client.unlink(*batch_keys)
        client.zrem(INDEX_KEY, *batch_keys)
    return run, report.missing


def scale(client: redis.Redis, args: argparse.Namespace) -> None:
    """The 5-key and prefix shapes at each resident size, with their baselines."""
    sizes = [int(n) for n in args.sizes.split(",")]
    per_prefix = 5
    prefixes = {
        f"page:category:c{i}:": [f"page:category:c{i}:{j}" for j in range(per_prefix)]
        for i in range(args.prefix_events)
    }
    exact = [f"catalog:product:{i}" for i in range(args.exact_events * 5)]
    indexed_rate: dict[int, float] = {}
    for size in sizes:
        client.flushall()
        load_entries(client, [f"resident:{i}" for i in range(size)])
        print(
            f"scale: {size:,} resident keys (cache entries, all in the prefix index); "
            f"coordinator batch {args.batch}",
            flush=True,
        )
        print(
            f"  {'shape':<44} {'events':>7} {'keys/s':>10} {'events/s':>9} "
            f"{'redis us/event':>14}  vs baseline"
        )

        def row(name: str, run: Run, base: Run | None) -> None:
            ratio = f"{run.keys_per_s / base.keys_per_s:6.1%}" if base is not None else ""
            per_event = run.server_us / run.events if run.events else 0.0
            print(
                f"  {name:<44} {run.events:>7,} {run.keys_per_s:>10,.0f} "
                f"{run.events_per_s:>9,.0f} {per_event:>14,.1f}  {ratio}",
                flush=True,
            )

        plain_rate = statistics.median(plain_unlink(client, exact) for _ in range(3))
        events5 = len(exact) // 5
        base5 = Run(events5, len(exact), len(exact) / plain_rate, SERVER_US["plain"] * len(exact))
        row("5 exact keys/event: plain pipelined UNLINK", base5, None)
        rate = coordinator_backlog(client, exact, args.batch, 5)
        run5 = Run(events5, len(exact), len(exact) / rate, SERVER_US["coordinator"] * events5)
        row("5 exact keys/event: coordinator", run5, base5)
        drop_bookkeeping(client, None)

        base = plain_prefix_baseline(client, prefixes)
        row(f"prefix of {per_prefix} keys: plain UNLINK of known keys", base, None)
        run = prefix_coordinator(client, prefixes, indexed=True, batch=args.batch)
        indexed_rate[size] = run.events_per_s
        row("prefix: coordinator, prefix_index: true", run, base)
        run = prefix_coordinator(client, prefixes, indexed=False, batch=args.batch)
        row("prefix: coordinator, one SCAN per batch", run, base)
        run = seed_keys_del(client, prefixes, budget_s=args.seed_seconds, batch=args.batch)
        row(f"prefix: seed KEYS+DEL per event ({args.seed_seconds:g} s max)", run, base)
        run, missing = audit_cost(client, prefixes)
        print(
            f"  index-audit of page:category: ({run.keys:,} keys, {missing} missing): "
            f"{run.seconds * 1000:,.0f} ms, redis-server CPU {run.server_us / 1000:,.0f} ms",
            flush=True,
        )
        if client.dbsize() != size + 1:  # the residents and the index
            raise SystemExit("a resident key was purged or a bench key survived")
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        print(
            f"  indexed prefix events/s at {high:,} / at {low:,} resident keys: "
            f"{indexed_rate[high] / indexed_rate[low]:.2f} (target >= 0.5)"
        )


def latency(port: int, client: redis.Redis, rate: int, seconds: float, log: Path) -> list[float]:
    stream = "bench:latency"
    keys = [f"latency:{i}" for i in range(int(rate * seconds))]
    load(client, keys)
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", f"redis://127.0.0.1:{port}/0", "--stream", stream,
        "--consumer", "bench",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out)
        try:
            while b'"msg": "started"' not in log.read_bytes():
                time.sleep(0.05)
            emitter = Emitter(client, source="//bench", stream=stream, maxlen=None)
            # Steady, not bursty: every millisecond tick sends the events due by then, each
            # its own XADD; the emitter sleeps between ticks rather than spinning a core.
            started = time.perf_counter()
            sent = 0
            while sent < len(keys):
                due = min(len(keys), int((time.perf_counter() - started) * rate) + 1)
                if due > sent:
                    emitter.emit_envelopes([envelope(k) for k in keys[sent:due]])
                    sent = due
                time.sleep(0.001)
            achieved = len(keys) / (time.perf_counter() - started)
            while left_of(client, keys):
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    print(f"  emitted {len(keys):,} events at {achieved:,.0f}/s (target {rate:,}/s)")
    latencies = []
    for line in log.read_text().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("outcome") == "purged":
            latencies.append(float(record["latency_ms"]))
    return latencies


def throughput(client: redis.Redis, args: argparse.Namespace) -> None:
    shapes = [int(n) for n in args.shapes.split(",")]
    print(
        f"throughput: backlog of {args.events:,} events, {args.resident:,} resident keys, "
        f"coordinator batch {args.batch}"
    )
    print(
        f"  {'keys/event':>10}  {'plain UNLINK':>14}  {'coordinator':>12}  {'ratio':>6}  "
        f"{'events/s':>8}  {'bare':>10}  {'ratio':>6}  "
        "redis-server CPU: us/key plain, us/event coordinator"
    )
    for per_event in shapes:
        keys = [f"catalog:product:{i}" for i in range(args.events * per_event)]
        plain = statistics.median(plain_unlink(client, keys) for _ in range(3))
        rate = coordinator_backlog(client, keys, args.batch, per_event)
        bare = bare_backlog(client, keys, args.batch, per_event)
        print(
            f"  {per_event:>10}  {plain:>14,.0f}  {rate:>12,.0f}  {rate / plain:>6.1%}  "
            f"{rate / per_event:>8,.0f}  {bare:>10,.0f}  {bare / plain:>6.1%}  "
            f"{SERVER_US['plain']:.2f}, {SERVER_US['coordinator']:.2f}",
            flush=True,
        )
        # only the done markers may remain besides the resident keys; then they go, so that
        # every shape starts from the same server
        if client.dbsize() != args.resident + args.events:
            raise SystemExit("a resident key was purged or a target key survived")
        for batch in chunked(client.scan_iter(match="damestoilet:done:*", count=10_000)):
            client.unlink(*batch)
        del keys
    print("  target: coordinator >= 25% of plain (keys/s, same server, same run)")
    print(
        "  bare: keys/s of a loop that only reads, takes the keys from the JSON head, unlinks and "
        "acks (no dedup, no checks): the floor under any consumer of this stream"
    )
    if args.profile:
        keys = [f"catalog:product:{i}" for i in range(args.events)]
        profile = cProfile.Profile()
        coordinator_backlog(client, keys, args.batch, 1, profile)
        print("profile of the 1-key shape (cProfile; its overhead slows everything down):")
        stats = pstats.Stats(profile)
        areas: dict[str, float] = {}
        for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
            area = _area(path, name)
            areas[area] = areas.get(area, 0.0) + row[2]  # own time
        total = sum(areas.values())
        for area, own in sorted(areas.items(), key=lambda item: -item[1]):
            print(f"  {area:<58} {own / total:>6.1%}  {own * 1e6 / args.events:>6.2f} us/event")
        stats.sort_stats("tottime").print_stats(12)
    if args.phases:
        keys = [f"catalog:product:{i}" for i in range(args.events * 5)]
        phases: dict[str, float] = {}
        coordinator_backlog(client, keys, args.batch, 5, phases=phases)
        total = phases.pop("total")
        print("phases of the 5-key shape, process CPU per event (us):")
        for name, seconds in sorted(phases.items(), key=lambda item: -item[1]):
            print(f"  {name:<12} {seconds * 1e6 / args.events:>6.2f}")
        rest = total - sum(phases.values())
        print(f"  {'the rest':<12} {rest * 1e6 / args.events:>6.2f}")
        print(
            f"  client total {total * 1e6 / args.events:.1f}, redis-server "
            f"{SERVER_US['coordinator']:.1f}"
        )


# -- several coordinator processes in one group -----------------------------------------------

SCALING_GROUP = "bench-scaling"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pids: list[int]) -> float:
    """User plus system CPU seconds the processes ``pids`` have used (``/proc/<pid>/stat``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy, over all cores (``/proc/stat``): every
    session's work, not only this benchmark's."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK


@dataclass
class Drain:
    """N coordinator processes draining one backlog: wall time and who used the CPU."""

    processes: int
    events: int
    keys: int
    seconds: float
    server_s: float  # redis-server's main thread
    clients_s: float  # the coordinator processes, together
    machine_s: float  # every core of the machine, every process on it
    load: float  # 1-minute load average when the drain ended

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def keys_per_s(self) -> float:
        return self.keys / self.seconds


def coordinator_command(port: int, consumer: str, batch: int) -> list[str]:
    """``damestoilet coordinator`` of this tree (not the installed console script)."""
    return [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", f"redis://127.0.0.1:{port}/0", "--stream", STREAM,
        "--group", SCALING_GROUP, "--consumer", consumer, "--batch", str(batch),
        "--block-ms", "5", "--log-level", "warning",
    ]  # fmt: skip


def group_state(client: redis.Redis) -> tuple[int, int | None]:
    """The scaling group's pending count and lag (None while Redis cannot tell)."""
    for group in client.xinfo_groups(STREAM):
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == SCALING_GROUP:
            return int(group["pending"]), group["lag"]
    raise SystemExit(f"group {SCALING_GROUP} is gone")


def processes_drain(
    port: int, client: redis.Redis, keys: list[str], per_event: int, processes: int, batch: int
) -> Drain:
    """Emit ``keys`` as a backlog of ``per_event`` keys per event and time ``processes``
    coordinator processes, one group, distinct consumers, until it is drained."""
    load(client, keys)
    events = [keys[i : i + per_event] for i in range(0, len(keys), per_event)]
    emit_backlog(client, [envelope(*e) for e in events])
    # The group starts at the end of the stream, so the processes start (imports, connect)
    # with nothing to read; once each has registered as a consumer, SETID hands them all the
    # backlog at once and the clock starts. Their 5 ms block bounds how late each notices.
    client.xgroup_create(STREAM, SCALING_GROUP, id="$")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    procs = [
        subprocess.Popen(
            coordinator_command(port, f"bench-{i}", batch),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(processes)
    ]
    pids = [p.pid for p in procs]

    def check_alive() -> None:
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"a coordinator exited with {proc.returncode}: {err}")

    try:
        deadline = time.monotonic() + 120
        while len(client.xinfo_consumers(STREAM, SCALING_GROUP)) < processes:
            check_alive()
            if time.monotonic() > deadline:
                raise SystemExit("the coordinators did not start in 120 s")
            time.sleep(0.05)
        gc.collect()
        cpu, clients, machine = server_us(client), process_cpu_s(pids), machine_busy_s()
        started = time.perf_counter()
        client.xgroup_setid(STREAM, SCALING_GROUP, id="0", entries_read=0)
        while group_state(client) != (0, 0):
            check_alive()
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        drain = Drain(
            processes,
            len(events),
            len(keys),
            elapsed,
            (server_us(client) - cpu) / 1e6,
            process_cpu_s(pids) - clients,
            machine_busy_s() - machine,
            os.getloadavg()[0],
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"coordinator exit codes {[p.returncode for p in procs]}")
    if left_of(client, keys):
        raise SystemExit("the group is drained but target keys survived")
    return drain


def scaling(port: int, client: redis.Redis, args: argparse.Namespace) -> None:
    """1, 2, 4 ... ``damestoilet coordinator`` processes sharing one group's backlog, per shape,
    next to the plain pipelined UNLINK of the same keys in the same run."""
    counts = [int(n) for n in args.processes.split(",")]
    cores = os.cpu_count() or 1
    print(
        f"scaling: backlog of {args.events:,} events, {args.resident:,} resident keys, "
        f"processes {','.join(map(str, counts))} (damestoilet coordinator, one group, "
        f"--batch {args.batch}, --log-level warning); {cores} cores, "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    for per_event in (int(n) for n in args.scaling_shapes.split(",")):
        keys = [f"catalog:product:{i}" for i in range(args.events * per_event)]
        plain = statistics.median(plain_unlink(client, keys) for _ in range(3))
        print(
            f"  {per_event} keys/event: plain pipelined UNLINK {plain:,.0f} keys/s "
            f"(redis-server {SERVER_US['plain']:.2f} us/key)"
        )
        print(
            f"  {'procs':>5} {'keys/s':>9} {'events/s':>9} {'vs plain':>8} {'vs 1':>5}  "
            f"{'redis us/ev':>11} {'redis cores':>11}  {'coord us/ev':>11} {'coord cores':>11}  "
            f"{'busy cores':>10} {'load 1m':>7}"
        )
        drains: list[Drain] = []
        for processes in counts:
            drain = processes_drain(port, client, keys, per_event, processes, args.batch)
            drains.append(drain)
            print(
                f"  {processes:>5} {drain.keys_per_s:>9,.0f} {drain.events_per_s:>9,.0f} "
                f"{drain.keys_per_s / plain:>8.1%} "
                f"{drain.events_per_s / drains[0].events_per_s:>4.2f}x  "
                f"{drain.server_s * 1e6 / drain.events:>11.2f} "
                f"{drain.server_s / drain.seconds:>11.2f}  "
                f"{drain.clients_s * 1e6 / drain.events:>11.2f} "
                f"{drain.clients_s / drain.seconds:>11.2f}  "
                f"{drain.machine_s / drain.seconds:>10.2f} {drain.load:>7.2f}",
                flush=True,
            )
            # fresh stream and group, no done markers: the next run starts alike
            if client.dbsize() != args.resident + drain.events + 1:  # done markers, stream
                raise SystemExit("a resident key was purged or an event was not marked done")
            drop_bookkeeping(client, SCALING_GROUP)
        for line in scaling_reading(drains, cores):
            print(f"  {line}")
        del keys


def scaling_reading(drains: list[Drain], cores: int) -> list[str]:
    """Where the curve flattens and what was saturated there, read from the figures: a step
    that adds under 15% events/s is flat; Redis is the limit when its main thread is near one
    core (0.85 or more), the cores when the machine's are 90% busy or more."""
    if len(drains) < 2:
        return ["one process count only: no curve"]
    first = drains[0]
    steps = list(itertools.pairwise(drains))
    gains = ", ".join(
        f"{p.processes}->{d.processes} {d.events_per_s / p.events_per_s:.2f}x" for p, d in steps
    )
    best = max(drains, key=lambda d: d.events_per_s)
    out = [
        f"events/s per step: {gains}; best {best.events_per_s:,.0f} with {best.processes} "
        f"processes, {best.events_per_s / first.events_per_s:.2f}x one process"
    ]
    flat = next(((p, d) for p, d in steps if d.events_per_s < 1.15 * p.events_per_s), None)
    at = flat[1] if flat else drains[-1]
    redis_cores = at.server_s / at.seconds
    busy = at.machine_s / at.seconds
    clients = at.clients_s / at.seconds
    other = max(0.0, busy - redis_cores - clients)
    where = (
        f"flattens from {flat[0].processes} to {at.processes} processes (under 1.15x)"
        if flat
        else f"does not flatten up to {at.processes} processes (every step 1.15x or more)"
    )
    limit = (
        "Redis, its main thread near one core"
        if redis_cores >= 0.85
        else "the cores the clients share, not Redis"
        if busy >= 0.9 * cores
        else "neither Redis nor the cores"
    )
    out.append(
        f"{where}; with {at.processes}: redis-server {redis_cores:.2f} of its one core, the "
        f"machine's {cores} cores {busy:.2f} busy (coordinators {clients:.2f}, redis-server "
        f"{redis_cores:.2f}, other sessions and this script {other:.2f}): the limit is {limit}"
    )
    out.append(
        f"one process: coordinator {first.clients_s / first.seconds:.2f} + redis-server "
        f"{first.server_s / first.seconds:.2f} cores, together "
        f"{(first.clients_s + first.server_s) / first.seconds:.2f} of {cores}; per event, "
        f"redis-server {first.server_s * 1e6 / first.events:.2f} -> "
        f"{at.server_s * 1e6 / at.events:.2f} us and the coordinators "
        f"{first.clients_s * 1e6 / first.events:.2f} -> {at.clients_s * 1e6 / at.events:.2f} us "
        f"of CPU from {first.processes} to {at.processes} processes"
    )
    ceiling = at.events / at.server_s if at.server_s else float("inf")
    # /proc counts CPU in 10 ms ticks: a drain shorter than a tick may show none
    per_core = (
        f"{at.events / at.clients_s:,.0f} events/s per core they get"
        if at.clients_s
        else "no figure per core (the drain was shorter than /proc's 10 ms CPU ticks)"
    )
    out.append(
        f"redis-server's CPU per event with {at.processes} processes would allow "
        f"{ceiling:,.0f} events/s on one full core, {ceiling / best.events_per_s:.1f}x the best "
        f"measured; the coordinators' {at.clients_s * 1e6 / at.events:.1f} us per event allow "
        f"{per_core}"
    )
    return out


def chunked(items: Iterator[bytes], size: int = 10_000) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _area(path: str, name: str) -> str:
    """Which part of the work a profiled function belongs to."""
    if "recv" in name or "sendall" in name:
        return "socket: waiting for redis-server, sending"
    if "redis/_parsers" in path:
        return "redis-py reply parsing (C with hiredis, else Python)"
    if "redis/connection" in path and name in ("pack", "pack_commands"):
        return "redis-py command packing"
    if "redis/_parsers/encoders" in path or name == "encode":
        return "redis-py command packing"
    if "redis/" in path:
        return "redis-py, other (clients, pipelines, callbacks)"
    if "runtime/_envelope" in path or "json" in path or "model/_plan" in path:
        return "envelope decoding (JSON, checks, Plan and FlushOp objects)"
    if "damestoilet_contracts" in path:
        return "coordinator, bus, purge target (own Python)"
    return "other (builtins, dataclass init, logging)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="backlog events")
    parser.add_argument("--shapes", default="1,4,10", help="exact keys per event, comma-separated")
    parser.add_argument("--resident", type=int, default=1_000_000, help="other keys resident")
    parser.add_argument("--batch", type=int, default=500, help="coordinator batch (XREADGROUP)")
    parser.add_argument("--rate", type=int, default=2000, help="events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--profile", action="store_true", help="profile the 1-key shape")
    parser.add_argument(
        "--phases", action="store_true", help="time each step of the 5-key shape (CPU)"
    )
    parser.add_argument(
        "--sections", default="throughput,scale,latency", help="which parts to run, in order"
    )
    parser.add_argument("--sizes", default="10000,1000000", help="resident keys of the scale runs")
    parser.add_argument(
        "--exact-events", type=int, default=20_000, help="scale: events of the 5-key shape"
    )
    parser.add_argument(
        "--prefix-events", type=int, default=2000, help="scale: prefix events (5 keys each)"
    )
    parser.add_argument(
        "--seed-seconds", type=float, default=20.0, help="scale: time cap of the seed's KEYS+DEL"
    )
    parser.add_argument(
        "--processes", default="1,2,4", help="scaling: coordinator processes, comma-separated"
    )
    parser.add_argument(
        "--scaling-shapes", default="5,1", help="scaling: exact keys per event, comma-separated"
    )
    args = parser.parse_args()
    sections = args.sections.split(",")
    logging.getLogger("damestoilet.coordinator").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as (port, _):
        client = redis.Redis(host="127.0.0.1", port=port)
        hiredis = "on" if redis.utils.HIREDIS_AVAILABLE else "off"
        print(
            f"redis-server {client.info('server')['redis_version']} on 127.0.0.1:{port}; "
            f"redis-py {redis.__version__}, hiredis {hiredis}"
        )
        if "throughput" in sections:
            load(client, [f"resident:{i}" for i in range(args.resident)])
            throughput(client, args)
        if "scaling" in sections:
            if "throughput" not in sections:
                load(client, [f"resident:{i}" for i in range(args.resident)])
            scaling(port, client, args)
        if "scale" in sections:
            scale(client, args)
        if "latency" not in sections:
            client.close()
            return
        client.flushall()
        print(f"latency: emit to purged at {args.rate:,} events/s for {args.seconds:g}s")
        found = latency(port, client, args.rate, args.seconds, Path(tmp) / "coordinator.log")
        found.sort()
        p50 = statistics.median(found)
        p99 = found[min(len(found) - 1, int(len(found) * 0.99))]
        print(
            f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {found[-1]:.2f} ms (target p99 < 10 ms)"
        )
        client.close()


if __name__ == "__main__":
    main()
