"""The flush coordinator, asyncio driver: :class:`AsyncCoordinator` carries out the requests
of the same :class:`~runtime._core.BatchCore` as the sync :class:`Coordinator`, over an
:class:`AsyncBus`, an :class:`AsyncPurgeTarget` and an :class:`AsyncDoneStore` (nats-py is
asyncio-only; FastStream services run on an event loop). Only the I/O differs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, cast

from damestoilet_contracts._errors import BackendError
from damestoilet_contracts.model import StormGuard
from damestoilet_contracts.runtime._coordinator import CoordinatorConfig, own_streams
from damestoilet_contracts.runtime._core import (
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
from damestoilet_contracts.runtime._router import AsyncTargetRouter
from damestoilet_contracts.runtime._seams import (
    AsyncBus,
    AsyncDoneStore,
    AsyncPurgeTarget,
    ConsumePolicy,
    Delivery,
    HandlerRegistry,
    Retry,
    Settlement,
)
from damestoilet_contracts.runtime._signing import SigningKeys


class AsyncCoordinator:
    """Consumes envelopes from an asyncio bus and purges their plans; see :class:`Coordinator`."""

    def __init__(
        self,
        bus: AsyncBus,
        target: AsyncPurgeTarget,
        done: AsyncDoneStore,
        config: CoordinatorConfig | None = None,
        *,
        handlers: HandlerRegistry | None = None,
        stats: CoordinatorStats | None = None,
        bound: Callable[[str], bool] | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
    ) -> None:
        """The arguments are those of :class:`Coordinator`, asyncio backends in place of sync.
        (A stop here lets the stage in hand finish: the asyncio purge targets have no
        ``interrupt`` between round trips yet.)"""
        self.bus = bus
        self.target = target
        if type(done).__module__.split(".")[0] == "redis":
            from damestoilet_contracts.runtime.redis._done import AsyncRedisDoneStore

            done = AsyncRedisDoneStore(cast(Any, done))
        self.done = done
        self.config = config or CoordinatorConfig()
        self.handlers: HandlerRegistry = dict(handlers or {})
        counters = stats or CoordinatorStats()
        if flush_specs is not None:
            # the contracts bound the metrics' type and target labels
            flush_specs = {name: tuple(specs) for name, specs in flush_specs.items()}
            counters.bound_labels(flush_specs.items())
        if bound is None and isinstance(target, AsyncTargetRouter):
            bound = target.is_bound
        self.checker = PlanChecker(flush_specs, protected=own_streams(bus))
        self.signing = signing
        self.core = self.config.core(self.handlers, counters, bound, self.checker, signing)
        self._stop = asyncio.Event()
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
    ) -> AsyncCoordinator:
        """See :meth:`Coordinator.from_url`; every backend is its asyncio twin."""
        from damestoilet_contracts.runtime._wiring import check_signing, open_async

        check_signing(signing, bus_url or redis_url)
        config = config or CoordinatorConfig()
        wired = open_async(
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

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (from the loop's thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop.is_set()

    async def open(self) -> None:
        """Open the bus (create its stream and group); raises :class:`BackendError`."""
        await self.bus.open(self.policy)
        self._opened = True

    async def aclose(self) -> None:
        """Close the bus (releasing a connection it made); raises :class:`BackendError`."""
        await self.bus.aclose()

    async def __aenter__(self) -> AsyncCoordinator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def run(self, *, stop_when_idle: bool = False, handle_signals: bool = False) -> None:
        """See :meth:`Coordinator.run`; ``handle_signals`` installs loop signal handlers."""
        async with self._signals(handle_signals):
            await self.open()
            log("started", stream=self.bus.name, consumer=getattr(self.bus, "consumer", None))
            errors = 0
            while not self._stop.is_set():
                try:
                    idle = await self.step()
                except BackendError as exc:
                    errors += 1
                    log("backend_error", level=logging.WARNING, error=str(exc), attempt=errors)
                    delay = self.core.backoff.compute(min(errors, 16), self.core.random)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    continue
                errors = 0
                if stop_when_idle and idle and not self.bus.retries_waiting():
                    break
            with contextlib.suppress(BackendError):
                await self._refresh_info()
            log("stopped", events=self.stats.events, dead_lettered=self.stats.dead_lettered)

    async def step(self) -> bool:
        """See :meth:`Coordinator.step`."""
        if not self._opened:
            await self.open()
        now = time.monotonic()
        if now >= self._next_info:
            await self._refresh_info()
            self._next_info = now + self.config.info_interval_s
        if self._stop.is_set():
            return True
        deliveries = await self.bus.fetch(self.config.batch, self.config.block_ms / 1000)
        for lost in self.bus.take_lost():
            self.core.report_lost(lost)
        if deliveries:
            await self.process(deliveries)
        return not deliveries

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`Coordinator.process`."""
        try:
            result = await self._carry_out(self.core.batch(deliveries))
            await self.bus.settle(result.settlement)
        except BackendError as exc:
            with contextlib.suppress(BackendError):
                retry = [Retry(d, 0.0, str(exc)) for d in deliveries]
                await self.bus.settle(Settlement(retry=retry))
            raise
        self.core.record(result)

    async def _carry_out(self, steps: BatchSteps) -> Any:
        answer: Any = None
        while True:
            try:
                request: Request = steps.send(answer)
            except StopIteration as stop:
                return stop.value
            answer = await self._answer(request)

    async def _answer(self, request: Request) -> Any:
        if type(request) is PurgeStage:
            try:
                return await self.target.purge_stage(request.ops)
            except Exception as exc:  # the core decides: retry, or dead after max_deliveries
                return exc
        if type(request) is CheckDone:
            return await self.done.seen(request.group, request.ids)
        if type(request) is MarkDone:
            await self.done.mark(request.group, request.ids, request.ttl_s)
            return None
        if type(request) is CountFailures:
            return await self.bus.record_failures(request.deliveries)
        assert type(request) is KeepAlive
        await self.bus.in_progress(request.deliveries)
        return None

    async def _refresh_info(self) -> None:
        backlog = await self.bus.backlog()
        self.stats.lag, self.stats.pending = backlog.lag, backlog.pending
        self.stats.lost = backlog.lost

    @contextlib.asynccontextmanager
    async def _signals(self, enabled: bool) -> AsyncIterator[None]:
        if not enabled:
            yield
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            loop.add_signal_handler(signum, self.stop)
        try:
            yield
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
