"""The flush coordinator end to end: throughput on a backlog, and emit-to-purged latency at a
steady rate, against a redis-server this script starts on a free loopback port.

Throughput: --events events (default 100,000; --keys-per-event existing keys each, default 1)
are emitted onto the stream as a backlog while --resident other keys (default 1,000,000) sit
in the same server; a coordinator (in this process, JSON logs off) drains the backlog, and
the script prints keys purged per second next to a plain pipelined UNLINK of the same keys
from Python, in the same run, and checks that every target is gone and every resident key is
still there.

Latency: a ``damestoilet coordinator`` process consumes while this script emits --rate
events per second (default 2,000) for --seconds (default 10), one XADD per event; each purged
event's latency (from the envelope's ``time`` to purge done, as the coordinator logs it) is
collected from the JSON log and p50, p99 and max are printed. The envelope time has
millisecond resolution and is truncated, so a figure may read up to 1 ms high.

    python benchmarks/coordinator.py [--events 100000] [--keys-per-event 1] [--batch 500]
                                     [--resident 1000000] [--rate 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisPurgeTarget,
    RedisStreamBus,
)
from tests.servers import redis_server

STREAM = "bench:events"
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


def plain_unlink(client: redis.Redis, keys: list[str], per_call: int = 500) -> float:
    load(client, keys)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), per_call):
        pipe.unlink(*keys[start : start + per_call])
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - started
    assert left_of(client, keys) == 0
    return len(keys) / elapsed


def coordinator_backlog(client: redis.Redis, keys: list[str], batch: int, per_event: int) -> float:
    client.delete(STREAM)
    load(client, keys)
    emitter = Emitter(client, source="//bench", stream=STREAM, maxlen=None)
    events = [keys[i : i + per_event] for i in range(0, len(keys), per_event)]
    for start in range(0, len(events), 1000):
        emitter.emit_envelopes([envelope(*e) for e in events[start : start + 1000]])
    config = CoordinatorConfig(stream=STREAM, consumer="bench", batch=batch, block_ms=1)
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer="bench")
    worker = Coordinator(bus, RedisPurgeTarget(client), client, config)
    started = time.perf_counter()
    worker.run(stop_when_idle=True)
    elapsed = time.perf_counter() - started
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
        "--consumer", "bench", "--batch", "100",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="backlog events")
    parser.add_argument("--keys-per-event", type=int, default=1, help="keys each event purges")
    parser.add_argument("--resident", type=int, default=1_000_000, help="other keys resident")
    parser.add_argument("--batch", type=int, default=500, help="coordinator batch (XREADGROUP)")
    parser.add_argument("--rate", type=int, default=2000, help="events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = parser.parse_args()
    logging.getLogger("damestoilet.coordinator").setLevel(logging.WARNING)

    keys = [f"catalog:product:{i}" for i in range(args.events * args.keys_per_event)]
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as (port, _):
        client = redis.Redis(host="127.0.0.1", port=port)
        print(f"redis-server {client.info('server')['redis_version']} on 127.0.0.1:{port}")
        load(client, [f"resident:{i}" for i in range(args.resident)])
        print(
            f"throughput: {args.events:,} events, {args.keys_per_event} key(s) each, "
            f"{args.resident:,} resident keys"
        )
        plain = statistics.median(plain_unlink(client, keys) for _ in range(3))
        print(f"  plain pipelined UNLINK (500 keys/call)  {plain:>12,.0f} keys/s")
        rate = coordinator_backlog(client, keys, args.batch, args.keys_per_event)
        print(f"  coordinator (batch {args.batch})              {rate:>12,.0f} keys/s")
        print(f"  coordinator / plain: {rate / plain:.0%} (target >= 25%)")
        if client.dbsize() - args.resident != args.events:  # only done markers may remain
            raise SystemExit("a resident key was purged or a target key survived")

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
