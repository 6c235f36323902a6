"""``damestoilet index-audit``: compare the keyspace under the prefixes of indexed targets with
the prefix index, and report the keys a prefix purge would miss."""

from __future__ import annotations

import json
from pathlib import Path

import click
import redis

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.runtime.redis._bus import connect
from damestoilet_contracts.runtime.redis._prefix_index import IndexAudit, audit, indexed_prefixes


@click.command("index-audit")
@click.option("--redis", "redis_url", required=True, metavar="URL", help="The cache Redis.")
@click.option("--cluster", is_flag=True, help="--redis names a node of a Redis Cluster.")
@click.option(
    "--schemas",
    "schema_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Audit the prefix rules and nodes of every prefix_index: true target of this "
    "schema directory.",
)
@click.option(
    "--prefix", "prefixes", multiple=True, metavar="P", help="Audit this prefix (repeatable)."
)
@click.option(
    "--prune", is_flag=True, help="Remove index members whose key is gone (standalone only)."
)
@click.option(
    "--scan-count", type=click.IntRange(min=1), default=1000, show_default=True, help="SCAN COUNT."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def index_audit(
    redis_url: str,
    cluster: bool,
    schema_dir: Path | None,
    prefixes: tuple[str, ...],
    prune: bool,
    scan_count: int,
    as_json: bool,
) -> None:
    """Report keys under indexed prefixes that the prefix index does not hold.

    A target with prefix_index: true purges its prefixes from the index the read-through
    cache keeps; a key written any other way (a plain SET) is not in it, and such a purge
    misses it. This scans each prefix (SCAN, never KEYS: it costs a walk of the keyspace per
    prefix, so run it as a check, not on the purge path) and asks the index about every key
    found; it also counts index members whose key is gone (harmless; --prune removes them).
    Exit 1 when a key is missing from the index, or Redis or --schemas cannot be read; exit
    2 without --schemas or --prefix.

    \b
    Examples:
      damestoilet index-audit --redis redis://127.0.0.1:6379/0 --schemas schemas
      damestoilet index-audit --redis redis://cache:6379/0 --prefix page:category: --json
    """
    wanted = list(prefixes)
    unbounded: list[str] = []
    if schema_dir is None and not wanted:
        raise click.UsageError("give --schemas DIR or at least one --prefix")
    if "" in wanted:
        raise click.BadParameter("a prefix may not be empty", param_hint="--prefix")
    try:
        if schema_dir is not None:
            from damestoilet_contracts.lint import load_linted

            leads, unbounded = indexed_prefixes(load_linted(schema_dir))
            wanted += leads
        client = connect(redis_url, cluster=cluster)
        report = audit(client, wanted, scan_count=scan_count, prune=prune)
    except (DamestoiletError, redis.RedisError, ValueError) as exc:
        click.echo(f"index-audit failed: {exc}", err=True)
        raise SystemExit(1) from exc
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "unaudited": unbounded}))
    else:
        click.echo(_text(report, unbounded))
    if report.missing:
        raise SystemExit(1)


def _text(report: IndexAudit, unbounded: list[str]) -> str:
    if not report.prefixes:
        lines = ["no prefix to audit: no prefix rule of a prefix_index: true target"]
    else:
        lines = [
            f"audited {len(report.prefixes)} prefix(es): {', '.join(report.prefixes)}",
            f"keys: {report.scanned}; missing from the index: {report.missing}; "
            f"index members whose key is gone: {report.orphans}"
            + (f" (pruned {report.pruned})" if report.pruned else ""),
        ]
    for key in report.missing_sample:
        lines.append(f"  not indexed: {key}")
    if report.missing:
        lines.append(
            "a prefix purge of an indexed target misses these keys: write them through the "
            "read-through Cache, or drop prefix_index from the target"
        )
    for text in unbounded:
        lines.append(f"  not audited, starts with a field: {text}; audit it with --prefix")
    return "\n".join(lines)
