"""``damestoilet relay``: publish outbox rows to the bus, until SIGTERM or SIGINT."""

from __future__ import annotations

from pathlib import Path

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.cli._worker import configure_logging, resolve_signing
from damestoilet_contracts.outbox import (
    DEFAULT_TABLE,
    Relay,
    open_publisher,
    open_store,
    serve_relay_metrics,
)
from damestoilet_contracts.outbox._store import DEFAULT_LEASE_S
from damestoilet_contracts.runtime import DEFAULT_STREAM
from damestoilet_contracts.runtime._redact import redact


@click.command("relay")
@click.option(
    "--db",
    "db_url",
    required=True,
    metavar="URL",
    help="The outbox's database: sqlite:///path.db or postgresql://user@host:port/dbname.",
)
@click.option(
    "--bus",
    "bus_url",
    required=True,
    metavar="URL",
    help="The bus: redis://host:port/db (a Redis stream), nats://host:port (JetStream) or "
    "kafka://host:port.",
)
@click.option("--bus-cluster", is_flag=True, help="--bus names a node of a Redis Cluster.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to append to.")
@click.option(
    "--maxlen",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Approximate cap of the stream's length.",
)
@click.option("--table", default=DEFAULT_TABLE, show_default=True, help="The outbox table.")
@click.option(
    "--batch", type=click.IntRange(min=1), default=500, show_default=True, help="Rows per round."
)
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(min=0.001),
    default=0.1,
    show_default=True,
    help="Seconds to wait for new rows before looking again (PostgreSQL also wakes on NOTIFY).",
)
@click.option(
    "--lease",
    "lease_s",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_LEASE_S,
    show_default=True,
    help="SQLite: seconds a dead relay's lease lasts before another relay takes over.",
)
@click.option(
    "--report",
    "report_s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between backlog lines (rows waiting, oldest age, published/s).",
)
@click.option(
    "--signing-key-file",
    "signing_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sign every entry or message with this key (HMAC-SHA256), as `damestoilet emit` "
    "does [default: $DAMESTOILET_SIGNING_KEY].",
)
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics.")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True, help="Metrics address.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Logs on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "text"]),
    default="auto",
    show_default=True,
    help="json: one JSON object per line; text: one readable line; auto: text when stderr "
    "is a terminal, else json.",
)
def relay(
    db_url: str,
    bus_url: str,
    bus_cluster: bool,
    stream: str,
    maxlen: int,
    table: str,
    batch: int,
    poll_s: float,
    lease_s: float,
    report_s: float,
    signing_key_file: Path | None,
    metrics_port: int | None,
    metrics_addr: str,
    log_level: str,
    log_format: str,
) -> None:
    """Publish the outbox's rows to the bus in commit order, then delete them.

    A row is published at least once and keeps its event id, so the coordinator's dedup
    absorbs re-sends after a crash. Several relays may run: on PostgreSQL they share the rows
    (FOR UPDATE SKIP LOCKED, order per entity kept) and wake on NOTIFY; on SQLite one holds a
    lease and the others stand by. A bus or database that fails keeps the rows and is retried
    with backoff. Logs on stderr, one JSON object per line (readable lines on a terminal,
    see --log-format); --metrics-port serves rows
    waiting, oldest age, published and published/s to Prometheus. SIGTERM or SIGINT finishes the
    batch in hand and exits 0. Exit 1 when the database cannot be reached or the table is
    missing or misshapen.

    \b
    Examples:
      damestoilet relay --db sqlite:///service.db --bus redis://127.0.0.1:6379/0
      damestoilet relay --db postgresql://app@db:5432/shop --bus redis://bus:6379/0 --batch 1000
      damestoilet relay --db sqlite:///service.db --bus nats://127.0.0.1:4222
      damestoilet relay --db sqlite:///service.db --bus kafka://127.0.0.1:9092 \\
        --signing-key-file /run/secrets/damestoilet-key
    """
    configure_logging(log_level, log_format)
    signing = resolve_signing([signing_key_file] if signing_key_file else [])
    try:
        publisher = open_publisher(
            bus_url, stream=stream, maxlen=maxlen, cluster=bus_cluster, signing=signing
        )
    except ValueError as exc:
        raise click.BadParameter(redact(str(exc)), param_hint="--bus") from exc
    except DamestoiletError as exc:  # the bus cannot be reached at start
        click.echo(redact(f"relay cannot start: {exc}"), err=True)
        raise SystemExit(1) from exc
    try:
        store = open_store(db_url, table=table, lease_s=lease_s)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--db/--table") from exc
    except DamestoiletError as exc:
        click.echo(f"relay cannot start: {exc}", err=True)
        raise SystemExit(1) from exc
    try:
        store.check()
    except DamestoiletError as exc:
        click.echo(f"relay cannot start: {exc}", err=True)
        store.close()
        raise SystemExit(1) from exc
    worker = Relay(store, publisher, batch=batch, poll_s=poll_s, report_s=report_s)
    stop_metrics = None
    try:
        if metrics_port is not None:
            try:
                stop_metrics = serve_relay_metrics(worker.stats, metrics_port, metrics_addr)
            except (ImportError, OSError) as exc:
                click.echo(
                    f"cannot serve metrics on {metrics_addr}:{metrics_port}: {exc}", err=True
                )
                raise SystemExit(1) from exc
        worker.run(handle_signals=True)
    finally:
        if stop_metrics is not None:
            stop_metrics()
        store.close()
        publisher.close()
