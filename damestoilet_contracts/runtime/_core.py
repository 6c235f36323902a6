"""The coordinator's batch core: every decision about a batch, and no I/O.

:meth:`BatchCore.batch` is a generator that says, step by step, what I/O it needs
(:class:`CheckDone`, :class:`PurgeStage`, :class:`MarkDone`, :class:`KeepAlive`) and takes
each answer back through ``send``; it returns the :class:`Settlement` of the batch. The sync
:class:`~runtime._coordinator.Coordinator` and the :class:`~runtime._coordinator_async.
AsyncCoordinator` only carry those requests out, so the two cannot drift apart (the sans-I/O
style of h11, or httpx's ``BaseClient`` owning the decisions).

Per batch, in this order (docs/runtime.md, the coordinator):

1. every delivery on its own (poison is per entry, never per batch): one the bus lost, or
   one delivered more often than ``crash_deliveries`` without a settle (it may be what kills
   consumers) is dead unread; with signing keys, an unsigned or badly signed one (a stream
   entry's ``s`` field, a message's signature header) is dead unread; one that does not
   decode (only :class:`EnvelopeError`, or any decoder bug) is dead with the reason;
2. the same event twice in the batch is purged once (the copies are duplicates); the done
   store says which event ids this group already purged: duplicates, settled done;
3. take each plan from its envelope, or from a flush handler of its type; none: dead; a plan
   the :class:`PlanChecker` refuses (not what the contracts allow, or touching the
   coordinator's own keys): dead, with the reason; a plan naming a target nothing is bound
   to: dead, with the target's name;
4. purge stage 1 of every event of the batch, then stage 2, ... (one request per stage, so
   each event keeps its order and the batch shares round trips); if that fails, purge event
   by event to find which; a stop that interrupts a stage (:class:`PurgeInterruptedError`)
   leaves the rest unsettled, to be delivered again;
5. mark the purged ids done, only after their purge;
6. count a failed attempt for each failure (:class:`CountFailures`: a restart or a reclaim
   is no attempt); settle: purged and duplicates done, failures retried after a backoff or
   dead once their attempts reach ``max_deliveries``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from damestoilet_contracts._errors import DamestoiletError, EnvelopeError, PurgeInterruptedError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime._cloudevents import from_binary
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._logging import log_fields
from damestoilet_contracts.runtime._metrics import OTHER, CoordinatorStats
from damestoilet_contracts.runtime._plan_check import PlanChecker
from damestoilet_contracts.runtime._seams import (
    Dead,
    Delivery,
    HandlerRegistry,
    Lost,
    Retry,
    Settlement,
    StageOps,
)
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime._storm import Engagement, owners
from damestoilet_contracts.runtime._storm import report as report_storm

logger = logging.getLogger("damestoilet.coordinator")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Equal-jitter exponential backoff: before the n-th retry wait between half and all of
    ``min(max_s, base_s * 2**(n-1))`` (redis-py's ``EqualJitterBackoff``)."""

    base_s: float = 0.1
    max_s: float = 10.0

    def compute(self, attempt: int, rng: random.Random) -> float:
        """The delay before retry number ``attempt`` (1-based), in seconds."""
        ceiling = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


# -- what the core asks its driver to do ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckDone:
    """Answer with the positions (a set of int) of ``ids`` the done store holds for ``group``."""

    group: str
    ids: list[str]


@dataclass(frozen=True, slots=True)
class PurgeStage:
    """Purge ``ops`` (one stage; :class:`StageOps`, each op with its event) through the target
    router; answer with its statistics, or with the exception it raised (never raise it into
    the core)."""

    ops: list[FlushOp]


@dataclass(frozen=True, slots=True)
class MarkDone:
    """Mark ``ids`` done for ``group`` for ``ttl_s`` seconds; answer None."""

    group: str
    ids: list[str]
    ttl_s: int


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Tell the bus ``deliveries`` are still in hand (a long batch); answer None."""

    deliveries: list[Delivery]


@dataclass(frozen=True, slots=True)
class CountFailures:
    """Count one failed purge attempt for each of ``deliveries`` on the bus; answer with
    their counts so far (a list of int, in order)."""

    deliveries: list[Delivery]


Request: TypeAlias = CheckDone | PurgeStage | MarkDone | KeepAlive | CountFailures
#: What :meth:`BatchCore.batch` is: requests out, answers in, the settlement at the end.
BatchSteps: TypeAlias = Generator[Request, Any, "BatchResult"]


@dataclass(slots=True)
class _Work:
    delivery: Delivery
    envelope: Envelope
    plan: Plan | None = None


@dataclass(slots=True)
class BatchResult:
    """The settlement of a batch, and what :meth:`BatchCore.record` counts and logs."""

    settlement: Settlement
    done: list[_Work] = field(default_factory=list)
    duplicates: list[_Work] = field(default_factory=list)
    #: Each retry with its failed attempts so far.
    retried: list[tuple[_Work, Retry, int]] = field(default_factory=list)
    dead: list[tuple[Dead, Envelope | None]] = field(default_factory=list)
    #: Stopped mid-stage: left unsettled (neither a failure nor done), delivered again.
    interrupted: list[_Work] = field(default_factory=list)


class BatchCore:
    """The decisions of a coordinator, shared by its sync and async drivers."""

    def __init__(
        self,
        *,
        group: str,
        max_deliveries: int,
        done_ttl_s: int,
        backoff: Backoff,
        handlers: HandlerRegistry,
        stats: CoordinatorStats,
        bound: Callable[[str], bool] | None = None,
        keepalive_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        crash_deliveries: int = 50,
        checker: PlanChecker | None = None,
        signing: SigningKeys | None = None,
    ) -> None:
        """``max_deliveries`` failed attempts dead-letter an event; ``crash_deliveries``
        deliveries without a settle do, unread. ``bound`` says whether a target name has a
        purge backend (None: every name has); ``keepalive_s``: a batch in hand longer than
        this asks for :class:`KeepAlive`; ``checker`` refuses plans (default: one that only
        guards the ``damestoilet:`` namespace); with ``signing``, unsigned entries are dead."""
        self.group = group
        self.max_deliveries = max_deliveries
        self.crash_deliveries = crash_deliveries
        self.checker = checker or PlanChecker()
        self.signing = signing
        self.done_ttl_s = done_ttl_s
        self.backoff = backoff
        self.handlers = handlers
        self.stats = stats
        self.bound = bound
        self.keepalive_s = keepalive_s
        self.clock = clock
        self.random = random.Random()

    def batch(self, deliveries: Sequence[Delivery]) -> BatchSteps:
        """The steps of one batch (see the module docstring)."""
        dead: list[tuple[Dead, Envelope | None]] = []
        work = self._decode(deliveries, dead)
        work, duplicates = _twins(work)
        if work:
            seen: set[int] = yield CheckDone(self.group, [w.envelope.id for w in work])
            if seen:
                duplicates += [w for i, w in enumerate(work) if i in seen]
                work = [w for i, w in enumerate(work) if i not in seen]
        work = self._plan(work, dead)
        done, failed, interrupted = yield from self._purge(work)
        if done:
            yield MarkDone(self.group, [w.envelope.id for w in done], self.done_ttl_s)
        retried: list[tuple[_Work, Retry, int]] = []
        if failed:
            attempts: list[int] = yield CountFailures([w.delivery for w, _ in failed])
            for (w, reason), tried in zip(failed, attempts, strict=True):
                if tried >= self.max_deliveries:
                    why = f"failed {tried} attempts; last error: {reason}"
                    dead.append((Dead(w.delivery, why), w.envelope))
                else:
                    delay = self.backoff.compute(tried, self.random)
                    retried.append((w, Retry(w.delivery, delay, reason), tried))
        settlement = Settlement(
            done=[w.delivery for w in done] + [w.delivery for w in duplicates],
            retry=[r for _, r, _ in retried],
            dead=[d for d, _ in dead],
        )
        return BatchResult(settlement, done, duplicates, retried, dead, interrupted)

    # -- the batch, step by step ----------------------------------------------------------------

    def _decode(
        self, deliveries: Sequence[Delivery], dead: list[tuple[Dead, Envelope | None]]
    ) -> list[_Work]:
        work = []
        crash_deliveries = self.crash_deliveries
        signing = self.signing
        for delivery in deliveries:
            if delivery.headers is None and not delivery.fields:
                reason = "entry was trimmed from the stream before it was processed"
                dead.append((Dead(delivery, reason), None))
                continue
            if delivery.deliveries > crash_deliveries:
                # Read this often and never settled: it may be what kills coordinators, so
                # it is not even decoded (a letter names it by its bus id).
                reason = (
                    f"delivered {delivery.deliveries} times without being acknowledged "
                    f"(crash_deliveries {crash_deliveries})"
                )
                dead.append((Dead(delivery, reason), None))
                continue
            if signing is not None:
                if delivery.headers is None:
                    refused = signing.check(delivery.fields)
                else:
                    refused = signing.check_message(
                        delivery.headers, delivery.body, delivery.binding
                    )
                if refused is not None:
                    dead.append((Dead(delivery, f"signature: {refused}"), None))
                    continue
            try:
                envelope = decode(delivery)
            except EnvelopeError as exc:
                dead.append((Dead(delivery, f"malformed envelope: {exc}"), None))
                continue
            except Exception as exc:  # a decoder bug must not settle the batch-mates
                dead.append((Dead(delivery, f"malformed envelope: {_reason(exc)}"), None))
                continue
            work.append(_Work(delivery, envelope))
        return work

    def _plan(self, work: list[_Work], dead: list[tuple[Dead, Envelope | None]]) -> list[_Work]:
        planned = []
        check = self.checker.check
        for w in work:
            env = w.envelope
            plan = env.plan
            if plan is None:
                handler = self.handlers.get(env.type)
                if handler is None:
                    reason = f"no plan and no handler for type {env.type}"
                    dead.append((Dead(w.delivery, reason), env))
                    continue
                try:
                    plan = handler(env.data)
                    if plan.type != env.type:
                        raise DamestoiletError(f"handler returned a plan for {plan.type}")
                except Exception as exc:  # a payload that cannot be planned never will be
                    reason = f"handler for {env.type} failed: {type(exc).__name__}: {exc}"
                    dead.append((Dead(w.delivery, reason), env))
                    continue
            refused = check(plan)
            if refused is not None:
                dead.append((Dead(w.delivery, f"plan refused: {refused}"), env))
                continue
            if self.bound is not None:
                unbound = self._unbound(plan)
                if unbound:
                    dead.append((Dead(w.delivery, unbound_reason(unbound)), env))
                    continue
            w.plan = plan
            planned.append(w)
        return planned

    def _unbound(self, plan: Plan) -> list[str]:
        assert self.bound is not None
        names = {op.target for stage in plan.stages for op in stage}
        return sorted(name for name in names if not self.bound(name))

    def _purge(
        self, work: list[_Work]
    ) -> Generator[Request, Any, tuple[list[_Work], list[tuple[_Work, str]], list[_Work]]]:
        if not work:
            return [], [], []
        last_alive = self.clock()
        plans = [_stages(w) for w in work]
        depth = max(map(len, plans))
        error: BaseException | None = None
        # Stage k of every event before stage k+1 of any: each event keeps its order.
        for k in range(depth):
            ops = _stage_ops(work, plans, k)
            if not ops:
                continue
            if self.clock() - last_alive >= self.keepalive_s:
                yield KeepAlive([w.delivery for w in work])
                last_alive = self.clock()
            result = yield PurgeStage(ops)
            if isinstance(result, PurgeInterruptedError):
                return [], [], work
            if isinstance(result, BaseException):
                error = result
                break
            self.stats.add_purge(result)
            if getattr(result, "storm", None):  # the guard engaged: say on which event(s)
                self._storm(result.storm, _stage_of(work, plans, k), work)
        if error is None:
            return work, [], []
        if len(work) == 1:
            return [], [(work[0], _reason(error))], []
        # Which event failed? Purges are idempotent, so each event is simply purged again.
        done: list[_Work] = []
        failed: list[tuple[_Work, str]] = []
        for i, w in enumerate(work):
            reason = None
            for stage in _stages(w):
                if not stage:
                    continue
                if self.clock() - last_alive >= self.keepalive_s:
                    yield KeepAlive([w.delivery for w in work])
                    last_alive = self.clock()
                result = yield PurgeStage(StageOps(stage, (w.envelope.id,), (len(stage),)))
                if isinstance(result, PurgeInterruptedError):
                    return done, failed, work[i:]
                if isinstance(result, BaseException):
                    reason = _reason(result)
                    break
                self.stats.add_purge(result)
                if getattr(result, "storm", None):
                    self._storm(result.storm, [(w.envelope.id, stage)], [w])
            if reason is None:
                done.append(w)
            else:
                failed.append((w, reason))
        return done, failed, []

    def _storm(
        self,
        engagements: Sequence[Engagement],
        stage: Sequence[tuple[str, Sequence[FlushOp]]],
        work: Sequence[_Work],
    ) -> None:
        # the log line names the event id(s); the metrics, bounded, their type and the target
        report_storm(engagements, stage)
        types = {w.envelope.id: w.envelope.type for w in work}
        for e in engagements:
            ids, _ = owners(e, stage)
            kinds = {types[i] for i in ids if i in types}
            kind = kinds.pop() if len(kinds) == 1 else None
            self.stats.add_engagement(e.target or OTHER, kind, e.spread)

    # -- after the settle -----------------------------------------------------------------------

    def record(self, result: BatchResult) -> None:
        """Count and log a batch whose settlement the bus carried out."""
        if result.interrupted:
            log("interrupted", count=len(result.interrupted), reason="stopping; left unsettled")
        stats = self.stats
        now = time.time()
        stats.events += len(result.done)
        observe = stats.latency.observe
        # The per-event lines (a record, its fields, a formatted line) cost more than the rest
        # of this loop: build them only when INFO is on (the CLI's default; `--log-level
        # warning` turns them off).
        logging_events = logger.isEnabledFor(logging.INFO)
        for w in result.done:
            latency = now - w.envelope.timestamp
            latency = latency if latency > 0.0 else 0.0
            observe(latency)
            if logging_events:
                log_event("purged", w.envelope, w.delivery, latency_ms=round(latency * 1000, 3))
        stats.add_events([(w.envelope.type, _stages(w)) for w in result.done])
        stats.duplicates_skipped += len(result.duplicates)
        for w in result.duplicates:
            stats.by_type(stats.duplicates_by_type, w.envelope.type)
            if logging_events:
                log_event("duplicate", w.envelope, w.delivery)
        for w, retry, tried in result.retried:
            stats.retries += 1
            stats.by_type(stats.retries_by_type, w.envelope.type)
            log_event(
                "retry",
                w.envelope,
                w.delivery,
                error=retry.reason,
                attempts=tried,
                delay_s=round(retry.delay_s, 3),
            )
        for d, env in result.dead:
            stats.dead_lettered += 1
            stats.by_type(stats.dead_lettered_by_type, env.type if env else None)
            log_event("dead_lettered", env, d.delivery, reason=d.reason, level=logging.WARNING)

    def report_lost(self, lost: Lost) -> None:
        """Log a gap the bus found (never silent: an ERROR line with the gap's ids; the count
        reaches the stats through the bus's backlog)."""
        log(
            "lost",
            level=logging.ERROR,
            count=lost.count if lost.count >= 0 else "unknown",
            after=lost.after,
            before=lost.before,
            reason="trimmed from the stream before the group read them; raise the stream's "
            "maxlen or trim by the slowest group (docs/trust.md)",
        )


def _twins(work: list[_Work]) -> tuple[list[_Work], list[_Work]]:
    # The same event twice in one batch (a replay, a producer retry): purged once, the later
    # copies counted as duplicates.
    first: dict[str, _Work] = {}
    twins: list[_Work] = []
    for w in work:
        if w.envelope.id in first:
            twins.append(w)
        else:
            first[w.envelope.id] = w
    if not twins:
        return work, []
    return list(first.values()), twins


def decode(delivery: Delivery) -> Envelope:
    """The envelope of ``delivery``: from its fields, or from its headers and body (binary
    mode when it has ``ce-specversion``, else the envelope's bytes). Raises only
    :class:`EnvelopeError`."""
    if delivery.headers is None:
        return Envelope.from_fields(delivery.fields)
    headers = delivery.headers
    prefix = "ce_" if delivery.binding == "kafka" else "ce-"
    if any(name.lower() == prefix + "specversion" for name in headers):
        binding: Any = delivery.binding
        return from_binary(headers, delivery.body, binding)
    return Envelope.from_bytes(delivery.body)


def unbound_reason(names: Sequence[str]) -> str:
    """The dead-letter reason of a plan naming targets ``names`` that nothing is bound to."""
    listed = ", ".join(names)
    hint = " ".join(f"--target {name}=URL" for name in names)
    return f"the plan names target(s) {listed} that no purge backend is bound to; bind with {hint}"


def _stages(w: _Work) -> tuple[tuple[FlushOp, ...], ...]:
    assert w.plan is not None
    return w.plan.stages


def _stage_ops(work: list[_Work], plans: list[tuple[tuple[FlushOp, ...], ...]], k: int) -> StageOps:
    # stage k of every event, each op with its event (a purge target may bound one event)
    ops: list[FlushOp] = []
    ids, ends = [], []
    for w, p in zip(work, plans, strict=True):
        if k < len(p) and p[k]:
            ops += p[k]
            ids.append(w.envelope.id)
            ends.append(len(ops))
    return StageOps(ops, ids, ends)


def _stage_of(
    work: list[_Work], plans: list[tuple[tuple[FlushOp, ...], ...]], k: int
) -> list[tuple[str, tuple[FlushOp, ...]]]:
    # each event of stage k with its ops of the stage: whom a storm guard line names
    return [(w.envelope.id, p[k]) for w, p in zip(work, plans, strict=True) if k < len(p)]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def log(msg: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``msg`` with ``fields`` in ``extra=`` (see :mod:`runtime._logging`) when ``level``
    is on."""
    log_fields(logger, level, msg, fields)


def log_event(
    outcome: str,
    envelope: Envelope | None,
    delivery: Delivery,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one event's ``outcome`` (the message, and the ``outcome`` field) with its id,
    type, bus entry and deliveries, when ``level`` is on."""
    if logger.isEnabledFor(level):
        record = {
            "outcome": outcome,
            "id": envelope.id if envelope else None,
            "type": envelope.type if envelope else None,
            "entry": delivery.id,
            "deliveries": delivery.deliveries,
            **fields,
        }
        log_fields(logger, level, outcome, record)
