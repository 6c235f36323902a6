"""What ``damestoilet coordinator`` and ``damestoilet agent`` share: their common options,
the soft-purge windows (``--flush-graph FILE``, ``--grace T=S``), logging and metrics.

A worker never looks at the graph on its hot path; it reads the windows once, at start, and
hands them to its purge target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.logging import LogFormat, configure
from damestoilet_contracts.model import FlushGraph, StormGuard
from damestoilet_contracts.runtime import (
    DEFAULT_STREAM,
    CoordinatorStats,
    FlushSpec,
    SigningKeys,
    load_flush_specs,
    serve_metrics,
)

F = TypeVar("F", bound=Callable[..., Any])


def _parse(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in value:
        name, sep, text = item.partition("=")
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not sep or not name or not seconds >= 0:
            raise click.BadParameter(f"{item!r}: write TARGET=SECONDS, e.g. pricing=10")
        out[name] = seconds
    return out


def _parse_targets(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value:
        name, sep, url = item.partition("=")
        name = name.strip()
        if not sep or not name or "://" not in url:
            raise click.BadParameter(f"{item!r}: write NAME=URL, e.g. pricing=redis://p:6379/0")
        if name in out:
            raise click.BadParameter(f"target {name!r} is bound twice")
        out[name] = url
    return out


_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--redis",
        "redis_url",
        metavar="URL",
        help="The cache Redis: the default purge target of every target not bound with "
        "--target, and the default bus and done store. Needed unless --target is given.",
    ),
    click.option(
        "--bus",
        "bus_url",
        metavar="URL",
        help="The bus: redis://, rediss:// (a Redis stream), nats:// (JetStream) or "
        "kafka://HOST:PORT[,HOST:PORT][?librdkafka options] [default: --redis].",
    ),
    click.option(
        "--target",
        "target_urls",
        multiple=True,
        metavar="NAME=URL",
        callback=_parse_targets,
        help="Purge target NAME on its own backend (repeatable), e.g. pricing=redis://p:6379/0.",
    ),
    click.option(
        "--done",
        "done_url",
        metavar="URL",
        help="Where done marks live (a Redis) [default: --redis, else a Redis --target].",
    ),
    click.option("--cluster", is_flag=True, help="--redis names a node of a Redis Cluster."),
    click.option("--bus-cluster", is_flag=True, help="--bus names a node of a Redis Cluster."),
    click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to consume."),
    click.option(
        "--consumer",
        metavar="NAME",
        help="This consumer's name [default: <hostname>-<pid>]; keep it stable across restarts.",
    ),
    click.option("--dlq-stream", metavar="S", help="Dead-letter stream [default: <stream>:dlq]."),
    click.option(
        "--handlers",
        "handlers_package",
        metavar="PKG",
        help="Package whose HANDLERS plan events that arrive without a plan: an import name "
        "(found from the current directory too) or the path of the package folder; a "
        "generated package's FLUSH_SPECS also check every plan, as --schemas does.",
    ),
    click.option(
        "--schemas",
        "schemas_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Check every plan against these contracts before deleting anything (types, "
        "targets, modes, key templates, fan-out cap). Production runs should give this or "
        "a generated --handlers package; without either only damestoilet:* keys are guarded.",
    ),
    click.option(
        "--signing-key-file",
        "signing_key_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Require entries signed with this key (HMAC-SHA256); repeat it to accept a second "
        "key during a rotation [default: $DAMESTOILET_SIGNING_KEY, and ..._PREVIOUS].",
    ),
    click.option(
        "--flush-graph",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Read every target's grace_seconds, prefix_index and storm guard from this "
        "flush-graph.yaml at start [default: 30 s for every target, prefixes scanned, no "
        "storm guard].",
    ),
    click.option(
        "--grace",
        multiple=True,
        metavar="TARGET=S",
        callback=_parse,
        help="Soft-purge window of a target in seconds (repeatable); wins over --flush-graph.",
    ),
    click.option(
        "--max-deliveries",
        type=click.IntRange(min=1),
        default=5,
        show_default=True,
        help="Deliveries after which a failing event is dead-lettered.",
    ),
    click.option(
        "--batch",
        type=click.IntRange(min=1),
        default=500,
        show_default=True,
        help="Entries read per XREADGROUP; their purges share round trips.",
    ),
    click.option(
        "--block-ms",
        type=click.IntRange(min=1),
        default=1000,
        show_default=True,
        help="How long one read waits for new events; bounds how fast SIGTERM is noticed.",
    ),
    click.option(
        "--claim-idle-ms",
        type=click.IntRange(min=0),
        default=60_000,
        show_default=True,
        help="Reclaim entries idle this long in other (dead) consumers of the group.",
    ),
    click.option(
        "--done-ttl",
        type=click.IntRange(min=1),
        default=300,
        show_default=True,
        help="Seconds an event id stays marked done for this group (duplicates skipped).",
    ),
    click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics."),
    click.option(
        "--metrics-addr",
        default="127.0.0.1",
        show_default=True,
        help="Address to serve metrics on; 0.0.0.0 exposes them beyond this host.",
    ),
    click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
        help="Logs on stderr; per-event lines at info (use warning for throughput).",
    ),
    click.option(
        "--log-format",
        type=click.Choice(["auto", "json", "text"]),
        default="auto",
        show_default=True,
        help="json: one JSON object per line; text: one readable line; auto: text when stderr "
        "is a terminal, else json.",
    ),
]


def worker_options(command: F) -> F:
    """Add the options every worker command takes, in --help order (parameters
    ``redis_url, bus_url, target_urls, done_url, cluster, bus_cluster, stream, consumer,
    dlq_stream, handlers_package, schemas_dir, signing_key_files, flush_graph, grace,
    max_deliveries, batch, block_ms, claim_idle_ms, done_ttl, metrics_port, metrics_addr,
    log_level, log_format``)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def configure_logging(log_level: str, log_format: str = "auto") -> None:
    """Log at ``log_level`` on stderr, as ``log_format`` says (``auto``: readable lines on a
    terminal, else one JSON object per line)."""
    configure(log_level, log_format=cast(LogFormat, log_format))


@contextmanager
def metrics_served(stats: CoordinatorStats, port: int | None, addr: str) -> Iterator[None]:
    """Serve ``stats`` on ``addr:port`` while the block runs (nothing when ``port`` is None);
    exits 1 when the port cannot be served."""
    if port is None:
        yield
        return
    try:
        stop = serve_metrics(stats, port, addr)
    except (ImportError, OSError) as exc:
        click.echo(f"cannot serve metrics on {addr}:{port}: {exc}", err=True)
        raise SystemExit(1) from exc
    try:
        yield
    finally:
        stop()


def _graph(flush_graph: Path) -> FlushGraph:
    from damestoilet_contracts.loaders import load_graph

    graph, problems = load_graph(flush_graph)
    if problems:
        listing = "\n".join(str(p) for p in sorted(problems))
        raise click.ClickException(f"{flush_graph} is not a valid flush graph:\n{listing}")
    return graph


def resolve_grace(flush_graph: Path | None, grace: dict[str, float]) -> dict[str, float]:
    """The windows of ``flush_graph`` (if given) overlaid with ``grace``.

    Raises :class:`click.ClickException` (exit 1) listing the graph's problems when it is wrong.
    """
    windows: dict[str, float] = {}
    if flush_graph is not None:
        windows.update(_graph(flush_graph).grace)
    windows.update(grace)
    return windows


def resolve_flush_specs(
    schemas_dir: Path | None, handlers_package: str | None
) -> dict[str, tuple[FlushSpec, ...]] | None:
    """What plans are checked against: the contracts of ``schemas_dir``, else the
    ``FLUSH_SPECS`` of ``handlers_package``, else None (a warning on stderr says so).

    Raises :class:`click.ClickException` (exit 1) listing the contracts' problems, or when
    the package cannot be imported.
    """
    if schemas_dir is not None:
        from damestoilet_contracts.compiler import flush_specs
        from damestoilet_contracts.loaders import load_contracts

        try:
            return flush_specs(load_contracts(schemas_dir))
        except DamestoiletError as exc:
            raise click.ClickException(f"{schemas_dir}: contracts do not load:\n{exc}") from exc
    if handlers_package is not None:
        try:
            specs = load_flush_specs(handlers_package)
        except DamestoiletError as exc:
            raise click.ClickException(str(exc)) from exc
        if specs is not None:
            return specs
        click.echo(
            f"warning: {handlers_package} has no FLUSH_SPECS (generated before they existed); "
            "regenerate it or give --schemas to check plans against the contracts",
            err=True,
        )
        return None
    click.echo(
        "warning: plans from the stream run unchecked but for damestoilet:* keys; give "
        "--schemas DIR or a generated --handlers PKG in production (docs/trust.md)",
        err=True,
    )
    return None


def resolve_storm(flush_graph: Path | None) -> Mapping[str, StormGuard]:
    """The storm guards ``flush_graph`` declares per target (``storm_max_keys``; none without
    a graph). Raises :class:`click.ClickException` when the graph is wrong."""
    return {} if flush_graph is None else _graph(flush_graph).storm


def resolve_prefix_index(flush_graph: Path | None) -> frozenset[str]:
    """The targets ``flush_graph`` declares with ``prefix_index: true`` (none without a graph:
    every prefix is scanned). Raises :class:`click.ClickException` when the graph is wrong."""
    return frozenset() if flush_graph is None else _graph(flush_graph).prefix_index


def check_bindings(
    flush_graph: Path | None,
    redis_url: str | None,
    target_urls: dict[str, str],
    owned: frozenset[str] | None = None,
) -> None:
    """Refuse to start (exit 2 without any purge backend, exit 1 when the flush graph names
    a target, of ``owned`` if given, that nothing is bound to): a plan naming it would only
    be dead-lettered."""
    if redis_url is None and not target_urls:
        raise click.UsageError("give --redis URL, or --target NAME=URL for each target")
    if flush_graph is None or redis_url is not None:
        return
    graph = _graph(flush_graph)
    names = set(graph.grace) | {node.target for node in graph.nodes.values()}
    if owned is not None:
        names &= owned
    unbound = sorted(names - set(target_urls))
    if unbound:
        hint = " ".join(f"--target {name}=URL" for name in unbound)
        raise click.ClickException(
            f"{flush_graph} names target(s) {', '.join(unbound)} that no purge backend is "
            f"bound to: add {hint}, or --redis URL as the default backend"
        )


def resolve_signing(files: Sequence[Path]) -> SigningKeys | None:
    """The signing keys of ``files`` (the first signs, all are accepted), else those of the
    environment, else None. Raises :class:`click.ClickException` (exit 1) for a key that
    cannot be read or is too short."""
    try:
        return SigningKeys.from_files(files) if files else SigningKeys.from_env()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"signing key: {exc}") from exc
