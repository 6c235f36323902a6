"""The relay: publishes outbox rows to the bus in commit order, then deletes them.

A row is deleted only after the bus took it, so a relay killed at any point re-sends at most
its batch in hand, with the same envelope ids: the coordinator's dedup absorbs the re-sends.
A bus that cannot be reached keeps the rows, and the relay retries with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from damestoilet_contracts._errors import DeliveryError, OutboxError
from damestoilet_contracts.outbox._publish import OutboxPublisher
from damestoilet_contracts.outbox._store import RelayStore
from damestoilet_contracts.runtime._logging import log_fields

logger = logging.getLogger("damestoilet.relay")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Equal-jitter exponential backoff: after ``failures`` failures in a row, wait between
    half and all of ``min(cap, base * 2**(failures-1))`` seconds."""

    base_s: float = 0.1
    cap_s: float = 10.0

    def compute(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (>= 1) failures in a row."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(failures - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class RelayStats:
    """A relay's counters and gauges: what it published, and what waits in the table."""

    published: int = 0
    batches: int = 0
    failures: int = 0
    waiting: int = 0
    oldest_age_s: float | None = None
    #: Rows published per second over the last report interval.
    rate: float = 0.0
    started: float = field(default_factory=time.monotonic)


class Relay:
    """Moves outbox rows from a :class:`RelayStore` to an :class:`OutboxPublisher`."""

    def __init__(
        self,
        store: RelayStore,
        publisher: OutboxPublisher,
        *,
        batch: int = 500,
        poll_s: float = 0.1,
        report_s: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        """Publish up to ``batch`` rows per round; with nothing to do, wait up to ``poll_s``
        for a wake-up (PostgreSQL NOTIFY) before looking again; log and refresh the backlog
        gauges every ``report_s``; ``backoff`` spaces retries while the bus fails."""
        if batch < 1:
            raise ValueError("a relay batch holds at least one row")
        self.store = store
        self.publisher = publisher
        self.batch = batch
        self.poll_s = poll_s
        self.report_s = report_s
        self.backoff = backoff or Backoff()
        self.stats = RelayStats()
        self._stopping = threading.Event()

    def run_once(self) -> int:
        """Claim one batch, publish it and delete it; returns the rows published. Raises
        :class:`DeliveryError` (the rows stay) when the bus fails."""
        rows = self.store.claim(self.batch)
        if not rows:
            self.store.settle([])
            return 0
        try:
            self.publisher.publish([payload for _, payload in rows])
        except BaseException:
            self.store.abandon()
            raise
        self.store.settle([seq for seq, _ in rows])
        self.stats.published += len(rows)
        self.stats.batches += 1
        return len(rows)

    def drain(self) -> int:
        """Publish until the table is empty (or this relay holds no lease); returns the rows
        published."""
        total = 0
        while n := self.run_once():
            total += n
        return total

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self._stopping.set()

    def run(self, *, handle_signals: bool = False) -> None:
        """Relay until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``): the batch in
        hand is finished first. A bus or database that fails is retried with backoff; the
        rows stay in the table meanwhile."""
        failures = 0
        last_report: float | None = None
        published_at_report = 0
        with self._signals(handle_signals):
            _log("started", batch=self.batch)
            while not self._stopping.is_set():
                try:
                    now = time.monotonic()
                    if last_report is None or now - last_report >= self.report_s:
                        if last_report is not None and now > last_report:
                            self.stats.rate = (self.stats.published - published_at_report) / (
                                now - last_report
                            )
                        published_at_report, last_report = self.stats.published, now
                        self.refresh()
                        _log_backlog(self.stats)
                    n = self.run_once()
                    if n < self.batch and not self._stopping.is_set():
                        self.store.wait(self.poll_s)
                except DeliveryError as exc:
                    failures += 1
                    self.stats.failures += 1
                    delay = self.backoff.compute(failures)
                    kind = "db_error" if isinstance(exc, OutboxError) else "bus_error"
                    _log(kind, level=logging.WARNING, error=str(exc), retry_in_s=round(delay, 3))
                    self._stopping.wait(delay)
                    continue
                failures = 0
            with contextlib.suppress(DeliveryError):
                self.store.release()
                self.refresh()
            _log_backlog(self.stats)
            _log("stopped", published=self.stats.published, batches=self.stats.batches)

    def refresh(self) -> None:
        """Read the backlog gauges (rows waiting, oldest age) from the table into
        :attr:`stats`; raises :class:`OutboxError` when the database fails."""
        self.stats.waiting, self.stats.oldest_age_s = self.store.backlog()

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop()  # only a flag: the batch in hand finishes

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _log_backlog(s: RelayStats) -> None:
    _log(
        "backlog",
        waiting=s.waiting,
        oldest_age_s=s.oldest_age_s,
        published=s.published,
        published_per_s=round(s.rate, 1),
    )


def _log(msg: str, *, level: int = logging.INFO, **fields: Any) -> None:
    log_fields(logger, level, msg, fields)
