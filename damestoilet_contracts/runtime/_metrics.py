"""The coordinator's counters, kept in a plain in-process object, and their exposure as
Prometheus metrics (``prometheus_client``, the ``metrics`` extra, imported only when asked)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Upper bounds (s) of the flush latency histogram: event ``time`` to purge done.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: The op kinds keys are counted by.
OPS = ("key", "prefix", "tag")


@dataclass
class LatencyHistogram:
    """A cumulative-ready histogram over :data:`LATENCY_BUCKETS` (plus +Inf)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        """Count one latency of ``seconds``."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, events at or below it)`` pairs, ending with ``+Inf``."""
        out, running = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile ``q`` (0-1), None when empty."""
        if self.count == 0:
            return None
        rank = q * self.count
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            if running >= rank:
                return bound
        return float("inf")


@dataclass
class CoordinatorStats:
    """Counters of one coordinator process; read by the metrics endpoint and by tests."""

    #: Events whose plan was purged.
    events: int = 0
    #: Keys purged, by op kind (as reported by the purge target).
    keys_purged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    dead_lettered: int = 0
    retries: int = 0
    duplicates_skipped: int = 0
    #: Entries the stream trimmed before they were processed (raise MAXLEN): never read by
    #: the group, or read but trimmed while pending.
    lost: int = 0
    #: The group's lag (entries not yet delivered) and pending count, from XINFO GROUPS.
    lag: int | None = None
    pending: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: Keys the storm guard spread over its window instead of deleting at once.
    storm_spread: int = 0

    def add_purge(self, result: object) -> None:
        """Add a purge target's result (``keys``, ``prefix_keys``, ``tag_keys`` and ``spread``
        if present)."""
        for op, attr in (("key", "keys"), ("prefix", "prefix_keys"), ("tag", "tag_keys")):
            value = getattr(result, attr, 0)
            if isinstance(value, int):
                self.keys_purged[op] += value
        spread = getattr(result, "spread", 0)
        if isinstance(spread, int):
            self.storm_spread += spread


class _Collector:
    """Reads a :class:`CoordinatorStats` at every scrape."""

    def __init__(self, stats: CoordinatorStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        s = self.stats
        prefix = "damestoilet_coordinator_"
        yield CounterMetricFamily(prefix + "events", "Events purged.", value=s.events)
        keys = CounterMetricFamily(prefix + "keys_purged", "Keys purged, by op.", labels=["op"])
        for op, n in s.keys_purged.items():
            keys.add_metric([op], n)
        yield keys
        yield CounterMetricFamily(
            prefix + "storm_spread_keys",
            "Keys the storm guard spread over its window instead of deleting at once.",
            value=s.storm_spread,
        )
        yield CounterMetricFamily(
            prefix + "dead_lettered", "Entries moved to the dead-letter stream.", s.dead_lettered
        )
        yield CounterMetricFamily(prefix + "retries", "Purge attempts retried.", s.retries)
        yield CounterMetricFamily(
            prefix + "duplicates_skipped", "Events skipped as already done.", s.duplicates_skipped
        )
        yield CounterMetricFamily(
            prefix + "lost", "Entries trimmed from the stream before they were processed.", s.lost
        )
        if s.lag is not None:
            yield GaugeMetricFamily(
                prefix + "lag", "Entries not yet delivered to the group.", s.lag
            )
        yield GaugeMetricFamily(prefix + "pending", "Entries delivered, not acked.", s.pending)
        yield HistogramMetricFamily(
            prefix + "flush_latency_seconds",
            "From the event's time to its purge done.",
            buckets=s.latency.cumulative(),
            sum_value=s.latency.total,
        )


def serve_metrics(
    stats: CoordinatorStats, port: int, addr: str = "127.0.0.1"
) -> Callable[[], None]:
    """Serve ``stats`` as Prometheus metrics on ``addr:port`` in a background thread.

    Returns a function that stops the server. Raises ImportError with what to install when
    ``prometheus_client`` (the ``damestoilet-contracts[metrics]`` extra) is missing.
    """
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as exc:
        raise ImportError(
            "metrics need prometheus_client: pip install 'damestoilet-contracts[metrics]'"
        ) from exc
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats))
    server, thread = start_http_server(port, addr, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
