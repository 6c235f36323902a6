"""The purgers of the comparison run in processes of their own, as they would in production
(a keyspace listener service, a coordinator service): they do not share the interpreter lock
with the benchmark's reader threads, which would otherwise add its waits to their latency.

A child is ``python -m damestoilet_contracts.bench._purgers keyspace|coordinator ...``. It
prints ``ready`` once it listens, then one line ``<entity> <began> <done>`` per cache key it
purged; the times are ``time.monotonic()``, one clock for every process of a Linux machine.
The parent reads the lines into the run's :class:`Recorder` while the child runs. SIGTERM
stops a child: the coordinator finishes the batch in hand and acknowledges it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

import redis

from damestoilet_contracts.bench._workload import Recorder
from damestoilet_contracts.model import FlushOp

READY = "ready"

_CACHE_PREFIX = "catalog:product:p"


def entity_of(key: str | bytes) -> int | None:
    """The entity index at the end of ``...:p<i>`` keys and channels, else None."""
    text = key.decode() if isinstance(key, bytes) else key
    _, sep, tail = text.rpartition(":p")
    return int(tail) if sep and tail.isdigit() else None


class PurgerProcess:
    """A child process that purges and reports, with the parent's reader of its reports."""

    def __init__(self, args: Sequence[str], *, recorder: Recorder) -> None:
        """``args`` follow ``python -m damestoilet_contracts.bench._purgers``."""
        self._args = [sys.executable, "-m", "damestoilet_contracts.bench._purgers", *args]
        self._recorder = recorder
        self._ready = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the child and wait until it listens; raises RuntimeError if it does not."""
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._process.stdout,), name="purger-reports"
        )
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                error = self._stop()
                raise RuntimeError(f"the purger process did not start: {error[-2000:]}")

    def stop(self) -> None:
        """SIGTERM the child, wait for it, and take its last reports."""
        self._stop()

    def _stop(self) -> str:
        process = self._process
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
        try:
            _, error = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, error = process.communicate()
        if self._reader is not None:
            self._reader.join(15)
        self._process = None
        return error or ""

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            parts = line.split()
            if parts == [READY]:
                self._ready.set()
            elif len(parts) == 3:
                self._recorder.purged(int(parts[0]), float(parts[1]), float(parts[2]))


class _Stop:
    """A SIGTERM flag for a child's loop."""

    def __init__(self) -> None:
        self.flag = threading.Event()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: self.flag.set())


def _report(entity: int, began: float, done: float) -> None:
    sys.stdout.write(f"{entity} {began!r} {done!r}\n")
    sys.stdout.flush()


def _ready() -> None:
    sys.stdout.write(READY + "\n")
    sys.stdout.flush()


def keyspace_main(url: str, pattern: str) -> None:
    """Child: listen on keyspace events matching ``pattern``; on a ``set`` of a source key,
    delete its cache key in the database of ``url`` and report it."""
    stop = _Stop()
    client = redis.Redis.from_url(url)
    pubsub: Any = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.psubscribe(pattern)
    pubsub.get_message(timeout=5.0)  # the subscription's confirmation
    _ready()
    while not stop.flag.is_set():
        message = pubsub.get_message(timeout=0.1)
        if not message or message.get("data") != b"set":
            continue
        entity = entity_of(message["channel"])
        if entity is None:
            continue
        began = time.monotonic()
        client.delete(f"{_CACHE_PREFIX}{entity}")
        _report(entity, began, time.monotonic())
    pubsub.close()
    client.close()


class _ReportingTarget:
    """A purge target that reports the catalog product keys each stage purged, and when."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        began = time.monotonic()
        out = self.inner.purge_stage(ops)
        done = time.monotonic()
        for op in ops:
            if op.op == "key" and op.key.startswith(_CACHE_PREFIX):
                entity = entity_of(op.key)
                if entity is not None:
                    _report(entity, began, done)
        return out


def coordinator_main(
    url: str, stream: str, group: str, grace: Mapping[str, float], bus_url: str
) -> None:
    """Child: run a :class:`Coordinator` on ``stream`` of the bus at ``bus_url`` (the cache's
    Redis, or another bus) until SIGTERM, purging the Redis at ``url`` and reporting the
    product keys it purged."""
    from damestoilet_contracts.runtime import (
        Coordinator,
        CoordinatorConfig,
        RedisDoneStore,
        RedisPurgeTarget,
        RedisStreamBus,
        open_backend,
    )

    client = redis.Redis.from_url(url)
    bus: Any = (
        RedisStreamBus(client, stream=stream, group=group, consumer="bench")
        if bus_url == url
        else open_backend("bus", bus_url, stream=stream, group=group, consumer="bench")
    )
    target = _ReportingTarget(RedisPurgeTarget(client, grace=grace))
    config = CoordinatorConfig(
        stream=stream,
        group=group,
        consumer="bench",
        block_ms=100,
        claim_interval_s=3600.0,
        info_interval_s=3600.0,
    )
    coordinator = Coordinator(bus, target, RedisDoneStore(client), config)
    coordinator.open()
    _ready()
    coordinator.run(handle_signals=True)
    coordinator.close()
    client.close()


def main(argv: Sequence[str]) -> None:
    """``keyspace URL PATTERN`` or ``coordinator URL STREAM GROUP GRACE_JSON BUS_URL``."""
    if argv[:1] == ["keyspace"] and len(argv) == 3:
        keyspace_main(argv[1], argv[2])
    elif argv[:1] == ["coordinator"] and len(argv) == 6:
        coordinator_main(argv[1], argv[2], argv[3], json.loads(argv[4]), argv[5])
    else:
        sys.exit(
            f"usage: keyspace URL PATTERN | coordinator URL STREAM GROUP GRACE_JSON BUS_URL; {argv}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
