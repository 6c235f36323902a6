"""``damestoilet verify``: sample emitted events, wait, and report how many of them left no
value older than the event behind, as a share and as nines."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import click
import redis

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.cli._schema_handlers import schema_handlers
from damestoilet_contracts.runtime import DEFAULT_STREAM
from damestoilet_contracts.runtime._redact import redact
from damestoilet_contracts.runtime._registry import scheme_of
from damestoilet_contracts.runtime._verify import Verifier, VerifyReport
from damestoilet_contracts.runtime.redis._bus import connect


@click.command("verify")
@click.option("--redis", "redis_url", required=True, metavar="URL", help="The cache Redis.")
@click.option(
    "--bus",
    "bus_url",
    metavar="URL",
    help="The bus sampled: a Redis (the stream's) or nats:// (JetStream) [default: --redis].",
)
@click.option("--cluster", is_flag=True, help="--redis (and --bus) name a Redis Cluster node.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to sample.")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="How many of the last events to check.",
)
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds the newest sampled event must be old before the check (purge time).",
)
@click.option(
    "--targets",
    metavar="T1,T2",
    help="Check only ops of these targets (those this Redis holds) [default: all].",
)
@click.option(
    "--schemas",
    "schema_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Schema directory that plans events which arrive without a plan.",
)
@click.option(
    "--plain",
    type=click.Choice(["stale", "skip"]),
    default="stale",
    show_default=True,
    help="How a key of unknown age (a plain SET key) counts: as stale, or left out.",
)
@click.option(
    "--max-keys-per-op",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Most keys one prefix or tag op adds to a sample.",
)
@click.option(
    "--min-nines",
    type=click.FloatRange(min=0),
    help="Exit 1 only when the measured nines are below this [default: exit 1 on any stale "
    "sample].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def verify(
    redis_url: str,
    bus_url: str | None,
    cluster: bool,
    stream: str,
    sample: int,
    delay: float,
    targets: str | None,
    schema_dir: Path | None,
    plain: str,
    max_keys_per_op: int,
    min_nines: float | None,
    as_json: bool,
) -> None:
    """Check that the last --sample events left no value written before them in their keys.

    For each event its plan's keys are found (exact keys; prefixes by SCAN; tags through the
    tag set) and judged: absent, or a cache entry filled after the event, or soft-marked
    under a soft rule, is consistent; an entry filled before the event is stale; a plain key
    (no fill time) counts as stale unless --plain skip. Prints the share of consistent events
    and its nines (99.9% = 3 nines; with none stale, a lower bound). Exit 1 when any sample
    is stale; with --min-nines, exit 1 instead only below it (or with no sample to judge).
    Exit 1 too when Redis or --schemas cannot be read.

    \b
    Examples:
      damestoilet verify --redis redis://127.0.0.1:6379/0 --sample 1000 --delay 2
      damestoilet verify --redis redis://cache:6379/0 --bus redis://bus:6379/0 \\
        --targets default --min-nines 3 --json
      damestoilet verify --redis redis://cache:6379/0 --bus nats://127.0.0.1:4222
    """
    target_set = None
    if targets is not None:
        target_set = {t.strip() for t in targets.split(",")}
        if "" in target_set:
            raise click.BadParameter(
                "give target names separated by commas", param_hint="--targets"
            )
    try:
        handlers = schema_handlers(schema_dir) if schema_dir is not None else None
        cache = connect(redis_url, cluster=cluster)
        tail = None
        if bus_url is not None and scheme_of(bus_url) == "nats":
            from damestoilet_contracts.runtime.nats._bus import read_last

            def tail(stream: str, count: int) -> list[tuple[str, Any]]:
                return read_last(bus_url, stream, count)

            bus = cache
        else:
            bus = cache if bus_url is None else connect(bus_url, cluster=cluster)
        verifier = Verifier(
            cache,
            stream_client=bus,
            tail=tail,
            targets=target_set,
            handlers=handlers,
            plain="skip" if plain == "skip" else "stale",
            max_keys_per_op=max_keys_per_op,
        )
        report = verifier.run(stream, sample=sample, delay=delay)
    except (DamestoiletError, redis.RedisError, ValueError) as exc:
        click.echo(redact(f"verify failed: {exc}"), err=True)
        raise SystemExit(1) from exc
    click.echo(json.dumps(report.to_dict()) if as_json else _text(report))
    if report.lost_total:
        click.echo(
            f"{report.lost_total} event(s) were trimmed from the stream before a group read "
            "them: their keys were never purged (docs/trust.md, sizing maxlen)",
            err=True,
        )
        raise SystemExit(1)
    if min_nines is None:
        if report.inconsistent:
            count = report.inconsistent
            click.echo(
                f"{count} stale sample{'s' if count != 1 else ''}; pass --min-nines to "
                "tolerate some",
                err=True,
            )
            raise SystemExit(1)
    else:
        nines = report.nines
        if nines is None or nines < min_nines:
            got = "no samples" if nines is None else f"{nines:.2f} nines"
            click.echo(f"below --min-nines {min_nines:g}: {got}", err=True)
            raise SystemExit(1)


def _text(report: VerifyReport) -> str:
    lines = [
        f"sampled {report.sampled} event(s) of {report.stream}; checked {report.samples}, "
        f"{report.waited_s:.1f} s after the newest"
    ]
    for reason, count in sorted(report.skipped.items()):
        lines.append(f"  skipped {count}: {reason}")
    if report.unknown:
        lines.append(f"  left out {report.unknown}: a key of unknown age (--plain skip)")
    for group, lost in sorted(report.lost.items()):
        if lost:
            many = "an unknown number of" if lost < 0 else str(lost)
            lines.append(f"  lost {many} event(s) to trimming before group {group} read them")
    share, nines = report.share, report.nines
    if share is None or nines is None:
        lines.append("no sample to judge")
        return "\n".join(lines)
    bound = ">= " if report.nines_at_least else ""
    lines.append(
        f"consistent: {report.consistent}/{report.samples} = {share * 100:.4f}% "
        f"({bound}{nines:.2f} nines)"
    )
    keys = ", ".join(f"{v} {n}" for v, n in sorted(report.keys.items()))
    lines.append(f"keys: {keys}")
    for s in report.stale_samples:
        when = datetime.datetime.fromtimestamp(s.event_ms / 1000, datetime.UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        lines.append(f"{s.verdict}: {s.event_id} {s.type} at {stamp} (entry {s.entry_id})")
        for k in s.keys:
            if k.consistent is True:
                continue
            age = "" if k.filled_ms is None else f", filled {s.event_ms - k.filled_ms} ms before"
            lines.append(f"  {k.key} ({k.op.op} op, target {k.op.target}: {k.verdict}{age})")
    return "\n".join(lines)
