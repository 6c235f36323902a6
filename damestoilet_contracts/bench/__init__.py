"""Benchmarks a user can run: the comparison of invalidation strategies on a real Redis, and
the throw-away local redis-server it (and the demo) start when no URL is given."""

from __future__ import annotations

from damestoilet_contracts.bench._codegen import forget_events, generate_events
from damestoilet_contracts.bench._compare import (
    CompareReport,
    StrategyResult,
    relative,
    run_compare,
)
from damestoilet_contracts.bench._local import (
    default_schemas,
    free_port,
    local_redis,
    wait_for_port,
)
from damestoilet_contracts.bench._report import (
    ARTICLE,
    ArticleFigures,
    format_table,
    to_json,
    write_chart,
)
from damestoilet_contracts.bench._strategies import (
    STRATEGIES,
    Damestoilet,
    KeyspaceNotifications,
    ManualPurge,
    Strategy,
    TtlOnly,
)
from damestoilet_contracts.bench._varnish import (
    Origin,
    local_varnish,
    varnish_available,
    varnishd_binary,
)
from damestoilet_contracts.bench._workload import (
    TIME_SCALE,
    CompareSettings,
    Latency,
    Measures,
    Workload,
)

__all__ = [
    "ARTICLE",
    "STRATEGIES",
    "TIME_SCALE",
    "ArticleFigures",
    "CompareReport",
    "CompareSettings",
    "Damestoilet",
    "KeyspaceNotifications",
    "Latency",
    "ManualPurge",
    "Measures",
    "Origin",
    "Strategy",
    "StrategyResult",
    "TtlOnly",
    "Workload",
    "default_schemas",
    "forget_events",
    "format_table",
    "free_port",
    "generate_events",
    "local_redis",
    "local_varnish",
    "relative",
    "run_compare",
    "to_json",
    "varnish_available",
    "varnishd_binary",
    "wait_for_port",
    "write_chart",
]
