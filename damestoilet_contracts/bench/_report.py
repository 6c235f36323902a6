"""The comparison's outputs: a text table, the JSON document, a PNG chart, and the seed
article's figures to set beside ours."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damestoilet_contracts.bench._compare import CompareReport, relative
from damestoilet_contracts.bench._workload import TIME_SCALE


@dataclass(frozen=True, slots=True)
class ArticleFigures:
    """What the seed article reports for one strategy (12 services, a Redis cluster, Kafka)."""

    name: str
    stale_rate: float
    hit_ratio: float
    redis_cpu_vs_ttl_only: float | None
    flush_latency_ms: float | None


#: The article's figures at 2,000 reads/s, TTL 300 s ("under +5%" CPU is kept as 0.05).
ARTICLE: tuple[ArticleFigures, ...] = (
    ArticleFigures("ttl-only", 0.14, 0.85, None, None),
    ArticleFigures("manual", 0.02, 0.92, None, None),
    ArticleFigures("keyspace", 0.01, 0.90, 0.23, None),
    ArticleFigures("damestoilet", 0.001, 0.94, 0.05, 200.0),
)


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _signed_pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.0f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: CompareReport) -> str:
    """The figures as an aligned text table, one row per strategy, with the article's
    stale/hit figures in the last column."""
    article = {a.name: a for a in ARTICLE}
    header = (
        "strategy",
        "reads/s",
        "stale reads",
        "hit ratio",
        "Redis CPU",
        "CPU vs TTL",
        "flush p50 ms",
        "flush p99 ms",
        "article stale/hit",
    )
    rows = [header]
    for r in report.results:
        m = r.measures
        a = article.get(r.name)
        rows.append(
            (
                r.label,
                f"{r.read_rate:.0f}",
                f"{_pct(m.stale_rate, 2)} ({m.stale})",
                _pct(m.hit_ratio),
                f"{r.redis_cpu_s:.2f} s = {r.redis_core_share * 100:.1f}% core",
                _signed_pct(relative(r.redis_cpu_s, report.baseline_cpu_s)),
                _ms(m.latency.p50_ms),
                _ms(m.latency.p99_ms),
                "-" if a is None else f"{_pct(a.stale_rate)} / {_pct(a.hit_ratio, 0)}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    s = report.settings
    lines.append("")
    lines.append(
        f"{s.read_rate:.0f} reads/s (Zipf {s.skew:g} over {s.keys} keys), {s.write_rate:g} "
        f"writes/s, {s.duration_s:g} s measured after {s.warmup:g} s warm-up per strategy; "
        f"time scaled 1:{TIME_SCALE:g} (TTL {s.ttl_s:g} s = {s.ttl_s * TIME_SCALE:g} s, "
        f"backstop {s.backstop_ttl_s:g} s, operator delay {s.manual_delay_s:g} s); stale = "
        f"older than a write acknowledged > {s.tolerance_ms:g} ms before the read."
    )
    return "\n".join(lines)


def to_json(report: CompareReport) -> str:
    """The report as indented JSON, with the article's figures under ``article``."""
    data: dict[str, Any] = report.to_dict()
    data["article"] = [
        {
            "name": a.name,
            "stale_rate": a.stale_rate,
            "hit_ratio": a.hit_ratio,
            "redis_cpu_vs_ttl_only": a.redis_cpu_vs_ttl_only,
            "flush_latency_mean_ms": a.flush_latency_ms,
        }
        for a in ARTICLE
    ]
    return json.dumps(data, indent=2)


def write_chart(report: CompareReport, path: Path) -> None:
    """Draw stale reads, hit ratio and Redis CPU per strategy, ours beside the article's,
    and the flush latency, into the PNG ``path`` (headless: the Agg backend). Raises
    :class:`ImportError` when matplotlib (the ``bench`` extra) is not installed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    article = {a.name: a for a in ARTICLE}
    labels = [r.label for r in report.results]
    ours_stale = [r.measures.stale_rate * 100 for r in report.results]
    ours_hit = [r.measures.hit_ratio * 100 for r in report.results]
    ours_cpu = [
        (relative(r.redis_cpu_s, report.baseline_cpu_s) or 0.0) * 100 for r in report.results
    ]
    theirs_stale = [_article(article, r.name, "stale_rate") for r in report.results]
    theirs_hit = [_article(article, r.name, "hit_ratio") for r in report.results]
    theirs_cpu = [_article(article, r.name, "redis_cpu_vs_ttl_only") for r in report.results]

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
    panels = (
        ("stale reads (%)", ours_stale, theirs_stale),
        ("hit ratio (%)", ours_hit, theirs_hit),
        ("Redis CPU vs TTL-only (%)", ours_cpu, theirs_cpu),
    )
    xs = list(range(len(labels)))
    width = 0.38
    for ax, (title, ours, theirs) in zip(axes[:3], panels, strict=True):
        ax.bar([x - width / 2 for x in xs], ours, width, label="this run", color="#3b6ea5")
        ax.bar(
            [x + width / 2 for x in xs],
            [t if t is not None else 0.0 for t in theirs],
            width,
            label="article",
            color="#c9c9c9",
        )
        for x, value in zip(xs, ours, strict=True):
            ax.annotate(f"{value:.1f}", (x - width / 2, value), ha="center", va="bottom", size=8)
        ax.set_title(title)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=20, ha="right", size=8)
        ax.axhline(0, color="black", linewidth=0.6)
    axes[0].legend(fontsize=8)
    _latency_panel(axes[3], report, xs, labels, width, article)
    s = report.settings
    fig.suptitle(
        f"damestoilet bench compare: {s.read_rate:.0f} reads/s, {s.write_rate:g} writes/s, "
        f"{s.keys} keys, time scaled 1:{TIME_SCALE:g}",
        size=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_panel(
    ax: Any,
    report: CompareReport,
    xs: list[int],
    labels: list[str],
    width: float,
    article: dict[str, ArticleFigures],
) -> None:
    """Flush latency p50 and p99 (log scale), with the article's mean where it gives one."""
    p50 = [r.measures.latency.p50_ms or 0.0 for r in report.results]
    p99 = [r.measures.latency.p99_ms or 0.0 for r in report.results]
    ax.bar([x - width / 2 for x in xs], p50, width, label="p50", color="#3b6ea5")
    ax.bar([x + width / 2 for x in xs], p99, width, label="p99", color="#8fb3d9")
    for x, r in zip(xs, report.results, strict=True):
        figures = article.get(r.name)
        if figures is not None and figures.flush_latency_ms is not None:
            ax.scatter([x], [figures.flush_latency_ms], marker="_", s=400, color="#888888")
            ax.annotate(
                "article mean",
                (x, figures.flush_latency_ms),
                ha="center",
                va="bottom",
                size=7,
                color="#666666",
            )
        if r.measures.latency.p50_ms is None:
            ax.annotate("none", (x, 1.0), ha="center", va="bottom", size=8)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.1)
    ax.set_title("flush latency (ms, log)")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=20, ha="right", size=8)
    ax.legend(fontsize=8)


def _article(article: dict[str, ArticleFigures], name: str, attr: str) -> float | None:
    figures = article.get(name)
    if figures is None:
        return None
    value = getattr(figures, attr)
    return None if value is None else float(value) * 100
