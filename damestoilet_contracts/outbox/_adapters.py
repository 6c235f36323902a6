"""What an outbox needs of a caller's connection, for each driver it accepts: the dialect, a way
to run one statement with many rows, and whether a transaction is open. No driver is imported
unless the connection is one of its own.

Sync: ``sqlite3.Connection``, ``psycopg.Connection``, SQLAlchemy ``Connection`` and ``Session``.
Async: ``psycopg.AsyncConnection``, SQLAlchemy ``AsyncConnection`` and ``AsyncSession``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from damestoilet_contracts._errors import OutboxError
from damestoilet_contracts.outbox._table import Dialect

Style = Literal["qmark", "format", "named"]

_SYNC = "sqlite3.Connection, psycopg.Connection, or a SQLAlchemy Connection or Session"
_ASYNC = "psycopg.AsyncConnection, or a SQLAlchemy AsyncConnection or AsyncSession"


@dataclass(frozen=True, slots=True)
class Adapter:
    """How to talk to one connection: its dialect, placeholder style and driver kind."""

    conn: Any
    dialect: Dialect
    style: Style
    kind: Literal["sqlite3", "psycopg", "sqlalchemy"]

    def run(self, statement: str, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run ``statement`` once per parameter set in ``rows`` (once bare when ``rows`` is
        empty); returns the rows of a bare query."""
        if self.kind == "sqlite3":
            if not rows:
                return list(self.conn.execute(statement).fetchall())
            if len(rows) == 1:
                self.conn.execute(statement, rows[0])
            else:
                self.conn.executemany(statement, rows)
            return []
        if self.kind == "psycopg":
            with self.conn.cursor() as cur:
                if not rows:
                    cur.execute(statement)
                    return list(cur.fetchall()) if cur.description else []
                if len(rows) == 1:  # executemany would enter pipeline mode for one row
                    cur.execute(statement, rows[0])
                else:
                    cur.executemany(statement, rows)
            return []
        from sqlalchemy import text

        if not rows:
            result = self.conn.execute(text(statement))
            return [tuple(r) for r in result] if result.returns_rows else []
        self.conn.execute(text(statement), rows[0] if len(rows) == 1 else list(rows))
        return []

    async def arun(self, statement: str, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """:meth:`run` for an async connection."""
        if self.kind == "psycopg":
            async with self.conn.cursor() as cur:
                if not rows:
                    await cur.execute(statement)
                    return list(await cur.fetchall()) if cur.description else []
                if len(rows) == 1:
                    await cur.execute(statement, rows[0])
                else:
                    await cur.executemany(statement, rows)
            return []
        from sqlalchemy import text

        if not rows:
            result = await self.conn.execute(text(statement))
            return [tuple(r) for r in result] if result.returns_rows else []
        await self.conn.execute(text(statement), rows[0] if len(rows) == 1 else list(rows))
        return []


def _module(conn: object) -> str:
    return type(conn).__module__.split(".")[0]


def _sqlalchemy_dialect(conn: Any) -> Dialect:
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
    name = bind.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise OutboxError(f"an outbox lives in SQLite or PostgreSQL, not {name}")
    return "sqlite" if name == "sqlite" else "postgresql"


def sync_adapter(conn: object, *, writing: bool) -> Adapter:
    """The adapter of a sync connection; raises TypeError for anything else, and
    :class:`OutboxError` when ``writing`` into a connection in autocommit with no
    transaction open (the row would commit alone, apart from the caller's data)."""
    if isinstance(conn, sqlite3.Connection):
        if writing and conn.isolation_level is None and not conn.in_transaction:
            raise OutboxError(
                "this sqlite3 connection is in autocommit mode with no transaction open: "
                "the event would commit apart from your data; execute BEGIN first"
            )
        return Adapter(conn, "sqlite", "qmark", "sqlite3")
    module = _module(conn)
    if module == "psycopg":
        import psycopg

        if isinstance(conn, psycopg.Connection):
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if writing and conn.autocommit and idle:
                raise OutboxError(
                    "this psycopg connection is in autocommit mode with no transaction open: "
                    "the event would commit apart from your data; use `with conn.transaction():`"
                )
            return Adapter(conn, "postgresql", "format", "psycopg")
    if module == "sqlalchemy":
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session

        if isinstance(conn, Connection | Session):
            return Adapter(conn, _sqlalchemy_dialect(conn), "named", "sqlalchemy")
    raise TypeError(f"an outbox writes through a {_SYNC}; got {type(conn).__name__}")


def async_adapter(conn: object, *, writing: bool) -> Adapter:
    """The adapter of an async connection (see :func:`sync_adapter`)."""
    module = _module(conn)
    if module == "psycopg":
        import psycopg

        if isinstance(conn, psycopg.AsyncConnection):
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if writing and conn.autocommit and idle:
                raise OutboxError(
                    "this psycopg connection is in autocommit mode with no transaction open: "
                    "the event would commit apart from your data; use "
                    "`async with conn.transaction():`"
                )
            return Adapter(conn, "postgresql", "format", "psycopg")
    if module == "sqlalchemy":
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(conn, AsyncConnection):
            return Adapter(conn, _sqlalchemy_dialect(conn), "named", "sqlalchemy")
        if isinstance(conn, AsyncSession):
            return Adapter(conn, _sqlalchemy_dialect(conn.sync_session), "named", "sqlalchemy")
    raise TypeError(f"an async outbox writes through a {_ASYNC}; got {type(conn).__name__}")
