"""``damestoilet bench compare``: TTL-only, manual purge, keyspace notifications and
damestoilet on the same workload against a real Redis; a table, JSON and a PNG chart."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.bench import (
    TIME_SCALE,
    CompareSettings,
    default_schemas,
    format_table,
    run_compare,
    to_json,
    write_chart,
)


@click.group("bench")
def bench() -> None:
    """Benchmarks anyone can run on their own machine.

    \b
    Example:
      damestoilet bench compare --duration 5 --json out.json --chart out.png
    """


class _Bars:
    """One click progress bar per strategy, on stderr (hidden when stderr is no terminal)."""

    STEPS = 1000

    def __init__(self) -> None:
        self.label: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, label: str, fraction: float) -> None:
        if label != self.label:
            self.close()
            self.label = label
            self.bar = click.progressbar(
                length=self.STEPS, label=f"{label:<24}", file=sys.stderr, width=30
            )
            self.bar.__enter__()
            self.done = 0
        step = int(fraction * self.STEPS) - self.done
        if step > 0:
            self.bar.update(step)
            self.done += step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@bench.command("compare")
@click.option("--redis", "redis_url", metavar="URL", help="A scratch Redis [default: start one].")
@click.option(
    "--bus",
    "bus_url",
    metavar="URL",
    help="Carry damestoilet's events on this bus (e.g. nats://127.0.0.1:4222) instead of a "
    "stream in the cache's Redis, so the Redis CPU figure leaves the events out.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1),
    default=20.0,
    show_default=True,
    help="Measured seconds per strategy (after a warm-up of a quarter of it, at most 5 s).",
)
@click.option("--warmup", type=click.FloatRange(min=0), help="Warm-up seconds per strategy.")
@click.option("--read-rate", type=click.FloatRange(min=1), default=2000, show_default=True)
@click.option("--write-rate", type=click.FloatRange(min=0.1), default=30, show_default=True)
@click.option("--keys", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--skew", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Zipf exponent."
)
@click.option(
    "--ttl",
    type=click.FloatRange(min=0.01),
    default=10.0,
    show_default=True,
    help=f"TTL-only's TTL in seconds (scaled 1:{TIME_SCALE:g}: 10 s stands for 300 s).",
)
@click.option(
    "--backstop-ttl",
    type=click.FloatRange(min=0.01),
    default=120.0,
    show_default=True,
    help="TTL of the strategies that purge (120 s stands for an hour).",
)
@click.option(
    "--manual-delay",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds from a write to the operator's purge (2 s stands for a minute).",
)
@click.option(
    "--tolerance-ms",
    type=click.FloatRange(min=0),
    default=100.0,
    show_default=True,
    help="A read is stale if it misses a write acknowledged longer ago than this.",
)
@click.option(
    "--db-latency-ms",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Extra latency of a source query after it read the row.",
)
@click.option("--readers", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--schemas",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Contract directory [default: ./schemas, else the repository's].",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON."
)
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG chart (needs the bench extra: matplotlib).",
)
def compare(
    redis_url: str | None,
    bus_url: str | None,
    duration: float,
    warmup: float | None,
    read_rate: float,
    write_rate: float,
    keys: int,
    skew: float,
    ttl: float,
    backstop_ttl: float,
    manual_delay: float,
    tolerance_ms: float,
    db_latency_ms: float,
    readers: int,
    seed: int,
    schemas: Path | None,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """Run TTL-only, manual purge, keyspace notifications and damestoilet one after another
    on the same workload (Zipf-skewed reads, uniform writes, a source of truth in the next
    Redis database) and print, for each: stale reads, hit ratio, Redis CPU and flush latency.

    Without --redis a local redis-server is started and stopped; a --redis server must be
    a scratch one: its database and the next are emptied between strategies. The default
    run takes about 2 minutes. Exit 1 when Redis fails or matplotlib is missing for --chart.

    \b
    Examples:
      damestoilet bench compare
      damestoilet bench compare --duration 5 --write-rate 100 --json out.json --chart out.png
      damestoilet bench compare --bus nats://127.0.0.1:4222
    """
    if chart_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            click.echo(
                "--chart needs matplotlib: pip install 'damestoilet-contracts[bench]'", err=True
            )
            raise SystemExit(1) from exc
    settings = CompareSettings(
        duration_s=duration,
        warmup_s=warmup,
        read_rate=read_rate,
        write_rate=write_rate,
        keys=keys,
        skew=skew,
        ttl_s=ttl,
        backstop_ttl_s=backstop_ttl,
        manual_delay_s=manual_delay,
        tolerance_ms=tolerance_ms,
        db_latency_ms=db_latency_ms,
        readers=readers,
        seed=seed,
    )
    bars = _Bars()
    try:
        report = run_compare(
            settings,
            redis_url=redis_url,
            schemas=schemas or default_schemas(),
            progress=bars,
            bus_url=bus_url,
        )
    except DamestoiletError as exc:
        bars.close()
        click.echo(f"bench compare failed: {exc}", err=True)
        raise SystemExit(1) from exc
    bars.close()
    click.echo(format_table(report))
    if json_path is not None:
        json_path.write_text(to_json(report) + "\n")
        click.echo(f"wrote {json_path}", err=True)
    if chart_path is not None:
        write_chart(report, chart_path)
        click.echo(f"wrote {chart_path}", err=True)
