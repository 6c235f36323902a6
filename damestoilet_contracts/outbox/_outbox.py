"""The writing side: :class:`Outbox` and :class:`AsyncOutbox` put events into the outbox table
inside the caller's open transaction, never committing it. They share one base that plans and
encodes every event (no I/O) before a single row is written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from damestoilet_contracts.outbox._adapters import Adapter, async_adapter, sync_adapter
from damestoilet_contracts.outbox._table import (
    DEFAULT_TABLE,
    Row,
    check_columns,
    check_name,
    columns_statement,
    create_statements,
    insert_statement,
    named_params,
    row_of,
    row_params,
    translate,
)
from damestoilet_contracts.runtime import ContractEvent, Envelope


class _OutboxBase:
    """What both outboxes share: the table, the source, and turning events into rows."""

    def __init__(self, *, source: str, table: str = DEFAULT_TABLE) -> None:
        if not source:
            raise ValueError("an outbox needs a source naming the emitting service")
        self.source = source
        self.table = check_name(table)

    def envelope(self, event: ContractEvent) -> Envelope:
        """The envelope ``event`` is stored in; raises :class:`PlanError` if it cannot be
        planned."""
        return Envelope.from_event(event, source=self.source)

    def _rows(self, envelopes: Sequence[Envelope], entity: str | None) -> list[Row]:
        return [row_of(env, entity) for env in envelopes]

    def _insert(self, adapter: Adapter, rows: Sequence[Row]) -> tuple[str, list[Any]]:
        statement = insert_statement(adapter.dialect, self.table, adapter.style)
        if adapter.style == "named":
            return statement, [named_params(r, adapter.dialect) for r in rows]
        return statement, [row_params(r, adapter.dialect) for r in rows]

    def _translated(self, exc: Exception) -> Exception:
        return translate(exc, self.table) or exc


class Outbox(_OutboxBase):
    """Writes events into the outbox table through a sync connection (``sqlite3``, psycopg 3,
    SQLAlchemy ``Connection`` or ``Session``), inside the caller's transaction."""

    def create_table(self, conn: object) -> None:
        """Create the table (and on PostgreSQL its NOTIFY trigger; on SQLite its lease table)
        if missing, then check its shape. Idempotent; does not commit: commit afterwards.

        Raises :class:`OutboxError` when a table of that name exists with another shape.
        """
        adapter = sync_adapter(conn, writing=False)
        tables, companions = create_statements(adapter.dialect, self.table)
        for statement in tables:
            adapter.run(statement, [])
        self.check_table(conn)
        for statement in companions:
            adapter.run(statement, [])

    def check_table(self, conn: object) -> None:
        """Raise :class:`OutboxError` naming the fix when the table is missing or misshapen."""
        adapter = sync_adapter(conn, writing=False)
        found = adapter.run(columns_statement(adapter.dialect, self.table), [])
        check_columns(self.table, found, f"this {adapter.dialect} database")

    def add(self, conn: object, event: ContractEvent, *, entity: str | None = None) -> str:
        """Write ``event`` into the outbox in ``conn``'s open transaction; returns its envelope
        id. ``entity`` overrides the entity key (default: the plan's first key).

        Raises :class:`PlanError` before writing when the event cannot be planned,
        :class:`OutboxError` when the table is missing or misshapen or ``conn`` is in
        autocommit with no transaction open, TypeError for an unsupported connection.
        """
        return self.add_envelopes(conn, [self.envelope(event)], entity=entity)[0]

    def add_many(self, conn: object, events: Iterable[ContractEvent]) -> list[str]:
        """Write ``events`` in order in ``conn``'s open transaction; returns their ids. Every
        event is planned before anything is written, so a :class:`PlanError` writes none."""
        return self.add_envelopes(conn, [self.envelope(e) for e in events])

    def add_envelopes(
        self, conn: object, envelopes: Sequence[Envelope], *, entity: str | None = None
    ) -> list[str]:
        """Write ready envelopes in order in ``conn``'s open transaction; returns their ids."""
        adapter = sync_adapter(conn, writing=True)
        rows = self._rows(envelopes, entity)
        if rows:
            statement, params = self._insert(adapter, rows)
            try:
                adapter.run(statement, params)
            except Exception as exc:
                raise self._translated(exc) from exc
        return [r.id for r in rows]


class AsyncOutbox(_OutboxBase):
    """Like :class:`Outbox`, through an async connection (psycopg ``AsyncConnection``,
    SQLAlchemy ``AsyncConnection`` or ``AsyncSession``)."""

    async def create_table(self, conn: object) -> None:
        """See :meth:`Outbox.create_table`."""
        adapter = async_adapter(conn, writing=False)
        tables, companions = create_statements(adapter.dialect, self.table)
        for statement in tables:
            await adapter.arun(statement, [])
        await self.check_table(conn)
        for statement in companions:
            await adapter.arun(statement, [])

    async def check_table(self, conn: object) -> None:
        """See :meth:`Outbox.check_table`."""
        adapter = async_adapter(conn, writing=False)
        found = await adapter.arun(columns_statement(adapter.dialect, self.table), [])
        check_columns(self.table, found, f"this {adapter.dialect} database")

    async def add(self, conn: object, event: ContractEvent, *, entity: str | None = None) -> str:
        """See :meth:`Outbox.add`."""
        return (await self.add_envelopes(conn, [self.envelope(event)], entity=entity))[0]

    async def add_many(self, conn: object, events: Iterable[ContractEvent]) -> list[str]:
        """See :meth:`Outbox.add_many`."""
        return await self.add_envelopes(conn, [self.envelope(e) for e in events])

    async def add_envelopes(
        self, conn: object, envelopes: Sequence[Envelope], *, entity: str | None = None
    ) -> list[str]:
        """See :meth:`Outbox.add_envelopes`."""
        adapter = async_adapter(conn, writing=True)
        rows = self._rows(envelopes, entity)
        if rows:
            statement, params = self._insert(adapter, rows)
            try:
                await adapter.arun(statement, params)
            except Exception as exc:
                raise self._translated(exc) from exc
        return [r.id for r in rows]
