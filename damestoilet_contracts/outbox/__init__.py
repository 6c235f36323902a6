"""The transactional outbox: events written in the same database transaction as the data
(:class:`Outbox`, :class:`AsyncOutbox`), and the relay that publishes them afterwards
(:class:`Relay`, ``damestoilet relay``). SQLite and PostgreSQL; see docs/outbox.md."""

from __future__ import annotations

from damestoilet_contracts.outbox._metrics import serve_relay_metrics
from damestoilet_contracts.outbox._outbox import AsyncOutbox, Outbox
from damestoilet_contracts.outbox._publish import OutboxPublisher, open_publisher
from damestoilet_contracts.outbox._relay import Backoff, Relay, RelayStats
from damestoilet_contracts.outbox._store import (
    PostgresStore,
    RelayStore,
    SqliteStore,
    open_store,
)
from damestoilet_contracts.outbox._table import COLUMNS, DEFAULT_TABLE, entity_key

__all__ = [
    "COLUMNS",
    "DEFAULT_TABLE",
    "AsyncOutbox",
    "Backoff",
    "Outbox",
    "OutboxPublisher",
    "PostgresStore",
    "Relay",
    "RelayStats",
    "RelayStore",
    "SqliteStore",
    "entity_key",
    "open_publisher",
    "open_store",
    "serve_relay_metrics",
]
