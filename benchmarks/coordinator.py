"""The flush coordinator end to end: throughput on a backlog, and emit-to-purged latency at a
steady rate, against a redis-server this script starts on a free loopback port.

Throughput, for each shape of --shapes (default 1,4,10 exact keys per event): --events events
(default 100,000) are emitted onto the stream as a backlog while --resident other keys
(default 1,000,000) sit in the same server; a coordinator (in this process, JSON logs off)
drains the backlog, and the script prints keys purged per second next to a plain pipelined
UNLINK of the same keys from Python (median of three), in the same run, and checks that every
target is gone and every resident key is still there. With --profile, the 1-key shape is
drained once more under cProfile and the functions that cost most are printed.

Latency: a ``damestoilet coordinator`` process consumes while this script emits --rate
events per second (default 2,000) for --seconds (default 10), one XADD per event; each purged
event's latency (from the envelope's ``time`` to purge done, as the coordinator logs it) is
collected from the JSON log and p50, p99 and max are printed. The envelope time has
millisecond resolution and is truncated, so a figure may read up to 1 ms high.

Whether redis-py uses hiredis (the ``fast`` extra) is printed first: it speeds up both sides.

    python benchmarks/coordinator.py [--events 100000] [--shapes 1,4,10] [--batch 500]
                                     [--resident 1000000] [--rate 2000] [--seconds 10]
                                     [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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
from tests.servers import redis_server

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


def coordinator_backlog(
    client: redis.Redis,
    keys: list[str],
    batch: int,
    per_event: int,
    profile: cProfile.Profile | None = None,
) -> float:
    client.delete(STREAM)
    load(client, keys)
    emitter = Emitter(client, source="//bench", stream=STREAM, maxlen=None)
    events = [keys[i : i + per_event] for i in range(0, len(keys), per_event)]
    for start in range(0, len(events), 1000):
        emitter.emit_envelopes([envelope(*e) for e in events[start : start + 1000]])
    config = CoordinatorConfig(stream=STREAM, consumer="bench", batch=batch, block_ms=1)
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer="bench")
    worker = Coordinator(bus, RedisPurgeTarget(client), RedisDoneStore(client), config)
    gc.collect()
    if profile is not None:
        profile.enable()
    cpu = server_us(client)
    started = time.perf_counter()
    worker.run(stop_when_idle=True)
    elapsed = time.perf_counter() - started
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
        f"{'events/s':>8}  redis-server CPU: us/key plain, us/event coordinator"
    )
    for per_event in shapes:
        keys = [f"catalog:product:{i}" for i in range(args.events * per_event)]
        plain = statistics.median(plain_unlink(client, keys) for _ in range(3))
        rate = coordinator_backlog(client, keys, args.batch, per_event)
        print(
            f"  {per_event:>10}  {plain:>14,.0f}  {rate:>12,.0f}  {rate / plain:>6.1%}  "
            f"{rate / per_event:>8,.0f}  {SERVER_US['plain']:.2f}, "
            f"{SERVER_US['coordinator']:.2f}",
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
    args = parser.parse_args()
    logging.getLogger("damestoilet.coordinator").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as (port, _):
        client = redis.Redis(host="127.0.0.1", port=port)
        hiredis = "on" if redis.utils.HIREDIS_AVAILABLE else "off"
        print(
            f"redis-server {client.info('server')['redis_version']} on 127.0.0.1:{port}; "
            f"redis-py {redis.__version__}, hiredis {hiredis}"
        )
        load(client, [f"resident:{i}" for i in range(args.resident)])
        throughput(client, args)

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
