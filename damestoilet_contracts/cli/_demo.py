"""``damestoilet demo``: the whole toolkit in one command, step by step."""

from __future__ import annotations

from pathlib import Path

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.bench import default_schemas
from damestoilet_contracts.demo import run_demo


@click.command("demo")
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    help="A Redis to use (a scratch one) [default: start a local redis-server].",
)
@click.option(
    "--bus",
    "bus_url",
    metavar="URL",
    help="Carry the events on this bus instead of a Redis stream, e.g. nats://127.0.0.1:4222 "
    "(a running nats-server with JetStream) [default: the Redis].",
)
@click.option(
    "--keep", is_flag=True, help="Leave the generated code and, with --redis, the demo's keys."
)
@click.option(
    "--schemas",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Contract directory [default: ./schemas, else the repository's].",
)
@click.option(
    "--varnish/--no-varnish",
    default=None,
    help="Run the CDN story through a local varnishd [default: when varnishd is installed].",
)
def demo(
    redis_url: str | None,
    bus_url: str | None,
    keep: bool,
    schemas: Path | None,
    varnish: bool | None,
) -> None:
    """Show the toolkit end to end: start a local Redis (unless --redis), generate code from
    the contracts, start a coordinator, fill product, price, listing, search and CDN-page
    caches through the read-through cache, emit a price change, and print what the
    coordinator flushed, stage by stage, ending with the counts. Then, when varnishd is
    installed, the CDN story: an asset image and its product page served by a local Varnish,
    the old image served after the asset was replaced, an AssetReplaced event purging the
    Redis key and then the CDN objects, and the new image served.

    Exit 0 when every stale entry was flushed and every unrelated one kept; 1 otherwise,
    or when Redis or the schemas fail. It cleans up what it started.

    \b
    Examples:
      damestoilet demo
      damestoilet demo --redis redis://127.0.0.1:6379/0 --keep
      damestoilet demo --bus nats://127.0.0.1:4222
      damestoilet demo --no-varnish
    """
    try:
        result = run_demo(
            schemas=schemas or default_schemas(),
            redis_url=redis_url,
            keep=keep,
            echo=click.echo,
            bus_url=bus_url,
            varnish=varnish,
        )
    except DamestoiletError as exc:
        click.echo(f"demo failed: {exc}", err=True)
        raise SystemExit(1) from exc
    if not result.ok:
        raise SystemExit(1)
