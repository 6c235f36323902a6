"""The flush coordinator: reads envelopes from the bus, purges their plans stage by stage,
marks them done, acknowledges; retries with backoff and dead-letters what cannot be purged.

Per batch, in this order (DESIGN.md, delivery guarantees):

1. decode every entry; a malformed one is dead-lettered at once with the reason;
2. skip ids already done by this group (``_layout.done_key``), counting duplicates: one
   script call that answers only the positions seen (standalone), or one ``MGET`` by slot;
3. take each plan from its envelope, or from a flush handler of its type; none: dead-letter;
4. purge stage 1 of every event of the batch, then stage 2, ... (merging events keeps each
   event's order and saves round trips); if that fails, purge event by event to find which;
5. ``SET done_key NX EX`` for the purged events, only after their purge succeeded;
6. dead-letter what must be, then ``XACK`` purged, duplicate and dead-lettered entries.

A failed event stays pending and is taken again (``XCLAIM``, which counts a delivery) after an
exponential backoff with jitter; once its delivery count reaches ``max_deliveries`` it is
dead-lettered with the last error. On start the coordinator re-reads its own pending entries,
then reclaims entries idle too long in other consumers (``XAUTOCLAIM``), and does so again
every ``claim_interval_s``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import redis
from redis.cluster import RedisCluster

from damestoilet_contracts._errors import DamestoiletError, EnvelopeError, PurgeInterruptedError
from damestoilet_contracts.model import FlushOp, Plan, StormGuard
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._metrics import CoordinatorStats
from damestoilet_contracts.runtime._plan_check import FlushSpec, PlanChecker
from damestoilet_contracts.runtime._redact import redact
from damestoilet_contracts.runtime._seams import (
    Bus,
    BusEntry,
    HandlerRegistry,
    Lost,
    PurgeTarget,
    dlq_stream_name,
)
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime.redis._bus import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    RedisStreamBus,
    SyncRedis,
    connect,
)
from damestoilet_contracts.runtime.redis._layout import DEFAULT_DONE_TTL_S, done_key

logger = logging.getLogger("damestoilet.coordinator")

#: The 1-based positions of the KEYS that exist: one call for a batch's dedup check on a
#: standalone server, whose reply is empty in the common case (an MGET answers a nil per key,
#: each one parsed in Python).
_SEEN_LUA = """
local seen = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then seen[#seen + 1] = i end
end
return seen
"""

#: Marks every KEYS[i] done (SET NX EX ARGV[1]) in one call on a standalone server.
_MARK_DONE_LUA = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'NX', 'EX', ARGV[1])
end
return #KEYS
"""


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """How a coordinator reads, retries, reclaims and remembers."""

    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    #: This consumer's name; None: ``<hostname>-<pid>``. Keep it stable across restarts to
    #: re-read its own pending entries at once instead of waiting for a reclaim.
    consumer: str | None = None
    #: None: ``<stream>:dlq``.
    dlq_stream: str | None = None
    #: Entries per ``XREADGROUP``. Per-batch costs (round trips, commands) are shared by
    #: the batch, so a backlog drains faster with more; a quiet stream reads what is there.
    batch: int = 500
    #: How long one read waits for new entries (ms); also bounds how fast a stop is noticed.
    block_ms: int = 1000
    #: Failed purge attempts after which an entry is dead-lettered. Only a purge that ran
    #: and failed counts: a restart, a kill or a reclaim re-reads an entry (Redis counts a
    #: delivery) without trying it.
    max_deliveries: int = 5
    #: Reads of one entry without an ack (coordinators died while it was in hand) after
    #: which it is taken for one that kills them and dead-lettered unread; well above any
    #: crash loop an operator would let run.
    crash_deliveries: int = 50
    #: Backoff before the n-th retry: ``min(retry_max_s, retry_base_s * 2**(n-1))``, jittered
    #: into the upper half of that.
    retry_base_s: float = 0.1
    retry_max_s: float = 10.0
    #: Entries idle this long in any consumer are reclaimed (ms), every ``claim_interval_s``.
    claim_min_idle_ms: int = 60_000
    claim_interval_s: float = 30.0
    #: How long an event id stays marked done (s).
    done_ttl_s: int = DEFAULT_DONE_TTL_S
    #: How often lag and pending are read from ``XINFO GROUPS`` (s).
    info_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_deliveries < 1 or self.done_ttl_s < 1:
            raise ValueError("batch, max_deliveries and done_ttl_s must be at least 1")
        if self.crash_deliveries < 1:
            raise ValueError("crash_deliveries must be at least 1")
        if self.block_ms < 0 or self.claim_min_idle_ms < 0:
            raise ValueError("block_ms and claim_min_idle_ms must not be negative")
        if self.retry_base_s < 0 or self.retry_max_s < self.retry_base_s:
            raise ValueError("retry_base_s must be >= 0 and retry_max_s >= retry_base_s")


def load_flush_specs(package: str) -> dict[str, tuple[FlushSpec, ...]] | None:
    """The ``FLUSH_SPECS`` of a generated handlers package (None when it has none: generated
    before they existed). Raises :class:`DamestoiletError` when it cannot be imported."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise DamestoiletError(
            f"cannot import handlers package {package!r}: {exc}; is it installed and on PYTHONPATH?"
        ) from exc
    specs = getattr(module, "FLUSH_SPECS", None)
    if not isinstance(specs, Mapping):
        return None
    return {
        str(name): tuple(
            (str(op), str(target), str(mode), str(template)) for op, target, mode, template in items
        )
        for name, items in specs.items()
    }


def load_handlers(package: str) -> dict[str, Callable[[bytes], Plan]]:
    """The flush handlers a package exposes as ``HANDLERS`` (type full name -> handler).

    Raises :class:`DamestoiletError` when the package cannot be imported or has no mapping
    named ``HANDLERS``.
    """
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise DamestoiletError(
            f"cannot import handlers package {package!r}: {exc}; is it installed and on PYTHONPATH?"
        ) from exc
    handlers = getattr(module, "HANDLERS", None)
    if not isinstance(handlers, Mapping):
        raise DamestoiletError(
            f"handlers package {package!r} has no HANDLERS mapping (type name -> handler)"
        )
    return {str(name): handler for name, handler in handlers.items()}


@dataclass(slots=True)
class _Work:
    entry: BusEntry
    envelope: Envelope
    plan: Plan | None = None
    #: ``done_key`` of the envelope id for this group, computed once per event.
    done: bytes = b""


@dataclass(slots=True)
class _Retry:
    due: float
    reason: str


@dataclass(slots=True)
class _Outcome:
    """What one batch decided, sent to Redis at its end."""

    done: list[_Work] = field(default_factory=list)
    duplicates: list[_Work] = field(default_factory=list)
    dead: list[tuple[BusEntry, str, Envelope | None]] = field(default_factory=list)
    failed: list[tuple[_Work, str]] = field(default_factory=list)
    #: Stopped mid-stage: left pending, neither a failure nor done (purged again later).
    interrupted: list[_Work] = field(default_factory=list)


class Coordinator:
    """Consumes envelopes from a bus and purges their plans through a purge target."""

    def __init__(
        self,
        bus: Bus,
        target: PurgeTarget,
        done_client: SyncRedis,
        config: CoordinatorConfig | None = None,
        *,
        handlers: HandlerRegistry | None = None,
        stats: CoordinatorStats | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
    ) -> None:
        """Read from ``bus``, purge through ``target``, mark ids done in ``done_client``.

        ``handlers`` plan envelopes that arrive without a plan (type name -> callable taking
        the payload bytes, returning a :class:`Plan`). ``flush_specs`` (event type ->
        ``(op, target, mode, template)`` its plans may hold, from ``compiler.flush_specs``
        or a generated package's ``FLUSH_SPECS``) has every plan checked against the
        contracts before anything is deleted; without them, plans are only kept out of the
        coordinator's own keys (see :class:`PlanChecker`). With ``signing``, an entry that
        is unsigned or signed with no accepted key is dead-lettered unread. Raises
        TemplateError for a malformed template in ``flush_specs``.
        """
        self.bus = bus
        self.target = target
        self.config = config or CoordinatorConfig()
        self.handlers: HandlerRegistry = dict(handlers or {})
        own = [bus.stream, getattr(bus, "dlq_stream", None) or dlq_stream_name(bus.stream)]
        self.checker = PlanChecker(flush_specs, protected=own)
        self.signing = signing
        self.stats = stats or CoordinatorStats()
        self._done: Any = done_client
        self._done_is_cluster = isinstance(done_client, RedisCluster)
        self._stop = threading.Event()
        if hasattr(target, "interrupt"):
            # a target that can stop between round trips gets the stop event: a long stage
            # (a prefix over millions of keys) never holds SIGTERM hostage
            target.interrupt = self._stop
        self._retries: dict[str, _Retry] = {}
        self._reread_pending = True
        self._next_claim = 0.0
        self._next_info = 0.0
        self._random = random.Random()
        self._mark_script: Any = None
        self._seen_script: Any = None

    @classmethod
    def from_url(
        cls,
        redis_url: str,
        config: CoordinatorConfig | None = None,
        *,
        bus_url: str | None = None,
        handlers: HandlerRegistry | None = None,
        grace: Mapping[str, float] | None = None,
        cluster: bool = False,
        bus_cluster: bool | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
        signing: SigningKeys | None = None,
    ) -> Coordinator:
        """A coordinator purging the Redis at ``redis_url``, reading the stream at ``bus_url``
        (default: the same server); ``grace`` maps targets to soft-purge windows (s);
        ``prefix_index`` names the targets whose prefixes are read from the prefix index;
        ``storm`` maps targets to their storm guard (see :mod:`runtime._storm`);
        ``cluster`` / ``bus_cluster`` (default: ``cluster``) say a URL names a cluster node.
        Raises ValueError for a malformed URL."""
        from damestoilet_contracts.runtime.redis._purge import RedisPurgeTarget

        config = config or CoordinatorConfig()
        cache = connect(redis_url, cluster=cluster)
        bus_cluster = cluster if bus_cluster is None else bus_cluster
        bus_client = cache if bus_url is None else connect(bus_url, cluster=bus_cluster)
        bus = RedisStreamBus(
            bus_client,
            stream=config.stream,
            group=config.group,
            consumer=config.consumer,
            dlq_stream=config.dlq_stream,
        )
        target = RedisPurgeTarget(cache, grace=grace, prefix_index=prefix_index, storm=storm)
        return cls(
            bus,
            target,
            cache,
            config,
            handlers=handlers,
            flush_specs=flush_specs,
            signing=signing,
        )

    # -- running ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (safe from any thread or signal)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop.is_set()

    def run(self, *, stop_when_idle: bool = False, handle_signals: bool = False) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``, main thread
        only); with ``stop_when_idle``, also return once a read finds nothing new and no
        retry is waiting. Redis errors outside a purge are logged and retried, not raised."""
        with self._signals(handle_signals):
            self.bus.ensure_group()
            _log("started", stream=self.bus.stream, consumer=getattr(self.bus, "consumer", None))
            errors = 0
            while not self._stop.is_set():
                try:
                    idle = self.step()
                except redis.RedisError as exc:
                    # Redis is down or failing: wait longer each time, then re-read what was
                    # in hand (it is still pending) once it answers again.
                    errors += 1
                    _log("redis_error", level=logging.WARNING, error=_reason(exc), attempt=errors)
                    self._reread_pending = True
                    self._stop.wait(self._backoff(min(errors, 16)))
                    if "NOGROUP" in str(exc):
                        # The stream was deleted (or Redis restarted empty): start over.
                        with contextlib.suppress(redis.RedisError):
                            self.bus.ensure_group()
                    continue
                errors = 0
                if stop_when_idle and idle and not self._retries:
                    break
            with contextlib.suppress(redis.RedisError):
                self._refresh_info()
            _log("stopped", **self._summary())

    def step(self) -> bool:
        """One round: own pending if due, reclaim if due, due retries, one read of new
        entries. Returns True when the read of new entries found nothing."""
        if self._reread_pending:
            self._drain_own_pending()
            self._reread_pending = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._reclaim()
            self._next_claim = now + self.config.claim_interval_s
        if now >= self._next_info:
            self._refresh_info()
            self._next_info = now + self.config.info_interval_s
        self._run_due_retries()
        if self._stop.is_set():
            return True
        entries = self.bus.read_new(self.config.batch, self._block_ms())
        for lost in self.bus.take_lost():
            self._report_lost(lost)
        if entries:
            self.process(entries)
        return not entries

    def _report_lost(self, lost: Lost) -> None:
        # Never silent: counted, and an ERROR line with the gap's ids.
        if lost.count > 0:
            self.stats.lost += lost.count
        _log(
            "lost",
            level=logging.ERROR,
            count=lost.count if lost.count >= 0 else "unknown",
            after=lost.after,
            before=lost.before,
            reason="trimmed from the stream before the group read them; raise the stream's "
            "maxlen or trim by the slowest group (docs/trust.md)",
        )

    def process(self, entries: Sequence[BusEntry]) -> None:
        """Handle one batch of entries to the end: purged and acked, dead-lettered and acked,
        or left pending with a retry scheduled."""
        out = _Outcome()
        work = self._decode(entries, out)
        work = self._skip_done(work, out)
        work = self._plan(work, out)
        self._purge(work, out)
        self._settle(out)

    # -- the batch, step by step --------------------------------------------------------------

    def _decode(self, entries: Sequence[BusEntry], out: _Outcome) -> list[_Work]:
        work = []
        retries = self._retries
        crash_deliveries = self.config.crash_deliveries
        signing = self.signing
        for entry in entries:
            if retries:
                retries.pop(entry.id, None)
            if not entry.fields:
                out.dead.append(
                    (entry, "entry was trimmed from the stream before it was processed", None)
                )
                continue
            if entry.deliveries > crash_deliveries:
                # Read this often and never settled: it may be what kills coordinators, so
                # it is not even decoded (a letter names it by its entry id).
                out.dead.append(
                    (
                        entry,
                        f"delivered {entry.deliveries} times without being acknowledged "
                        f"(crash_deliveries {crash_deliveries})",
                        None,
                    )
                )
                continue
            if signing is not None:
                refused = signing.check(entry.fields)
                if refused is not None:
                    out.dead.append((entry, f"signature: {refused}", None))
                    continue
            try:
                envelope = Envelope.from_fields(entry.fields)
            except EnvelopeError as exc:
                out.dead.append((entry, f"malformed envelope: {exc}", None))
                continue
            except Exception as exc:  # a decoder bug must not settle the batch-mates
                out.dead.append((entry, f"malformed envelope: {_reason(exc)}", None))
                continue
            work.append(_Work(entry, envelope))
        return work

    def _skip_done(self, work: list[_Work], out: _Outcome) -> list[_Work]:
        if not work:
            return work
        # done_key(id, group) is this prefix + id; bytes, so that redis-py's encoder passes
        # them through at its first test
        prefix = done_key("", self.config.group)
        first: dict[bytes, _Work] = {}
        twins: list[_Work] = []
        for w in work:
            try:
                w.done = (prefix + w.envelope.id).encode()
            except UnicodeEncodeError as exc:  # the decoder refuses these; never the batch
                out.dead.append((w.entry, f"malformed envelope id: {_reason(exc)}", w.envelope))
                continue
            # The same event twice in one batch (a replay, a producer retry): purged once,
            # the later copies counted as duplicates.
            if w.done in first:
                twins.append(w)
            else:
                first[w.done] = w
        if twins or len(first) != len(work):
            out.duplicates += twins
            work = list(first.values())
            if not work:
                return work
        keys = [w.done for w in work]
        if self._done_is_cluster:
            # One MGET split by slot costs far less than a command per event.
            values = self._done.mget_nonatomic(keys)
            seen = {i for i, value in enumerate(values) if value is not None}
        else:
            if self._seen_script is None:
                self._seen_script = self._done.register_script(_SEEN_LUA)
            seen = {int(i) - 1 for i in self._seen_script(keys=keys)}
        if not seen:
            return work
        fresh: list[_Work] = []
        for i, w in enumerate(work):
            (out.duplicates if i in seen else fresh).append(w)
        return fresh

    def _plan(self, work: list[_Work], out: _Outcome) -> list[_Work]:
        planned = []
        check = self.checker.check
        for w in work:
            env = w.envelope
            if env.plan is not None:
                refused = check(env.plan)
                if refused is not None:
                    out.dead.append((w.entry, f"plan refused: {refused}", env))
                    continue
                w.plan = env.plan
                planned.append(w)
                continue
            handler = self.handlers.get(env.type)
            if handler is None:
                out.dead.append((w.entry, f"no plan and no handler for type {env.type}", env))
                continue
            try:
                plan = handler(env.data)
                if plan.type != env.type:
                    raise DamestoiletError(f"handler returned a plan for {plan.type}")
            except Exception as exc:  # a payload that cannot be planned never will be
                out.dead.append(
                    (w.entry, f"handler for {env.type} failed: {type(exc).__name__}: {exc}", env)
                )
                continue
            refused = check(plan)
            if refused is not None:
                out.dead.append((w.entry, f"plan refused: {refused}", env))
                continue
            w.plan = plan
            planned.append(w)
        return planned

    def _purge(self, work: list[_Work], out: _Outcome) -> None:
        if not work:
            return
        plans = [_stages(w) for w in work]
        depth = max(map(len, plans))
        try:
            # Stage k of every event before stage k+1 of any: each event keeps its order.
            for k in range(depth):
                ops = [op for stages in plans if k < len(stages) for op in stages[k]]
                if ops:
                    self.stats.add_purge(self.target.purge_stage(ops))
            out.done += work
            return
        except PurgeInterruptedError:
            out.interrupted += work
            return
        except Exception as exc:
            if len(work) == 1:
                out.failed.append((work[0], _reason(exc)))
                return
        # Which event failed? Purges are idempotent, so each event is simply purged again.
        for i, w in enumerate(work):
            try:
                for stage in _stages(w):
                    if stage:
                        self.stats.add_purge(self.target.purge_stage(stage))
            except PurgeInterruptedError:
                out.interrupted += work[i:]
                return
            except Exception as exc:
                out.failed.append((w, _reason(exc)))
            else:
                out.done.append(w)

    def _settle(self, out: _Outcome) -> None:
        if out.interrupted:
            _log("interrupted", count=len(out.interrupted), reason="stopping; left pending")
        if out.done:
            self._mark_done([w.done for w in out.done])
        attempts = self.bus.record_failures([w.entry.id for w, _ in out.failed])
        for (w, reason), tried in zip(out.failed, attempts, strict=True):
            if tried >= self.config.max_deliveries:
                out.dead.append(
                    (w.entry, f"failed {tried} attempts; last error: {reason}", w.envelope)
                )
            else:
                delay = self._backoff(tried)
                self._retries[w.entry.id] = _Retry(time.monotonic() + delay, reason)
                self.stats.retries += 1
                _log_event(
                    "retry",
                    w.envelope,
                    w.entry,
                    error=reason,
                    attempts=tried,
                    delay_s=round(delay, 3),
                )
        if out.dead:
            self.bus.dead_letter([(entry, reason) for entry, reason, _ in out.dead])
        settled = (
            [w.entry for w in out.done]
            + [w.entry for w in out.duplicates]
            + [entry for entry, _, _ in out.dead]
        )
        self.bus.ack([entry.id for entry in settled])
        # Only a redelivered entry (or one that failed just now) can have a failure count.
        stale = [entry.id for entry in settled if entry.deliveries > 1]
        if attempts:
            stale += [entry.id for entry, _, _ in out.dead if entry.deliveries == 1]
        if stale:
            self.bus.forget_failures(stale)
        now = time.time()
        stats = self.stats
        stats.events += len(out.done)
        observe = stats.latency.observe
        # The per-event JSON lines cost more than the rest of this loop: build them only when
        # INFO is on (the CLI's default; `--log-level warning` turns them off).
        logging_events = logger.isEnabledFor(logging.INFO)
        for w in out.done:
            latency = now - w.envelope.timestamp
            latency = latency if latency > 0.0 else 0.0
            observe(latency)
            if logging_events:
                _log_event("purged", w.envelope, w.entry, latency_ms=round(latency * 1000, 3))
        stats.duplicates_skipped += len(out.duplicates)
        if logging_events:
            for w in out.duplicates:
                _log_event("duplicate", w.envelope, w.entry)
        for entry, reason, env in out.dead:
            self.stats.dead_lettered += 1
            _log_event("dead_lettered", env, entry, reason=reason, level=logging.WARNING)

    def _mark_done(self, keys: list[bytes]) -> None:
        ttl = self.config.done_ttl_s
        if self._done_is_cluster:
            pipe = self._done.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, b"1", nx=True, ex=ttl)
            pipe.execute()
        else:
            # One script call for the batch: a SET per event costs more to send and parse.
            if self._mark_script is None:
                self._mark_script = self._done.register_script(_MARK_DONE_LUA)
            self._mark_script(keys=keys, args=[ttl])

    # -- pending, reclaim, retries -----------------------------------------------------------

    def _drain_own_pending(self) -> None:
        after = "0"
        while not self._stop.is_set():
            entries = self.bus.read_pending(after, self.config.batch)
            if not entries:
                return
            after = entries[-1].id
            # Entries waiting for their backoff are left to the retry schedule.
            ready = [e for e in entries if e.id not in self._retries]
            if ready:
                _log("pending", count=len(ready))
                self.process(ready)

    def _reclaim(self) -> None:
        claimed = self.bus.claim_idle(self.config.claim_min_idle_ms, self.config.batch)
        if claimed.lost:
            self.stats.lost += len(claimed.lost)
            _log("lost", level=logging.ERROR, ids=claimed.lost, reason="trimmed before acked")
        if claimed.entries:
            _log("reclaimed", count=len(claimed.entries))
            for start in range(0, len(claimed.entries), self.config.batch):
                if self._stop.is_set():
                    break  # the rest stays pending, now ours: re-read on start or reclaimed
                self.process(claimed.entries[start : start + self.config.batch])

    def _run_due_retries(self) -> None:
        now = time.monotonic()
        due = [entry_id for entry_id, r in self._retries.items() if r.due <= now]
        if not due:
            return
        entries = self.bus.claim(due)
        for entry_id in due:
            # Claimed or not (acked elsewhere, trimmed), it leaves the schedule.
            self._retries.pop(entry_id, None)
        if entries:
            self.process(entries)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempt - 1))
        return float(ceiling / 2 + self._random.uniform(0, ceiling / 2))

    def _block_ms(self) -> int:
        if not self._retries:
            return self.config.block_ms
        wait = min(r.due for r in self._retries.values()) - time.monotonic()
        return max(0, min(self.config.block_ms, int(wait * 1000)))

    def _refresh_info(self) -> None:
        info = self.bus.group_info()
        self.stats.lag, self.stats.pending = info.lag, info.pending

    def _summary(self) -> dict[str, Any]:
        s = self.stats
        return {
            "events": s.events,
            "dead_lettered": s.dead_lettered,
            "retries": s.retries,
            "duplicates_skipped": s.duplicates_skipped,
            "pending": s.pending,
        }

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Only a flag: the batch in hand finishes, and run() logs as it returns.
            self.stop()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _stages(w: _Work) -> tuple[tuple[FlushOp, ...], ...]:
    assert w.plan is not None
    return w.plan.stages


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _log(msg: str, *, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, redact(json.dumps({"msg": msg, **fields}, default=str)))


def _log_event(
    outcome: str,
    envelope: Envelope | None,
    entry: BusEntry,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    if logger.isEnabledFor(level):
        record = {
            "outcome": outcome,
            "id": envelope.id if envelope else None,
            "type": envelope.type if envelope else None,
            "entry": entry.id,
            "deliveries": entry.deliveries,
            **fields,
        }
        logger.log(level, redact(json.dumps(record, default=str)))
