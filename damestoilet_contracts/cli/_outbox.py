"""``damestoilet outbox init``: create the outbox table in a SQLite file or PostgreSQL."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.outbox import DEFAULT_TABLE, Outbox
from damestoilet_contracts.outbox._store import postgres_url, sqlite_path


@click.group("outbox")
def outbox() -> None:
    """Manage the transactional outbox table (see docs/outbox.md).

    \b
    Examples:
      damestoilet outbox init --db sqlite:///service.db
      damestoilet outbox init --db postgresql://app@127.0.0.1:5432/shop
    """


@outbox.command("init")
@click.option(
    "--db",
    "db_url",
    required=True,
    metavar="URL",
    help="sqlite:///path.db (created if missing) or postgresql://user@host:port/dbname.",
)
@click.option("--table", default=DEFAULT_TABLE, show_default=True, help="The outbox table.")
def init(db_url: str, table: str) -> None:
    """Create the outbox table (with its NOTIFY trigger on PostgreSQL, its lease table on
    SQLite) if it is missing, and check its shape. Running it again changes nothing.

    Exit 1 when the database cannot be reached or a table of that name has another shape.

    \b
    Examples:
      damestoilet outbox init --db sqlite:///service.db
      damestoilet outbox init --db postgresql://app@127.0.0.1:5432/shop --table shop_outbox
    """
    try:
        box = Outbox(source="//damestoilet/cli", table=table)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--table") from exc
    scheme = urlsplit(db_url).scheme.split("+")[0]
    try:
        if scheme == "sqlite":
            try:
                path = sqlite_path(db_url)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--db") from exc
            with sqlite3.connect(path) as conn:
                box.create_table(conn)
            conn.close()
        elif scheme in ("postgresql", "postgres"):
            import psycopg

            with psycopg.connect(postgres_url(db_url)) as pg:
                box.create_table(pg)
        else:
            raise click.BadParameter(
                f"{db_url!r}: write sqlite:///path.db or postgresql://...", param_hint="--db"
            )
    except click.UsageError:
        raise
    except (DamestoiletError, sqlite3.Error, OSError) as exc:
        click.echo(f"outbox init: {exc}", err=True)
        raise SystemExit(1) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            click.echo(f"outbox init: cannot use {db_url}: {exc}", err=True)
            raise SystemExit(1) from exc
        raise
    click.echo(f"outbox table {table} is ready in {db_url}")
