"""The transactional outbox: what it costs and what it saves, against a redis-server and a
PostgreSQL cluster this script starts on free loopback ports (and a SQLite file in a temp
dir). Every figure is printed next to a baseline measured in the same run.

1. ``add`` overhead: --tx transactions that each upsert one product row and commit, with and
   without ``Outbox.add`` of its event in the same transaction (blocks of 200 alternate, so
   both see the same load); microseconds per transaction, per database.
2. Relay throughput: a backlog of --backlog rows is drained by a relay (in this process,
   --batch rows per round) onto a Redis stream; events per second, next to the emitter's
   pipelined ``XADD`` of the same envelopes (the bus's own cost).
3. Commit-to-purged latency at --rate writes per second for --seconds: a writer commits
   (data + outbox row); a ``damestoilet relay`` and a ``damestoilet coordinator`` process
   carry the event; Redis keyspace notifications say when the key is gone. Next to it the
   same writer emitting right after its commit (no outbox). p50, p99, max.
4. The fault (SQLite): --fault-writes writes by a writer process that kills itself with SIGKILL
   between its commit and its emit in --fault-rate of them (restarted each time). Before each
   write the key is cached; at the end, keys whose write committed but which are still
   cached are stale forever (no TTL). Emit-after-commit against the outbox.

SQLite runs in WAL mode with ``synchronous=NORMAL``; the PostgreSQL test cluster runs with
``fsync=off`` (tests/servers_postgres.py), so commits cost CPU, not disk flushes.

    python benchmarks/outbox.py [--tx 2000] [--backlog 20000] [--batch 500] [--rate 500]
                                [--seconds 10] [--fault-writes 400] [--fault-rate 0.05]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.outbox import Outbox, Relay, open_publisher, open_store
from damestoilet_contracts.runtime import Emitter
from tests.servers import redis_server
from tests.servers_postgres import postgres_server

STREAM = "bench:outbox"
SOURCE = "//bench/outbox"
CLI = [sys.executable, "-c", "from damestoilet_contracts.cli import main; main()"]


class Changed:
    """One product's invalidation: purges ``bench:p:<id>`` (a ContractEvent)."""

    EVENT_TYPE = "bench.v1.ProductChanged"
    SCHEMA_FINGERPRINT = "bench"
    RULES_FINGERPRINT = "bench"
    CONTENT_TYPE = "application/json"

    def __init__(self, product: int) -> None:
        self.product = product

    def to_bytes(self) -> bytes:
        return b'{"product":%d}' % self.product

    def flush_plan(self) -> Plan:
        return Plan(self.EVENT_TYPE, ((FlushOp("key", "default", f"bench:p:{self.product}"),),))


def connect(db_url: str) -> Any:
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30)
        # what docs/outbox.md recommends: readers (the relay) never block the writer
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    return psycopg.connect(db_url)


def prepare(db_url: str) -> None:
    with contextlib.closing(connect(db_url)) as conn:
        Outbox(source=SOURCE).create_table(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS product (id INTEGER PRIMARY KEY, cents INTEGER)")
        conn.execute("DELETE FROM product")
        conn.execute("DELETE FROM damestoilet_outbox")
        conn.commit()


def upsert(conn: Any, product: int, cents: int, sqlite: bool) -> None:
    mark = "?" if sqlite else "%s"
    conn.execute(
        f"INSERT INTO product (id, cents) VALUES ({mark}, {mark}) "
        "ON CONFLICT (id) DO UPDATE SET cents = excluded.cents",
        (product, cents),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. add overhead --------------------------------------------------------------------------


def add_overhead(db_url: str, count: int) -> tuple[float, float]:
    """(µs per transaction without the outbox, with it)."""
    prepare(db_url)
    sqlite = db_url.startswith("sqlite")
    box = Outbox(source=SOURCE)
    plain: list[float] = []
    boxed: list[float] = []
    with contextlib.closing(connect(db_url)) as conn:
        for block in range(0, count, 200):
            for with_outbox, out in ((False, plain), (True, boxed)):
                start = time.perf_counter()
                for i in range(block, min(count, block + 200)):
                    upsert(conn, i, i, sqlite)
                    if with_outbox:
                        box.add(conn, Changed(i))
                    conn.commit()
                out.append((time.perf_counter() - start) / min(200, count - block))
            conn.execute("DELETE FROM damestoilet_outbox")
            conn.commit()
    return statistics.median(plain) * 1e6, statistics.median(boxed) * 1e6


# -- 2. relay throughput ----------------------------------------------------------------------


def relay_throughput(db_url: str, redis_url: str, backlog: int, batch: int) -> tuple[float, float]:
    """(events/s of a relay draining ``backlog`` rows, events/s of pipelined XADDs alone)."""
    prepare(db_url)
    client = redis.Redis.from_url(redis_url)
    box = Outbox(source=SOURCE)
    envelopes = [box.envelope(Changed(i)) for i in range(backlog)]
    with contextlib.closing(connect(db_url)) as conn:
        for start in range(0, backlog, 1000):
            box.add_envelopes(conn, envelopes[start : start + 1000])
            conn.commit()
    client.delete(STREAM)
    relay = Relay(open_store(db_url), open_publisher(redis_url, stream=STREAM), batch=batch)
    start = time.perf_counter()
    drained = relay.drain()
    relay_s = time.perf_counter() - start
    assert drained == backlog and client.xlen(STREAM) == backlog, (drained, backlog)
    relay.store.close()
    relay.publisher.close()
    client.delete(STREAM)
    with Emitter(client, source=SOURCE, stream=STREAM) as emitter:
        start = time.perf_counter()
        for i in range(0, backlog, batch):
            emitter.emit_envelopes(envelopes[i : i + batch])
        emit_s = time.perf_counter() - start
    client.delete(STREAM)
    client.close()
    return backlog / relay_s, backlog / emit_s


# -- 3. commit-to-purged latency --------------------------------------------------------------


class Proc:
    def __init__(self, *args: str, log: Path) -> None:
        self.stderr = log.open("wb")
        self.popen = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 30
        while '"msg": "started"' not in log.read_text(errors="replace"):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text(errors="replace"))
            time.sleep(0.02)

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        self.popen.wait(60)
        self.stderr.close()


def watch_deletes(
    redis_url: str, seen: dict[int, float], stop: threading.Event
) -> threading.Thread:
    """A thread recording when each ``bench:p:<id>`` key is deleted (keyspace events)."""
    client = redis.Redis.from_url(redis_url)
    client.config_set("notify-keyspace-events", "Kg")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("__keyspace@0__:bench:p:*")

    def run() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message and message["data"] in (b"del", b"unlink"):
                seen.setdefault(int(message["channel"].rsplit(b":", 1)[1]), time.time())
        pubsub.close()
        client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.2)  # subscribed
    return thread


def latency(
    db_url: str | None, redis_url: str, rate: int, seconds: float, tmp: Path
) -> tuple[float, float, float]:
    """(p50, p99, max) ms from commit to the key gone; ``db_url`` None: emit after commit
    into a SQLite file, no outbox."""
    client = redis.Redis.from_url(redis_url)
    client.delete(STREAM)
    count = int(rate * seconds)
    client.mset({f"bench:p:{i}": "cached" for i in range(count)})
    target = db_url or f"sqlite:///{tmp / 'plain.db'}"
    prepare(target)
    procs = [
        Proc(
            "coordinator", "--redis", redis_url, "--stream", STREAM, "--log-level", "info",
            "--block-ms", "100", log=tmp / "coordinator.log",
        )
    ]  # fmt: skip
    if db_url:
        procs.append(
            Proc(
                "relay", "--db", db_url, "--bus", redis_url, "--stream", STREAM,
                "--poll", "0.01", log=tmp / "relay.log",
            )
        )  # fmt: skip
    seen: dict[int, float] = {}
    stop = threading.Event()
    watcher = watch_deletes(redis_url, seen, stop)
    committed: dict[int, float] = {}
    box = Outbox(source=SOURCE)
    sqlite = target.startswith("sqlite")
    with (
        contextlib.closing(connect(target)) as conn,
        Emitter(client, source=SOURCE, stream=STREAM) as emitter,
    ):
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            upsert(conn, i, i, sqlite)
            if db_url:
                box.add(conn, Changed(i))
            conn.commit()
            committed[i] = time.time()
            if not db_url:
                emitter.emit(Changed(i))
    deadline = time.monotonic() + 60
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join(5)
    for proc in procs:
        proc.stop()
    client.close()
    if len(seen) < count:
        raise RuntimeError(f"only {len(seen)} of {count} keys were purged")
    ms = [(seen[i] - committed[i]) * 1000 for i in range(count)]
    return pct(ms, 0.50), pct(ms, 0.99), max(ms)


# -- 4. the fault ------------------------------------------------------------------------------


def writer(db_url: str, redis_url: str, first: int, last: int, mode: str, rate: float) -> None:
    """The faulty service (a subprocess): writes products ``first``..``last-1``, each cached
    first; dies with SIGKILL between commit and emit in ``rate`` of them."""
    client = redis.Redis.from_url(redis_url)
    box = Outbox(source=SOURCE)
    emitter = Emitter(client, source=SOURCE, stream=STREAM)
    sqlite = db_url.startswith("sqlite")
    conn = connect(db_url)
    for i in range(first, last):
        client.set(f"bench:p:{i}", "cached")  # a reader filled the cache with the old row
        upsert(conn, i, i, sqlite)
        if mode == "outbox":
            box.add(conn, Changed(i))
        conn.commit()
        if random.random() < rate:
            os.kill(os.getpid(), signal.SIGKILL)  # a deploy, an OOM kill: before the emit
        if mode == "plain":
            emitter.emit(Changed(i))


def fault(
    db_url: str, redis_url: str, mode: str, writes: int, rate: float, tmp: Path
) -> tuple[int, int]:
    """(writes killed between commit and emit, keys stale forever afterwards)."""
    client = redis.Redis.from_url(redis_url)
    client.delete(STREAM)
    client.delete(*client.keys("bench:p:*") or ["-"])
    prepare(db_url)
    procs = [
        Proc(
            "coordinator", "--redis", redis_url, "--stream", STREAM, "--log-level", "info",
            "--block-ms", "100", log=tmp / f"fault-coordinator-{mode}.log",
        )
    ]  # fmt: skip
    if mode == "outbox":
        procs.append(
            Proc(
                "relay", "--db", db_url, "--bus", redis_url, "--stream", STREAM, "--poll",
                "0.01", log=tmp / f"fault-relay-{mode}.log",
            )
        )  # fmt: skip
    kills = 0
    while True:
        with contextlib.closing(connect(db_url)) as conn:
            (done,) = conn.execute("SELECT count(*) FROM product").fetchone()
        if done >= writes:
            break
        code = subprocess.call(
            [sys.executable, __file__, "--writer", db_url, redis_url, str(done), str(writes), mode,
             str(rate)],
        )  # fmt: skip
        kills += code == -signal.SIGKILL
    # let the coordinator (and the relay) finish what was sent
    deadline = time.monotonic() + 30
    last = -1
    while time.monotonic() < deadline:
        left = len(client.keys("bench:p:*"))
        if left == last:
            break
        last = left
        time.sleep(1.0)
    for proc in procs:
        proc.stop()
    stale = len(client.keys("bench:p:*"))
    client.close()
    return kills, stale


# -- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[str, str, str]]:
    with redis_server(tmp / "redis") as (port, _), postgres_server() as pg:
        yield f"redis://127.0.0.1:{port}/0", f"sqlite:///{tmp / 'bench.db'}", pg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tx", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fault-writes", type=int, default=400)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--writer", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        db, url, first, last, mode, rate = args.writer
        writer(db, url, int(first), int(last), mode, float(rate))
        return
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; load average {os.getloadavg()}"
    )
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with servers(tmp) as (redis_url, sqlite_url, pg_url):
            dbs = {"SQLite": sqlite_url, "PostgreSQL": pg_url}
            print(f"\n1. add overhead: {args.tx} transactions (upsert one row + commit)")
            for label, url in dbs.items():
                plain, boxed = add_overhead(url, args.tx)
                print(
                    f"  {label:10}  without outbox {plain:7.1f} us/tx   with Outbox.add "
                    f"{boxed:7.1f} us/tx   overhead {boxed - plain:+6.1f} us "
                    f"({(boxed / plain - 1) * 100:+.0f}%)"
                )
            print(f"\n2. relay throughput: a backlog of {args.backlog} rows, --batch {args.batch}")
            for label, url in dbs.items():
                relayed, emitted = relay_throughput(url, redis_url, args.backlog, args.batch)
                print(
                    f"  {label:10}  relay {relayed:9.0f} events/s   baseline: emitter XADD "
                    f"pipeline {emitted:9.0f} events/s"
                )
            print(f"\n3. commit-to-purged at {args.rate} writes/s for {args.seconds:g} s")
            for label, maybe in (("emit after commit", None), *dbs.items()):
                p50, p99, top = latency(maybe, redis_url, args.rate, args.seconds, tmp)
                name = label if maybe is None else f"outbox, {label}"
                print(f"  {name:20}  p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   max {top:6.1f} ms")
            print(
                f"\n4. the fault: {args.fault_writes} writes, the writer killed between commit "
                f"and emit in {args.fault_rate:.0%} of them"
            )
            for mode in ("plain", "outbox"):
                kills, stale = fault(
                    sqlite_url, redis_url, mode, args.fault_writes, args.fault_rate, tmp
                )
                name = "emit after commit" if mode == "plain" else "outbox + relay"
                print(f"  {name:20}  writer killed {kills:3d} times   stale forever: {stale}")


if __name__ == "__main__":
    main()
