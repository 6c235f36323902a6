"""A relay's counters as Prometheus metrics (``prometheus_client``, the ``metrics`` extra,
imported only when asked): rows published, rounds, bus failures, and the backlog gauges
(rows waiting, age of the oldest, published per second) as of the last report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from damestoilet_contracts.outbox._relay import RelayStats


class _Collector:
    """Reads a :class:`RelayStats` at every scrape."""

    def __init__(self, stats: RelayStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.stats
        prefix = "damestoilet_relay_"
        yield CounterMetricFamily(prefix + "published", "Outbox rows published.", s.published)
        yield CounterMetricFamily(prefix + "batches", "Rounds that published rows.", s.batches)
        yield CounterMetricFamily(
            prefix + "bus_failures",
            "Rounds that failed on the bus or the database (rows kept).",
            s.failures,
        )
        yield GaugeMetricFamily(prefix + "waiting", "Rows waiting in the outbox.", s.waiting)
        if s.oldest_age_s is not None:
            yield GaugeMetricFamily(
                prefix + "oldest_age_seconds", "Age of the oldest waiting row.", s.oldest_age_s
            )
        yield GaugeMetricFamily(
            prefix + "published_per_second", "Rows published per second, last interval.", s.rate
        )


def serve_relay_metrics(stats: RelayStats, port: int, addr: str = "0.0.0.0") -> Callable[[], None]:
    """Serve ``stats`` as Prometheus metrics on ``addr:port`` in a background thread; returns
    a function that stops the server. Raises ImportError naming the extra when
    ``prometheus_client`` is missing, OSError when the port cannot be bound."""
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
