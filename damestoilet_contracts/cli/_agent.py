"""``damestoilet agent``: a flush agent that purges only the operations of some targets, in a
consumer group of its own, until SIGTERM or SIGINT."""

from __future__ import annotations

from pathlib import Path

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.cli._handlers import find_handlers
from damestoilet_contracts.cli._worker import (
    check_bindings,
    configure_logging,
    metrics_served,
    resolve_flush_specs,
    resolve_grace,
    resolve_prefix_index,
    resolve_signing,
    resolve_storm,
    worker_options,
)
from damestoilet_contracts.runtime import (
    DEFAULT_GROUP,
    CoordinatorConfig,
    FlushAgent,
    agent_group,
)
from damestoilet_contracts.runtime._redact import redact


def _targets(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [t.strip() for t in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r}: give target names separated by commas")
    return names


@click.command("agent")
@click.option(
    "--targets",
    required=True,
    metavar="T1,T2",
    callback=_targets,
    help="The targets whose operations this agent executes, comma-separated.",
)
@worker_options
@click.option("--group", metavar="G", help="Consumer group [default: damestoilet-agent-<targets>].")
@click.option(
    "--until-idle", is_flag=True, help="Exit 0 once the stream has nothing new (batch jobs)."
)
def agent(
    targets: list[str],
    redis_url: str | None,
    bus_url: str | None,
    target_urls: dict[str, str],
    done_url: str | None,
    cluster: bool,
    bus_cluster: bool,
    stream: str,
    consumer: str | None,
    dlq_stream: str | None,
    handlers_package: str | None,
    schemas_dir: Path | None,
    signing_key_files: tuple[Path, ...],
    flush_graph: Path | None,
    grace: dict[str, float],
    max_deliveries: int,
    batch: int,
    block_ms: int,
    claim_idle_ms: int,
    done_ttl: int,
    metrics_port: int | None,
    metrics_addr: str,
    log_level: str,
    log_format: str,
    group: str | None,
    until_idle: bool,
) -> None:
    """Purge only the operations of --targets, in a consumer group of this agent's own.

    Every group receives every event, so a team runs an agent for the caches it owns next to
    the central coordinator (or instead of it, for its targets). Logs on stderr, one JSON
    object per line (readable lines on a terminal, see --log-format); SIGTERM or SIGINT
    finishes the batch in hand and exits 0. Exit 1 when the handlers cannot be loaded, one
    of --targets has no backend (--target NAME=URL or --redis), or a backend cannot be
    reached at start.

    \b
    Examples:
      damestoilet agent --redis redis://127.0.0.1:6379/0 --targets pricing
      damestoilet agent --redis redis://cache:6379/0 --bus redis://bus:6379/0 \\
        --targets catalog,pricing --flush-graph schemas/flush-graph.yaml --consumer pricing-1
      damestoilet agent --bus nats://127.0.0.1:4222 --targets pricing \\
        --target pricing=redis://pricing:6379/0
    """
    configure_logging(log_level, log_format)
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
    check_bindings(flush_graph, redis_url, target_urls, frozenset(targets))
    if redis_url is None:
        unbound = sorted(set(targets) - set(target_urls))
        if unbound:
            hint = " ".join(f"--target {name}=URL" for name in unbound)
            click.echo(
                f"agent cannot start: no purge backend for {', '.join(unbound)}: add {hint}",
                err=True,
            )
            raise SystemExit(1)
    try:
        handlers = find_handlers(handlers_package) if handlers_package else None
        worker = FlushAgent.from_url(
            redis_url,
            targets,
            config,
            bus_url=bus_url,
            cluster=cluster,
            bus_cluster=bus_cluster if bus_url else cluster,
            handlers=handlers,
            grace=resolve_grace(flush_graph, grace),
            target_urls=target_urls,
            done_url=done_url,
            flush_specs=resolve_flush_specs(schemas_dir, handlers_package),
            signing=resolve_signing(signing_key_files),
            prefix_index=resolve_prefix_index(flush_graph),
            storm=resolve_storm(flush_graph),
        )
        worker.ensure_group()
    except (DamestoiletError, ValueError) as exc:
        click.echo(redact(f"agent cannot start: {exc}"), err=True)
        raise SystemExit(1) from exc
    with metrics_served(worker.stats, metrics_port, metrics_addr):
        worker.run(stop_when_idle=until_idle, handle_signals=True)
