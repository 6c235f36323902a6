"""``damestoilet dlq list|replay|drop``: inspect the dead-letter stream, put entries back or
delete them. A letter is hostile input (it may be what got it dead-lettered): what ``list``
prints is escaped, never raw control characters or lone surrogates."""

from __future__ import annotations

import datetime
import json
from typing import Any

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.runtime import DEFAULT_STREAM, dlq_stream_name, open_backend
from damestoilet_contracts.runtime._redact import redact

_redis_option = click.option("--redis", "redis_url", metavar="URL", help="The stream's Redis.")
_bus_option = click.option(
    "--bus",
    "bus_url",
    metavar="URL",
    help="The bus instead: redis://, rediss://, nats:// (JetStream) or kafka:// "
    "[default: --redis].",
)
_cluster_option = click.option(
    "--cluster", is_flag=True, help="--redis names a node of a Redis Cluster."
)
_stream_option = click.option(
    "--stream", default=DEFAULT_STREAM, show_default=True, help="The main stream."
)
_dlq_option = click.option(
    "--dlq-stream", metavar="S", help="The dead-letter stream [default: <stream>:dlq]."
)


@click.group("dlq")
def dlq() -> None:
    """Inspect, replay and drop the dead-letter stream.

    \b
    Examples:
      damestoilet dlq list --redis redis://127.0.0.1:6379/0
      damestoilet dlq replay --redis redis://127.0.0.1:6379/0 --all
      damestoilet dlq list --bus nats://127.0.0.1:4222 --json
      damestoilet dlq drop --redis redis://127.0.0.1:6379/0 --id 1764155737123-0
    """


@dlq.command("list")
@_redis_option
@_bus_option
@_cluster_option
@_stream_option
@_dlq_option
@click.option("--count", type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(
    redis_url: str | None,
    bus_url: str | None,
    cluster: bool,
    stream: str,
    dlq_stream: str | None,
    count: int | None,
    as_json: bool,
) -> None:
    """List dead letters, oldest first: DLQ id, envelope id, type, deliveries, reason.

    \b
    Examples:
      damestoilet dlq list --redis redis://127.0.0.1:6379/0 --stream damestoilet:events --json
      damestoilet dlq list --bus nats://127.0.0.1:4222
    """
    store = _open(redis_url, bus_url, cluster)
    try:
        letters = store.entries(dlq_stream or dlq_stream_name(stream), count=count)
    except DamestoiletError as exc:
        click.echo(redact(f"cannot read the dead-letter stream: {exc}"), err=True)
        raise SystemExit(1) from exc
    finally:
        store.close()
    for letter in letters:
        if as_json:
            # ensure_ascii: a lone surrogate or a control character becomes a JSON escape
            click.echo(json.dumps(letter.to_dict(), ensure_ascii=True))
            continue
        when = datetime.datetime.fromtimestamp(letter.time_ms / 1000, datetime.UTC)
        click.echo(
            f"{_safe(letter.dlq_id)}  {_safe(letter.envelope_id or '-')}  "
            f"{_safe(letter.type or '-')}  deliveries={letter.deliveries}  "
            f"{when:%Y-%m-%dT%H:%M:%SZ}  {_safe(letter.reason)}"
        )


def _safe(text: str) -> str:
    """``text`` with every character that is not printable as its Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@dlq.command("replay")
@_redis_option
@_bus_option
@_cluster_option
@_stream_option
@_dlq_option
@click.option("--id", "ids", multiple=True, metavar="DLQ_ID", help="A dead-letter entry id.")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def replay(
    redis_url: str | None,
    bus_url: str | None,
    cluster: bool,
    stream: str,
    dlq_stream: str | None,
    ids: tuple[str, ...],
    replay_all: bool,
) -> None:
    """Put dead letters back onto the main stream, envelope ids unchanged, and remove them
    from the dead-letter stream. Exit 1 when an --id is not a dead letter (nothing replayed).

    \b
    Examples:
      damestoilet dlq replay --redis redis://127.0.0.1:6379/0 --id 1764155737123-0
      damestoilet dlq replay --redis redis://127.0.0.1:6379/0 --all
      damestoilet dlq replay --bus nats://127.0.0.1:4222 --id 17
    """
    if bool(ids) == replay_all:
        raise click.UsageError("give either --id (one or more) or --all")
    store = _open(redis_url, bus_url, cluster)
    try:
        replayed = store.replay(
            dlq_stream or dlq_stream_name(stream), None if replay_all else list(ids), stream=stream
        )
    except DamestoiletError as exc:
        click.echo(redact(str(exc)), err=True)
        raise SystemExit(1) from exc
    finally:
        store.close()
    for dlq_id, new_id in replayed:
        click.echo(f"{dlq_id} -> {stream} {new_id}")
    click.echo(f"replayed {len(replayed)} dead letter(s)", err=True)


@dlq.command("drop")
@_redis_option
@_bus_option
@_cluster_option
@_stream_option
@_dlq_option
@click.option("--id", "ids", multiple=True, metavar="DLQ_ID", help="A dead-letter entry id.")
@click.option("--all", "drop_all", is_flag=True, help="Drop every dead letter.")
def drop(
    redis_url: str | None,
    bus_url: str | None,
    cluster: bool,
    stream: str,
    dlq_stream: str | None,
    ids: tuple[str, ...],
    drop_all: bool,
) -> None:
    """Delete dead letters for good (forged plans, poison entries you have looked at).
    Exit 1 when an --id is not a dead letter (nothing is dropped).

    \b
    Examples:
      damestoilet dlq drop --redis redis://127.0.0.1:6379/0 --id 1764155737123-0
      damestoilet dlq drop --redis redis://127.0.0.1:6379/0 --all
      damestoilet dlq drop --bus nats://127.0.0.1:4222 --id 7
    """
    if bool(ids) == drop_all:
        raise click.UsageError("give either --id (one or more) or --all")
    store = _open(redis_url, bus_url, cluster)
    try:
        dropped = store.drop(dlq_stream or dlq_stream_name(stream), None if drop_all else list(ids))
    except DamestoiletError as exc:
        click.echo(redact(str(exc)), err=True)
        raise SystemExit(1) from exc
    finally:
        store.close()
    for dlq_id in dropped:
        click.echo(dlq_id)
    click.echo(f"dropped {len(dropped)} dead letter(s)", err=True)


def _open(redis_url: str | None, bus_url: str | None, cluster: bool) -> Any:
    url = bus_url or redis_url
    if url is None:
        raise click.UsageError("give --redis URL or --bus URL")
    try:
        return open_backend("dead_letters", url, **({"cluster": True} if cluster else {}))
    except (DamestoiletError, ValueError) as exc:
        click.echo(redact(f"cannot open the dead letters of {url}: {exc}"), err=True)
        raise SystemExit(1) from exc
