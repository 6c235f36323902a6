"""``damestoilet trim``: remove the stream entries every consumer group has acknowledged."""

from __future__ import annotations

import click
import redis

from damestoilet_contracts.runtime import DEFAULT_STREAM
from damestoilet_contracts.runtime._redact import redact
from damestoilet_contracts.runtime.redis._bus import connect
from damestoilet_contracts.runtime.redis._trust import acknowledged_floor, trim_acknowledged


@click.command("trim")
@click.option("--redis", "redis_url", required=True, metavar="URL", help="The stream's Redis.")
@click.option("--cluster", is_flag=True, help="--redis names a node of a Redis Cluster.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to trim.")
@click.option("--dry-run", is_flag=True, help="Print the id it would trim below; trim nothing.")
def trim(redis_url: str, cluster: bool, stream: str, dry_run: bool) -> None:
    """Trim the stream by its slowest consumer group instead of by a fixed cap: remove every
    entry that each group has read and acknowledged (XTRIM MINID), so that nothing is ever
    trimmed before a group read it. Run it every minute or so for a stream emitted with
    --maxlen 0. Prints how many entries went; exit 1 when Redis fails.

    \b
    Examples:
      damestoilet trim --redis redis://127.0.0.1:6379/0
      damestoilet trim --redis redis://127.0.0.1:6379/0 --stream damestoilet:events --dry-run
    """
    try:
        client = connect(redis_url, cluster=cluster)
        if dry_run:
            floor = acknowledged_floor(client, stream)
            click.echo(f"would trim {stream} below {floor}" if floor else f"{stream}: no group")
            return
        click.echo(f"trimmed {trim_acknowledged(client, stream)} entries of {stream}")
    except (redis.RedisError, ValueError) as exc:
        click.echo(redact(f"cannot trim {stream} at {redis_url}: {exc}"), err=True)
        raise SystemExit(1) from exc
