"""The coordinator's counters, kept in a plain in-process object, and their exposure as
Prometheus metrics (``prometheus_client``, the ``metrics`` extra, imported only when asked).

Besides the totals, events are counted by event type, flush ops by target, and the storm
guard's engagements by target and event type. Their label values are bounded
(:class:`LabelValues`): a type or target the contracts do not name, or one past the first
:data:`MAX_LABEL_VALUES` distinct values when no contracts are given, is counted as ``other``;
an entry that never decoded has the type ``undecoded``, and an engagement that events of
several types share has the type ``mixed``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
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

#: Distinct values a label takes, when no contracts say which, before the rest are ``other``.
MAX_LABEL_VALUES = 100
#: The label value of every type or target beyond those allowed.
OTHER = "other"
#: The type label of an entry dead-lettered before its envelope was read.
UNDECODED = "undecoded"
#: The type label of a storm guard engagement that events of several types share (one op of
#: a stage purged once for all of them).
MIXED = "mixed"


class LabelValues:
    """Keeps a label's values bounded: ``known`` values (from the contracts) pass and every
    other is :data:`OTHER`; without ``known``, the first ``limit`` distinct values pass."""

    def __init__(self, known: Iterable[str] | None = None, limit: int = MAX_LABEL_VALUES) -> None:
        """Raises ValueError for a ``limit`` below 1."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.known = None if known is None else frozenset(known)
        self.limit = limit
        self._seen: dict[str, str] = {}
        self._passed = 0

    def __call__(self, value: str) -> str:
        """The label value that stands for ``value``."""
        label = self._seen.get(value)
        if label is not None:
            return label
        if self.known is not None:
            label = value if value in self.known else OTHER
        elif self._passed < self.limit and value != OTHER:
            label = value
            self._passed += 1
        else:
            label = OTHER
        # every value that passes is remembered (so it keeps passing); refused ones only
        # while the memo is small, so a flood of distinct types cannot grow it
        if label != OTHER or len(self._seen) < 10 * self.limit:
            self._seen[value] = label
        return label


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
    #: Times the storm guard engaged: ops of a stage whose keys it spread (some).
    storm_engaged: int = 0
    #: Label values of event types and of targets (see :class:`LabelValues`).
    types: LabelValues = field(default_factory=LabelValues)
    targets: LabelValues = field(default_factory=LabelValues)
    #: The counters above by event type (label value), and flush ops purged by (target, op).
    events_by_type: dict[str, int] = field(default_factory=dict)
    dead_lettered_by_type: dict[str, int] = field(default_factory=dict)
    retries_by_type: dict[str, int] = field(default_factory=dict)
    duplicates_by_type: dict[str, int] = field(default_factory=dict)
    ops_by_target: dict[tuple[str, str], int] = field(default_factory=dict)
    #: :attr:`storm_spread` and :attr:`storm_engaged` by (target, event type) label values.
    storm_spread_by_target: dict[tuple[str, str], int] = field(default_factory=dict)
    storm_engaged_by_target: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The targets whose ops are counted (an agent's own); None: every target.
    served: frozenset[str] | None = None

    def bound_labels(self, flush_specs: Iterable[tuple[str, Iterable[Sequence[str]]]]) -> None:
        """Allow as label values only the event types and targets of ``flush_specs``
        (``(type, specs)`` pairs, each spec ``(op, target, mode, template)``); the rest are
        counted as :data:`OTHER`."""
        types: set[str] = set()
        targets: set[str] = set()
        for name, specs in flush_specs:
            types.add(name)
            targets.update(spec[1] for spec in specs)
        self.types = LabelValues(types)
        self.targets = LabelValues(targets)

    def by_type(self, counter: dict[str, int], event_type: str | None) -> None:
        """Count one in ``counter`` (a ``*_by_type`` dict) for ``event_type`` (None: an
        entry that never decoded)."""
        label = UNDECODED if event_type is None else self.types(event_type)
        counter[label] = counter.get(label, 0) + 1

    def add_event(self, event_type: str, stages: Iterable[Iterable[Any]]) -> None:
        """Count one purged event of ``event_type`` and the ops of its ``stages`` (of the
        :attr:`served` targets only)."""
        self.add_events([(event_type, stages)])

    def add_events(self, events: Iterable[tuple[str, Iterable[Iterable[Any]]]]) -> None:
        """:meth:`add_event` for each ``(event_type, stages)`` of a batch: counted by raw
        type and (target, op) first, then each distinct one labelled once."""
        types: dict[str, int] = {}
        pairs: dict[tuple[str, str], int] = {}
        get = pairs.get
        for event_type, stages in events:
            types[event_type] = types.get(event_type, 0) + 1
            for stage in stages:
                for op in stage:
                    pair = (op.target, op.op)
                    pairs[pair] = get(pair, 0) + 1
        by_type = self.events_by_type
        for event_type, n in types.items():
            label = self.types(event_type)
            by_type[label] = by_type.get(label, 0) + n
        ops, served = self.ops_by_target, self.served
        for (target, op_kind), n in pairs.items():
            if served is not None and target not in served:
                continue
            key = (self.targets(target), op_kind)
            ops[key] = ops.get(key, 0) + n

    def add_purge(self, result: object) -> None:
        """Add a purge target's result (``keys``, ``prefix_keys``, ``tag_keys``, ``spread``
        and ``storm`` if present)."""
        for op, attr in (("key", "keys"), ("prefix", "prefix_keys"), ("tag", "tag_keys")):
            value = getattr(result, attr, 0)
            if isinstance(value, int):
                self.keys_purged[op] += value
        spread = getattr(result, "spread", 0)
        if isinstance(spread, int):
            self.storm_spread += spread
        storm = getattr(result, "storm", ())
        if isinstance(storm, tuple):
            self.storm_engaged += len(storm)

    def add_engagement(self, target: str, event_type: str | None, spread: int) -> None:
        """Count one storm guard engagement on ``target`` that spread ``spread`` keys, for
        events of ``event_type`` (None: events of several types, :data:`MIXED`). The totals
        come from :meth:`add_purge`."""
        key = (self.targets(target), MIXED if event_type is None else self.types(event_type))
        self.storm_engaged_by_target[key] = self.storm_engaged_by_target.get(key, 0) + 1
        self.storm_spread_by_target[key] = self.storm_spread_by_target.get(key, 0) + spread


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
        by_type = (
            ("events", "Events purged", s.events_by_type),
            ("dead_lettered", "Entries moved to the dead-letter stream", s.dead_lettered_by_type),
            ("retries", "Purge attempts retried", s.retries_by_type),
            ("duplicates_skipped", "Events skipped as already done", s.duplicates_by_type),
        )
        for name, text, counts in by_type:
            family = CounterMetricFamily(
                f"{prefix}{name}_by_type", f"{text}, by event type.", labels=["type"]
            )
            for label, n in sorted(counts.items()):
                family.add_metric([label], n)
            yield family
        ops = CounterMetricFamily(
            prefix + "ops_by_target",
            "Flush ops of purged events, by target and op.",
            labels=["target", "op"],
        )
        for (target, op), n in sorted(s.ops_by_target.items()):
            ops.add_metric([target, op], n)
        yield ops
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
            prefix + "storm_engaged",
            "Times the storm guard engaged: ops of a stage whose keys it spread (some).",
            value=s.storm_engaged,
        )
        storm = (
            ("storm_spread_keys", "Keys the storm guard spread", s.storm_spread_by_target),
            ("storm_engaged", "Storm guard engagements", s.storm_engaged_by_target),
        )
        for name, text, pairs in storm:
            family = CounterMetricFamily(
                f"{prefix}{name}_by_target",
                f"{text}, by target and event type.",
                labels=["target", "type"],
            )
            for (target, type_), n in sorted(pairs.items()):
                family.add_metric([target, type_], n)
            yield family
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
