"""The flush coordinator, sync driver: fetches batches from a bus, carries out what the
no-I/O :class:`~runtime._core.BatchCore` asks (check done, purge stage by stage, mark done),
and settles each delivery as done, retry-after or dead.

The bus owns redelivery: a retry is settled with its backoff and comes back from a later
fetch; a crashed consumer's deliveries come back after ``claim_min_idle_ms``. Backend errors
(:class:`BackendError`) outside a purge are logged and retried with a growing backoff; what
was in hand is delivered again. :class:`~runtime._coordinator_async.AsyncCoordinator` is the
asyncio twin over the same core.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

from damestoilet_contracts._errors import BackendError, DamestoiletError
from damestoilet_contracts.model import Plan, StormGuard
from damestoilet_contracts.runtime._core import (
    Backoff,
    BatchCore,
    BatchSteps,
    CheckDone,
    CountFailures,
    KeepAlive,
    MarkDone,
    PurgeStage,
    Request,
    log,
)
from damestoilet_contracts.runtime._metrics import CoordinatorStats
from damestoilet_contracts.runtime._plan_check import FlushSpec, PlanChecker
from damestoilet_contracts.runtime._router import TargetRouter
from damestoilet_contracts.runtime._seams import (
    DEFAULT_DONE_TTL_S,
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    Bus,
    ConsumePolicy,
    Delivery,
    DoneStore,
    HandlerRegistry,
    PurgeTarget,
    Retry,
    Settlement,
    dlq_stream_name,
)
from damestoilet_contracts.runtime._signing import SigningKeys


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
    #: and failed counts: a restart, a kill or a reclaim delivers an entry again (the bus
    #: counts a delivery) without trying it.
    max_deliveries: int = 5
    #: Deliveries of one entry without a settle (coordinators died while it was in hand)
    #: after which it is taken for one that kills them and dead-lettered unread; well above
    #: any crash loop an operator would let run.
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
    #: How often lag and pending are read from the bus (s).
    info_interval_s: float = 5.0
    #: The group is this process's own: it starts at the end of the stream and is deleted
    #: when the bus closes (an in-process cache's listener, see ``FlushAgent``).
    ephemeral: bool = False

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_deliveries < 1 or self.done_ttl_s < 1:
            raise ValueError("batch, max_deliveries and done_ttl_s must be at least 1")
        if self.crash_deliveries < 1:
            raise ValueError("crash_deliveries must be at least 1")
        if self.block_ms < 0 or self.claim_min_idle_ms < 0:
            raise ValueError("block_ms and claim_min_idle_ms must not be negative")
        if self.retry_base_s < 0 or self.retry_max_s < self.retry_base_s:
            raise ValueError("retry_base_s must be >= 0 and retry_max_s >= retry_base_s")

    def policy(self) -> ConsumePolicy:
        """What a bus is asked to do for this configuration."""
        return ConsumePolicy(
            redeliver_after_ms=self.claim_min_idle_ms,
            reclaim_interval_s=self.claim_interval_s,
            max_deliveries=self.crash_deliveries,
            ephemeral=self.ephemeral,
        )

    def core(
        self,
        handlers: HandlerRegistry,
        stats: CoordinatorStats,
        bound: Callable[[str], bool] | None,
        checker: PlanChecker | None = None,
        signing: SigningKeys | None = None,
    ) -> BatchCore:
        """The batch core deciding for a coordinator of this configuration."""
        return BatchCore(
            group=self.group,
            max_deliveries=self.max_deliveries,
            done_ttl_s=self.done_ttl_s,
            backoff=Backoff(self.retry_base_s, self.retry_max_s),
            handlers=handlers,
            stats=stats,
            bound=bound,
            # A long batch tells the bus it is alive well before anyone would reclaim it.
            keepalive_s=max(0.5, min(10.0, self.claim_min_idle_ms / 3000)),
            crash_deliveries=self.crash_deliveries,
            checker=checker,
            signing=signing,
        )


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


def own_streams(bus: object) -> list[str]:
    """The names a plan must never touch because ``bus`` lives in them: its stream and its
    dead-letter stream."""
    name = str(getattr(bus, "name", "") or getattr(bus, "stream", ""))
    dlq = getattr(bus, "dlq_stream", None) or getattr(bus, "dlq_subject", None)
    return [n for n in (name, str(dlq) if dlq else dlq_stream_name(name)) if n]


def interruptible(target: object) -> Iterator[Any]:
    """The purge targets behind ``target`` (through routers and hooks) that can stop between
    round trips: they have an ``interrupt`` event."""
    seen: set[int] = set()
    todo = [target]
    while todo:
        t = todo.pop()
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        if hasattr(t, "interrupt"):
            yield t
        todo += list(getattr(t, "bound", {}).values())
        todo += [getattr(t, "default", None), getattr(t, "inner", None)]


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


class Coordinator:
    """Consumes envelopes from a bus and purges their plans through a purge target."""

    def __init__(
        self,
        bus: Bus,
        target: PurgeTarget,
        done: DoneStore,
        config: CoordinatorConfig | None = None,
        *,
        handlers: HandlerRegistry | None = None,
        stats: CoordinatorStats | None = None,
        bound: Callable[[str], bool] | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
    ) -> None:
        """Read from ``bus``, purge through ``target``, remember done ids in ``done`` (a
        :class:`DoneStore`; a redis-py client is wrapped in a ``RedisDoneStore``).

        ``handlers`` plan envelopes that arrive without a plan (type name -> callable taking
        the payload bytes, returning a :class:`Plan`). ``bound`` says whether a target name
        has a backend (default: the router's ``is_bound`` when ``target`` is a
        :class:`TargetRouter`, else every name has); a plan naming an unbound target is
        dead-lettered with the reason. ``flush_specs`` (event type -> ``(op, target, mode,
        template)`` its plans may hold, from ``compiler.flush_specs`` or a generated
        package's ``FLUSH_SPECS``) has every plan checked against the contracts before
        anything is deleted; without them, plans are only kept out of the coordinator's own
        keys (see :class:`PlanChecker`). With ``signing``, an entry that is unsigned or
        signed with no accepted key is dead-lettered unread. Raises TemplateError for a
        malformed template in ``flush_specs``.
        """
        self.bus = bus
        self.target = target
        if type(done).__module__.split(".")[0] == "redis":
            # a redis-py client, as before the seams: its done store
            from damestoilet_contracts.runtime.redis._done import RedisDoneStore

            done = RedisDoneStore(cast(Any, done))
        self.done = done
        self.config = config or CoordinatorConfig()
        self.handlers: HandlerRegistry = dict(handlers or {})
        counters = stats or CoordinatorStats()
        if flush_specs is not None:
            # the contracts bound the metrics' type and target labels
            flush_specs = {name: tuple(specs) for name, specs in flush_specs.items()}
            counters.bound_labels(flush_specs.items())
        if bound is None and isinstance(target, TargetRouter):
            bound = target.is_bound
        self.checker = PlanChecker(flush_specs, protected=own_streams(bus))
        self.signing = signing
        self.core = self.config.core(self.handlers, counters, bound, self.checker, signing)
        self._stop = threading.Event()
        for purger in interruptible(target):
            # a target that can stop between round trips gets the stop event: a long stage
            # (a prefix over millions of keys) never holds SIGTERM hostage
            purger.interrupt = self._stop
        self._opened = False
        self._next_info = 0.0

    @classmethod
    def from_url(
        cls,
        redis_url: str | None,
        config: CoordinatorConfig | None = None,
        *,
        bus_url: str | None = None,
        handlers: HandlerRegistry | None = None,
        grace: Mapping[str, float] | None = None,
        cluster: bool = False,
        bus_cluster: bool | None = None,
        targets: Mapping[str, str] | None = None,
        done_url: str | None = None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
    ) -> Coordinator:
        """A coordinator from URLs (see :func:`~runtime._wiring.open_sync` for the rules):
        ``redis_url`` the default purge target (None: only ``targets``, name -> URL),
        ``bus_url`` the bus (default: ``redis_url``), ``done_url`` the done store (default:
        ``redis_url``, else a Redis ``targets`` URL or the bus); ``grace`` maps targets to
        soft-purge windows (s); ``prefix_index`` names the targets whose prefixes are read
        from the prefix index; ``storm`` maps targets to their storm guard (see
        :mod:`runtime._storm`); ``cluster`` / ``bus_cluster`` say a Redis URL names a cluster
        node; ``flush_specs`` and ``signing`` are those of the constructor. Raises
        :class:`ConfigError` or ValueError for a wrong URL or binding (signing on a bus that
        is not a Redis stream, too)."""
        from damestoilet_contracts.runtime._wiring import check_signing, open_sync

        check_signing(signing, bus_url or redis_url)
        config = config or CoordinatorConfig()
        wired = open_sync(
            config,
            redis_url=redis_url,
            bus_url=bus_url,
            targets=targets or {},
            done_url=done_url,
            grace=grace,
            cluster=cluster,
            bus_cluster=cluster if bus_cluster is None else bus_cluster,
            prefix_index=prefix_index,
            storm=storm,
        )
        return cls(
            wired.bus,
            wired.target,
            wired.done,
            config,
            handlers=handlers,
            flush_specs=flush_specs,
            signing=signing,
        )

    @property
    def stats(self) -> CoordinatorStats:
        """The counters this coordinator adds to (the core's); may be replaced between runs."""
        return self.core.stats

    @stats.setter
    def stats(self, value: CoordinatorStats) -> None:
        self.core.stats = value

    @property
    def policy(self) -> ConsumePolicy:
        """What this coordinator asks of its bus."""
        return self.config.policy()

    # -- running ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (safe from any thread or signal)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop.is_set()

    def open(self) -> None:
        """Open the bus (create its stream and group); raises :class:`BackendError`."""
        self.bus.open(self.policy)
        self._opened = True

    def close(self) -> None:
        """Close the bus (releasing a connection it made); raises :class:`BackendError`."""
        self.bus.close()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, *, stop_when_idle: bool = False, handle_signals: bool = False) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``, main thread
        only); with ``stop_when_idle``, also return once a fetch finds nothing and no retry
        is waiting. Backend errors outside a purge are logged and retried, not raised."""
        with self._signals(handle_signals):
            self.open()
            log("started", stream=self.bus.name, consumer=getattr(self.bus, "consumer", None))
            errors = 0
            while not self._stop.is_set():
                try:
                    idle = self.step()
                except BackendError as exc:
                    # The bus or the done store is down or failing: wait longer each time;
                    # what was in hand is delivered again once it answers.
                    errors += 1
                    log("backend_error", level=logging.WARNING, error=str(exc), attempt=errors)
                    self._stop.wait(self.core.backoff.compute(min(errors, 16), self.core.random))
                    continue
                errors = 0
                if stop_when_idle and idle and not self.bus.retries_waiting():
                    break
            with contextlib.suppress(BackendError):
                self._refresh_info()
            log("stopped", **self._summary())

    def step(self) -> bool:
        """One round: refresh the backlog figures if due, fetch one batch and process it.
        Returns True when the fetch found nothing."""
        if not self._opened:
            self.open()
        now = time.monotonic()
        if now >= self._next_info:
            self._refresh_info()
            self._next_info = now + self.config.info_interval_s
        if self._stop.is_set():
            return True
        deliveries = self.bus.fetch(self.config.batch, self.config.block_ms / 1000)
        for lost in self.bus.take_lost():
            self.core.report_lost(lost)
        if deliveries:
            self.process(deliveries)
        return not deliveries

    def process(self, deliveries: Sequence[Delivery]) -> None:
        """Handle one batch to the end: every delivery settled as done, retry or dead.

        Raises :class:`BackendError` when the done store or the bus fails; the batch is then
        handed back to the bus for redelivery."""
        try:
            result = self._carry_out(self.core.batch(deliveries))
            self.bus.settle(result.settlement)
        except BackendError as exc:
            with contextlib.suppress(BackendError):
                self.bus.settle(Settlement(retry=[Retry(d, 0.0, str(exc)) for d in deliveries]))
            raise
        self.core.record(result)

    def _carry_out(self, steps: BatchSteps) -> Any:
        answer: Any = None
        while True:
            try:
                request: Request = steps.send(answer)
            except StopIteration as stop:
                return stop.value
            answer = self._answer(request)

    def _answer(self, request: Request) -> Any:
        if type(request) is PurgeStage:
            try:
                return self.target.purge_stage(request.ops)
            except Exception as exc:  # the core decides: retry, or dead after max_deliveries
                return exc
        if type(request) is CheckDone:
            return self.done.seen(request.group, request.ids)
        if type(request) is MarkDone:
            self.done.mark(request.group, request.ids, request.ttl_s)
            return None
        if type(request) is CountFailures:
            return self.bus.record_failures(request.deliveries)
        assert type(request) is KeepAlive
        self.bus.in_progress(request.deliveries)
        return None

    def _refresh_info(self) -> None:
        backlog = self.bus.backlog()
        self.stats.lag, self.stats.pending = backlog.lag, backlog.pending
        self.stats.lost = backlog.lost

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
        with stop_on_signals(self.stop, enabled):
            yield


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None], enabled: bool) -> Iterator[None]:
    """Call ``stop`` on SIGTERM or SIGINT while the block runs (main thread only)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only a flag: the batch in hand finishes, and run() logs as it returns.
        stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
