"""The outbox table: its layout in SQLite and PostgreSQL, the statements that write and read
it, and the checks that name the fix when it is missing or misshapen. No I/O here.

The layout is the one Debezium's outbox event router reads (``id``, ``aggregatetype``,
``aggregateid``, ``type``, ``payload``), plus ``seq`` (the commit order the relay follows) and
``created`` (for the oldest-age metric)::

    seq            INTEGER PRIMARY KEY AUTOINCREMENT | bigserial PRIMARY KEY
    id             TEXT | uuid, unique              the envelope id (CloudEvents id)
    aggregatetype  TEXT | text                      the event type, catalog.v1.ProductPriceChanged
    aggregateid    TEXT | text                      the entity key (the plan's first key)
    type           TEXT | text                      the event type again (Debezium's header)
    payload        BLOB | bytea                     the envelope, byte for byte what the bus gets
    created        REAL (unix s) | timestamptz      when the row was written

On PostgreSQL a statement trigger ``NOTIFY``s the channel named like the table on every
insert, so a relay wakes at commit. SQLite has a lease table, ``<table>_lease``, so that only
one of several relays publishes at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from damestoilet_contracts._errors import OutboxError
from damestoilet_contracts.runtime import Envelope

#: The table an outbox writes to unless told otherwise.
DEFAULT_TABLE = "damestoilet_outbox"

#: The two databases an outbox lives in.
Dialect = Literal["sqlite", "postgresql"]

#: Columns every outbox table has, in insert order (``seq`` and ``created`` come by themselves
#: on PostgreSQL).
COLUMNS = ("seq", "id", "aggregatetype", "aggregateid", "type", "payload", "created")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_FIX = "create it with `damestoilet outbox init --db URL` or Outbox.create_table(conn)"


def check_name(table: str) -> str:
    """``table`` if it is a plain SQL identifier (letters, digits, ``_``; at most 48), else
    raise ValueError: it is spliced into statements, never bound."""
    if not isinstance(table, str) or not _NAME.fullmatch(table):
        raise ValueError(
            f"outbox table name {table!r} must be letters, digits and _ (not first), "
            "at most 48 characters"
        )
    return table


def entity_key(envelope: Envelope) -> str:
    """The entity an event is about, for per-entity order (Debezium's ``aggregateid``): the
    first key of its plan's first stage, else its type."""
    plan = envelope.plan
    if plan is not None and plan.stages and plan.stages[0]:
        return plan.stages[0][0].key
    return envelope.type


@dataclass(frozen=True, slots=True)
class Row:
    """One outbox row as written: the envelope id, routing columns and the envelope bytes."""

    id: str
    aggregatetype: str
    aggregateid: str
    type: str
    payload: bytes
    created: float


def row_of(envelope: Envelope, entity: str | None = None) -> Row:
    """The row of ``envelope``; its payload is the bytes an emitter puts on the bus."""
    return Row(
        id=envelope.id,
        aggregatetype=envelope.type,
        aggregateid=entity if entity else entity_key(envelope),
        type=envelope.type,
        payload=envelope.to_bytes(version=2),
        created=envelope.timestamp,
    )


def create_statements(dialect: Dialect, table: str) -> tuple[list[str], list[str]]:
    """The statements that create ``table`` if missing, and those that then add its index
    and companions (idempotent); its shape is checked between the two."""
    t = check_name(table)
    if dialect == "sqlite":
        return [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT NOT NULL UNIQUE,"
            " aggregatetype TEXT NOT NULL,"
            " aggregateid TEXT NOT NULL,"
            " type TEXT NOT NULL,"
            " payload BLOB NOT NULL,"
            " created REAL NOT NULL)",
        ], [
            f"CREATE INDEX IF NOT EXISTS {t}_entity ON {t} (aggregateid, seq)",
            f"CREATE TABLE IF NOT EXISTS {t}_lease ("
            " name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL)",
        ]
    return [
        # concurrent inits would race on CREATE OR REPLACE FUNCTION: take turns
        f"SELECT pg_advisory_xact_lock(hashtext('damestoilet_outbox_init:{t}'))",
        f"CREATE TABLE IF NOT EXISTS {t} ("
        " seq bigserial PRIMARY KEY,"
        " id uuid NOT NULL UNIQUE,"
        " aggregatetype text NOT NULL,"
        " aggregateid text NOT NULL,"
        " type text NOT NULL,"
        " payload bytea NOT NULL,"
        " created timestamptz NOT NULL DEFAULT now())",
    ], [
        f"CREATE INDEX IF NOT EXISTS {t}_entity ON {t} (aggregateid, seq)",
        f"CREATE OR REPLACE FUNCTION {t}_notify() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$BEGIN PERFORM pg_notify('{t}', ''); RETURN NULL; END$$",
        f"CREATE OR REPLACE TRIGGER {t}_notify AFTER INSERT ON {t} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_notify()",
    ]


def insert_statement(
    dialect: Dialect, table: str, style: Literal["qmark", "format", "named"]
) -> str:
    """The INSERT of one row, with placeholders in the driver's ``style``."""
    t = check_name(table)
    names = ["id", "aggregatetype", "aggregateid", "type", "payload"]
    if dialect == "sqlite":
        names.append("created")
    if style == "named":
        marks = [f":{n}" for n in names]
    else:
        marks = ["?" if style == "qmark" else "%s"] * len(names)
    if dialect == "postgresql":
        marks[0] = f"CAST({marks[0]} AS uuid)"
    return f"INSERT INTO {t} ({', '.join(names)}) VALUES ({', '.join(marks)})"


def row_params(row: Row, dialect: Dialect) -> tuple[object, ...]:
    """The positional parameters of :func:`insert_statement` for ``row``."""
    base: tuple[object, ...] = (row.id, row.aggregatetype, row.aggregateid, row.type, row.payload)
    return (*base, row.created) if dialect == "sqlite" else base


def named_params(row: Row, dialect: Dialect) -> dict[str, object]:
    """The named parameters of :func:`insert_statement` for ``row``."""
    names = ("id", "aggregatetype", "aggregateid", "type", "payload", "created")
    return dict(zip(names, row_params(row, dialect), strict=False))


def columns_statement(dialect: Dialect, table: str) -> str:
    """A query listing ``table``'s columns as (name, type) rows: empty when it is missing."""
    t = check_name(table)
    if dialect == "sqlite":
        return f"SELECT name, type FROM pragma_table_info('{t}')"
    return (
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = current_schema() AND table_name = '{t.lower()}'"
    )


def check_columns(table: str, found: Iterable[Sequence[object]], where: str) -> None:
    """Raise :class:`OutboxError` naming the fix unless ``found`` (rows of
    :func:`columns_statement`) has every outbox column."""
    names = {str(r[0]).lower() for r in found}
    if not names:
        raise OutboxError(f"the outbox table {table} does not exist in {where}; {_FIX}")
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise OutboxError(
            f"the table {table} in {where} is not an outbox table: it lacks the column(s) "
            f"{', '.join(missing)} (an outbox has {', '.join(COLUMNS)}); rename or drop it "
            f"and {_FIX}, or give the outbox another table name"
        )


def translate(exc: BaseException, table: str) -> OutboxError | None:
    """The :class:`OutboxError` for a driver error that says the table is missing or lacks a
    column (sqlite3, psycopg, and either wrapped by SQLAlchemy), else None."""
    inner = getattr(exc, "orig", None) or exc
    name = type(inner).__name__
    text = str(inner)
    if name == "UndefinedTable" or "no such table" in text:
        return OutboxError(f"the outbox table {table} does not exist ({text.strip()}); {_FIX}")
    if name == "UndefinedColumn" or "has no column named" in text:
        return OutboxError(
            f"the table {table} is not an outbox table ({text.strip()}); an outbox has "
            f"{', '.join(COLUMNS)}: rename or drop it and {_FIX}"
        )
    return None
