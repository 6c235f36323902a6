"""``damestoilet agent``: a flush agent that purges only the operations of some targets, in a
consumer group of its own, until SIGTERM or SIGINT."""

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
    CoordinatorConfig,
    FlushAgent,
    agent_group,
    load_handlers,
    serve_metrics,
)


def _targets(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [t.strip() for t in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r}: give target names separated by commas")
    return names


@click.command("agent")
@click.option("--redis", "redis_url", required=True, metavar="URL", help="The cache Redis.")
@click.option(
    "--targets",
    required=True,
    metavar="T1,T2",
    callback=_targets,
    help="The targets whose operations this agent executes, comma-separated.",
)
@click.option("--bus", "bus_url", metavar="URL", help="The stream's Redis [default: --redis].")
@click.option("--cluster", is_flag=True, help="--redis names a node of a Redis Cluster.")
@click.option("--bus-cluster", is_flag=True, help="--bus names a node of a Redis Cluster.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to consume.")
@click.option("--group", metavar="G", help="Consumer group [default: damestoilet-agent-<targets>].")
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
    help="Reclaim entries idle this long in other (dead) consumers of the group.",
)
@click.option(
    "--done-ttl",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds an event id stays marked done for this group (duplicates skipped).",
)
@click.option(
    "--until-idle", is_flag=True, help="Exit 0 once the stream has nothing new (batch jobs)."
)
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics.")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True, help="Metrics address.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def agent(
    redis_url: str,
    targets: list[str],
    bus_url: str | None,
    cluster: bool,
    bus_cluster: bool,
    stream: str,
    group: str | None,
    consumer: str | None,
    dlq_stream: str | None,
    handlers_package: str | None,
    flush_graph: Path | None,
    grace: dict[str, float],
    max_deliveries: int,
    batch: int,
    block_ms: int,
    claim_idle_ms: int,
    done_ttl: int,
    until_idle: bool,
    metrics_port: int | None,
    metrics_addr: str,
    log_level: str,
) -> None:
    """Purge only the operations of --targets, in a consumer group of this agent's own.

    Every group receives every event, so a team runs an agent for the caches it owns next to
    the central coordinator (or instead of it, for its targets). Logs one JSON object per
    line on stderr; SIGTERM or SIGINT finishes the batch in hand and exits 0. Exit 1 when
    the handlers cannot be loaded or Redis cannot be reached at start.

    \b
    Examples:
      damestoilet agent --redis redis://127.0.0.1:6379/0 --targets pricing
      damestoilet agent --redis redis://cache:6379/0 --bus redis://bus:6379/0 \\
        --targets catalog,pricing --flush-graph schemas/flush-graph.yaml --consumer pricing-1
    """
    logging.basicConfig(
        stream=sys.stderr, format="%(message)s", level=getattr(logging, log_level.upper())
    )
    if group == DEFAULT_GROUP:
        raise click.BadParameter(
            "that is the coordinator's group: an agent in it would take events from the "
            "coordinator; leave --group out for damestoilet-agent-<targets>",
            param_hint="--group",
        )
    config = CoordinatorConfig(
        stream=stream,
        group=group or agent_group(targets),
        consumer=consumer,
        dlq_stream=dlq_stream,
        batch=batch,
        block_ms=block_ms,
        max_deliveries=max_deliveries,
        claim_min_idle_ms=claim_idle_ms,
        done_ttl_s=done_ttl,
    )
    try:
        handlers = load_handlers(handlers_package) if handlers_package else None
        worker = FlushAgent.from_url(
            redis_url,
            targets,
            config,
            bus_url=bus_url,
            cluster=cluster,
            bus_cluster=bus_cluster if bus_url else cluster,
            handlers=handlers,
            grace=resolve_grace(flush_graph, grace),
        )
        worker.ensure_group()
    except (DamestoiletError, redis.RedisError, ValueError) as exc:
        click.echo(f"agent cannot start: {exc}", err=True)
        raise SystemExit(1) from exc
    stop_metrics = None
    if metrics_port is not None:
        try:
            stop_metrics = serve_metrics(worker.stats, metrics_port, metrics_addr)
        except (ImportError, OSError) as exc:
            click.echo(f"cannot serve metrics on {metrics_addr}:{metrics_port}: {exc}", err=True)
            raise SystemExit(1) from exc
    try:
        worker.run(stop_when_idle=until_idle, handle_signals=True)
    finally:
        if stop_metrics is not None:
            stop_metrics()
