"""``damestoilet coordinator``: consume the event stream and purge, until SIGTERM or SIGINT."""

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
    Coordinator,
    CoordinatorConfig,
)
from damestoilet_contracts.runtime._redact import redact


@click.command("coordinator")
@worker_options
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Consumer group.")
@click.option(
    "--claim-interval",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds between reclaims.",
)
@click.option("--retry-base", type=click.FloatRange(min=0), default=0.1, show_default=True)
@click.option("--retry-max", type=click.FloatRange(min=0), default=10.0, show_default=True)
def coordinator(
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
    group: str,
    claim_interval: float,
    retry_base: float,
    retry_max: float,
) -> None:
    """Consume flush events from the bus and purge their keys, stage by stage.

    The bus is a Redis stream (--redis, or --bus redis://...) or NATS JetStream (--bus
    nats://...). Each op goes to the backend bound to its target (--target NAME=URL), or to
    --redis for every other target; with no --redis, an event naming an unbound target is
    dead-lettered with the reason, and a --flush-graph naming one refuses to start.

    Logs on stderr: one JSON object per line, or readable lines when stderr is a terminal
    (--log-format). SIGTERM or SIGINT finishes the batch in hand,
    settles it and exits 0. Exit 1 when the handlers package, the contracts or the flush
    graph cannot be loaded, a target of the graph is unbound, or a backend cannot be reached
    at start.

    A plan on the stream is data from the network: production runs should give --schemas
    DIR or a generated --handlers PKG, so that every plan is checked against the contracts
    before anything is deleted (docs/trust.md).

    \b
    Examples:
      damestoilet coordinator --redis redis://127.0.0.1:6379/0
      damestoilet coordinator --redis redis://127.0.0.1:6379/0 --schemas schemas
      damestoilet coordinator --redis redis://cache:6379/0 --bus redis://bus:6379/0 \\
        --handlers myservice_codegen --flush-graph schemas/flush-graph.yaml --metrics-port 9464
      damestoilet coordinator --bus nats://127.0.0.1:4222 \\
        --target default=redis://cache:6379/0 --target pricing=redis://pricing:6379/0 \\
        --target cdn=redis://edge:6379/0 --flush-graph schemas/flush-graph.yaml
      damestoilet coordinator --bus 'kafka://k1:9093,k2:9093?security.protocol=SASL_SSL' \
        --target default=redis://cache:6379/0
    """
    configure_logging(log_level, log_format)
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
    check_bindings(flush_graph, redis_url, target_urls)
    try:
        handlers = find_handlers(handlers_package) if handlers_package else None
        worker = Coordinator.from_url(
            redis_url,
            config,
            bus_url=bus_url,
            handlers=handlers,
            grace=resolve_grace(flush_graph, grace),
            flush_specs=resolve_flush_specs(schemas_dir, handlers_package),
            signing=resolve_signing(signing_key_files),
            prefix_index=resolve_prefix_index(flush_graph),
            storm=resolve_storm(flush_graph),
            cluster=cluster,
            bus_cluster=bus_cluster if bus_url else cluster,
            targets=target_urls,
            done_url=done_url,
        )
        worker.open()
    except (DamestoiletError, ValueError) as exc:
        click.echo(redact(f"coordinator cannot start: {exc}"), err=True)
        raise SystemExit(1) from exc
    with worker, metrics_served(worker.stats, metrics_port, metrics_addr):
        worker.run(handle_signals=True)
