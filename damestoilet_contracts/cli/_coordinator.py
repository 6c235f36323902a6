"""``damestoilet coordinator``: consume the event stream and purge, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import redis

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.cli._grace import grace_options, resolve_grace
from damestoilet_contracts.runtime import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    Coordinator,
    CoordinatorConfig,
    load_handlers,
    serve_metrics,
)


@click.command("coordinator")
@click.option("--redis", "redis_url", required=True, metavar="URL", help="The cache Redis.")
@click.option("--bus", "bus_url", metavar="URL", help="The stream's Redis [default: --redis].")
@click.option("--cluster", is_flag=True, help="--redis names a node of a Redis Cluster.")
@click.option("--bus-cluster", is_flag=True, help="--bus names a node of a Redis Cluster.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to consume.")
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Consumer group.")
@click.option(
    "--consumer",
    metavar="NAME",
    help="This consumer's name [default: <hostname>-<pid>]; keep it stable across restarts.",
)
@click.option("--dlq-stream", metavar="S", help="Dead-letter stream [default: <stream>:dlq].")
@click.option(
    "--handlers",
    "handlers_package",
    metavar="PKG",
    help="Package whose HANDLERS plan events that arrive without a plan.",
)
@grace_options
@click.option(
    "--max-deliveries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Deliveries after which a failing event is dead-lettered.",
)
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--block-ms",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="How long one read waits for new events; bounds how fast SIGTERM is noticed.",
)
@click.option(
    "--claim-idle-ms",
    type=click.IntRange(min=0),
    default=60_000,
    show_default=True,
    help="Reclaim entries idle this long in other (dead) consumers.",
)
@click.option(
    "--claim-interval",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds between reclaims.",
)
@click.option(
    "--done-ttl",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds an event id stays marked done (duplicates skipped).",
)
@click.option("--retry-base", type=click.FloatRange(min=0), default=0.1, show_default=True)
@click.option("--retry-max", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics.")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True, help="Metrics address.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def coordinator(
    redis_url: str,
    bus_url: str | None,
    cluster: bool,
    bus_cluster: bool,
    stream: str,
    group: str,
    consumer: str | None,
    dlq_stream: str | None,
    handlers_package: str | None,
    flush_graph: Path | None,
    grace: dict[str, float],
    max_deliveries: int,
    batch: int,
    block_ms: int,
    claim_idle_ms: int,
    claim_interval: float,
    done_ttl: int,
    retry_base: float,
    retry_max: float,
    metrics_port: int | None,
    metrics_addr: str,
    log_level: str,
) -> None:
    """Consume flush events from a Redis stream and purge their keys, stage by stage.

    Logs one JSON object per line on stderr. SIGTERM or SIGINT finishes the batch in hand,
    acknowledges it and exits 0. Exit 1 when the handlers package cannot be loaded or Redis
    cannot be reached at start.

    \b
    Examples:
      damestoilet coordinator --redis redis://127.0.0.1:6379/0
      damestoilet coordinator --redis redis://cache:6379/0 --bus redis://bus:6379/0 \\
        --handlers myservice_codegen --flush-graph schemas/flush-graph.yaml --metrics-port 9464
    """
    logging.basicConfig(
        stream=sys.stderr, format="%(message)s", level=getattr(logging, log_level.upper())
    )
    if retry_max < retry_base:
        raise click.UsageError("--retry-max must be at least --retry-base")
    config = CoordinatorConfig(
        stream=stream,
        group=group,
        consumer=consumer,
        dlq_stream=dlq_stream,
        batch=batch,
        block_ms=block_ms,
        max_deliveries=max_deliveries,
        retry_base_s=retry_base,
        retry_max_s=retry_max,
        claim_min_idle_ms=claim_idle_ms,
        claim_interval_s=claim_interval,
        done_ttl_s=done_ttl,
    )
    try:
        handlers = load_handlers(handlers_package) if handlers_package else None
        worker = Coordinator.from_url(
            redis_url,
            config,
            bus_url=bus_url,
            handlers=handlers,
            grace=resolve_grace(flush_graph, grace),
            cluster=cluster,
            bus_cluster=bus_cluster if bus_url else cluster,
        )
        worker.bus.ensure_group()
    except (DamestoiletError, redis.RedisError, ValueError) as exc:
        click.echo(f"coordinator cannot start: {exc}", err=True)
        raise SystemExit(1) from exc
    stop_metrics = None
    if metrics_port is not None:
        try:
            stop_metrics = serve_metrics(worker.stats, metrics_port, metrics_addr)
        except (ImportError, OSError) as exc:
            click.echo(f"cannot serve metrics on {metrics_addr}:{metrics_port}: {exc}", err=True)
            raise SystemExit(1) from exc
    try:
        worker.run(handle_signals=True)
    finally:
        if stop_metrics is not None:
            stop_metrics()
