"""The four invalidation strategies of the comparison, over one real Redis.

Every strategy serves reads of ``catalog:product:p<i>`` (the cache, in the URL's database)
from a source of truth kept in Redis keys ``bench:source:product:p<i>`` of the next
database (it stands for the database; keyspace notifications need it to be Redis). A source
value is ``<version>:<row>``; a load reads it, then waits ``db_latency_ms`` (the rest of a
query's round trip), which is the window of the stale-set race.

- TTL-only: cache-aside (GET; on a miss load and SET with the TTL); nothing purges.
- Manual: the same with the backstop TTL, and an "operator" deletes a written key
  ``manual_delay_s`` after the write.
- Keyspace notifications: the same, and a listener on ``__keyspace@<db>__`` events of the
  source keys deletes the cache key (``notify-keyspace-events K$`` while it runs).
- Damestoilet: the writer emits a ``catalog.v1.ProductStockChanged`` (the class generated
  from ``schemas/``) with the :class:`Emitter`; a :class:`Coordinator` purges its plan
  from the stream; readers use the read-through :class:`Cache` with fill leases and the
  backstop TTL.

The keyspace listener and the coordinator run in processes of their own
(:mod:`bench._purgers`); the operator of the manual strategy, whose latency is its delay,
is a thread.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, ClassVar

import redis

from damestoilet_contracts.bench._purgers import PurgerProcess
from damestoilet_contracts.bench._workload import CompareSettings, Recorder
from damestoilet_contracts.model import ContractSet
from damestoilet_contracts.runtime import (
    Cache,
    ConsumePolicy,
    Emitter,
    RedisStreamBus,
    open_backend,
)

#: The event the writer of the damestoilet strategy emits for each write.
EVENT_TYPE = "catalog.v1.ProductStockChanged"
STREAM = "damestoilet:bench:events"
GROUP = "bench-coordinator"

_ROW = json.dumps({"name": "Product", "price_cents": 1299, "stock": 7}).encode()


def cache_key(entity: int) -> str:
    """The cache key of entity ``entity``."""
    return f"catalog:product:p{entity}"


def source_key(entity: int) -> str:
    """The source-of-truth key of entity ``entity``."""
    return f"bench:source:product:p{entity}"


def source_value(version: int) -> bytes:
    """A source row at ``version``."""
    return b"%d:%s" % (version, _ROW)


def version_of(value: bytes) -> int:
    """The version a cached or loaded value carries."""
    return int(value.split(b":", 1)[0])


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@dataclass(slots=True)
class BenchEnv:
    """What every strategy of one run shares: clients, settings, the recorder."""

    settings: CompareSettings
    #: The URL of the cache's database (the source is in the next one).
    url: str
    cache: redis.Redis
    source: redis.Redis
    source_db: int
    recorder: Recorder
    #: The contracts of ``schemas/`` and the event classes generated from them.
    contracts: ContractSet
    events: ModuleType
    #: The bus damestoilet's events travel on; None: a stream in the cache's Redis.
    bus_url: str | None = None


class Strategy:
    """One way of keeping the cache fresh: how it reads, and what a write sets off."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: Whether anything purges (TTL-only: no flush latency to speak of).
    purges: ClassVar[bool] = True

    def __init__(self, env: BenchEnv) -> None:
        self.env = env
        self.delay = env.settings.db_latency_ms / 1000

    def load(self, entity: int) -> bytes:
        """Read the source row, then sit out the rest of the query's latency."""
        value = self.env.source.get(source_key(entity))
        if value is None:
            raise LookupError(f"source row {source_key(entity)} is missing")
        if self.delay:
            time.sleep(self.delay)
        return _bytes(value)

    def start(self) -> None:
        """Start what runs beside the readers and the writer."""

    def prefill(self, rng: random.Random) -> None:
        """Fill every key, with residual TTLs spread over the strategy's TTL (a warm cache
        in steady state rather than one that expires all at once)."""
        raise NotImplementedError

    def read(self, entity: int) -> tuple[bytes, bool]:
        """The value a reader gets for ``entity``, and whether the cache served it."""
        raise NotImplementedError

    def committed(self, entity: int, version: int, sent: float) -> None:
        """The writer committed ``version`` of ``entity`` (sent at monotonic ``sent``)."""

    def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for the purges of writes already made."""

    def stop(self) -> None:
        """Stop what :meth:`start` started and undo its settings."""


class _CacheAside(Strategy):
    """Plain cache-aside: GET; on a miss load and SET with a TTL."""

    def ttl_s(self) -> float:
        return self.env.settings.backstop_ttl_s

    def prefill(self, rng: random.Random) -> None:
        ttl_ms = max(1, round(self.ttl_s() * 1000))
        pipe = self.env.cache.pipeline(transaction=False)
        for entity in range(self.env.settings.keys):
            pipe.set(cache_key(entity), source_value(0), px=rng.randint(1, ttl_ms))
        pipe.execute()

    def read(self, entity: int) -> tuple[bytes, bool]:
        key = cache_key(entity)
        value = self.env.cache.get(key)
        if value is not None:
            return _bytes(value), True
        loaded = self.load(entity)
        self.env.cache.set(key, loaded, px=max(1, round(self.ttl_s() * 1000)))
        return loaded, False

    def _purge(self, entity: int) -> None:
        began = time.monotonic()
        self.env.cache.delete(cache_key(entity))
        self.env.recorder.purged(entity, began, time.monotonic())


class TtlOnly(_CacheAside):
    """Cache-aside with a short TTL and no purge at all."""

    name = "ttl-only"
    label = "TTL-only"
    purges = False

    def ttl_s(self) -> float:
        return self.env.settings.ttl_s


class ManualPurge(_CacheAside):
    """Cache-aside with the backstop TTL; an operator deletes each written key after a delay."""

    name = "manual"
    label = "Manual purge"

    def __init__(self, env: BenchEnv) -> None:
        super().__init__(env)
        self._due: collections.deque[tuple[float, int]] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._operate, name="operator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def committed(self, entity: int, version: int, sent: float) -> None:
        with self._wake:
            # every delay is the same, so the queue stays in due order
            self._due.append((sent + self.env.settings.manual_delay_s, entity))
            self._wake.notify()

    def _operate(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self._due:
                    self._wake.wait()
                if self._stopping:
                    return
                due, entity = self._due[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                self._due.popleft()
            self._purge(entity)

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(5)


class KeyspaceNotifications(_CacheAside):
    """Cache-aside with the backstop TTL; a listener process on keyspace events of the
    source keys deletes their cache keys."""

    name = "keyspace"
    label = "Keyspace notifications"
    #: Keyspace events (K) for string commands ($): the least a listener on SET needs.
    FLAGS = "K$"

    def __init__(self, env: BenchEnv) -> None:
        super().__init__(env)
        self._previous: str | None = None
        pattern = f"__keyspace@{env.source_db}__:{source_key(0)[:-1]}*"
        self._purger = PurgerProcess(["keyspace", env.url, pattern], recorder=env.recorder)

    def start(self) -> None:
        current = self.env.cache.config_get("notify-keyspace-events")
        self._previous = str(next(iter(current.values()), ""))
        self.env.cache.config_set("notify-keyspace-events", self.FLAGS)
        self._purger.start()

    def drain(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.2))

    def stop(self) -> None:
        self._purger.stop()
        if self._previous is not None:
            self.env.cache.config_set("notify-keyspace-events", self._previous)


class Damestoilet(Strategy):
    """Emit -> stream -> coordinator (a process of its own) -> purge, with the read-through
    cache and fill leases."""

    name = "damestoilet"
    label = "damestoilet"

    def __init__(self, env: BenchEnv) -> None:
        super().__init__(env)
        self._event_class: Any = env.events.EVENTS[EVENT_TYPE]
        self.cache = Cache(env.cache, ttl=env.settings.backstop_ttl_s)
        source = "//damestoilet/bench"
        self._bus: Any
        if env.bus_url is None:
            self.emitter = Emitter(env.cache, source=source, stream=STREAM)
            self._bus = RedisStreamBus(env.cache, stream=STREAM, group=GROUP, consumer="bench")
        else:
            self.emitter = Emitter.from_url(env.bus_url, source=source, stream=STREAM)
            self._bus = open_backend(
                "bus", env.bus_url, stream=STREAM, group=GROUP, consumer="bench"
            )
        grace = json.dumps(dict(env.contracts.graph.grace))
        self._purger = PurgerProcess(
            ["coordinator", env.url, STREAM, GROUP, grace, env.bus_url or env.url],
            recorder=env.recorder,
        )

    def start(self) -> None:
        self._bus.open(ConsumePolicy())
        self._purger.start()

    def prefill(self, rng: random.Random) -> None:
        ttl_ms = max(1, round(self.env.settings.backstop_ttl_s * 1000))
        for entity in range(self.env.settings.keys):
            self.cache.get_or_fill(cache_key(entity), lambda: source_value(0))
        pipe = self.env.cache.pipeline(transaction=False)
        for entity in range(self.env.settings.keys):
            pipe.pexpire(cache_key(entity), rng.randint(1, ttl_ms))
        pipe.execute()

    def read(self, entity: int) -> tuple[bytes, bool]:
        missed = False

        def loader() -> bytes:
            nonlocal missed
            missed = True
            return self.load(entity)

        value = self.cache.get_or_fill(cache_key(entity), loader)
        return value, not missed

    def committed(self, entity: int, version: int, sent: float) -> None:
        event = self._event_class(
            product_id=f"p{entity}",
            warehouse_id="w1",
            quantity=version % 1000,
            changed_at=datetime.now(UTC).replace(microsecond=0),
        )
        self.emitter.emit(event)

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._bus.backlog()
            if info.pending == 0 and info.lag == 0:
                return
            time.sleep(0.02)

    def stop(self) -> None:
        self._purger.stop()
        self.emitter.close()
        if self.env.bus_url is not None:
            self._bus.close()


#: The strategies in the order they run.
STRATEGIES: tuple[type[Strategy], ...] = (TtlOnly, ManualPurge, KeyspaceNotifications, Damestoilet)
