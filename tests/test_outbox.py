"""The outbox writes the emitter's exact envelope inside the caller's transaction, on a real
SQLite file and a real PostgreSQL server, through every connection kind it accepts; bad
input raises before anything is written and names the fix."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from codegen import ProductPriceChanged, catalog_v1
from damestoilet_contracts import FanOutError, OutboxError
from damestoilet_contracts.outbox import AsyncOutbox, Outbox, entity_key
from damestoilet_contracts.runtime import Envelope
from damestoilet_contracts.runtime._envelope import STREAM_VERSION
from tests.runtime_support import KeysChanged

SOURCE = "//tests/outbox"


def _event(i: int, entity: str = "") -> KeysChanged:
    return KeysChanged(keys=[entity or f"k:{i}"], derived=[f"k:{i}:derived"])


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "service.db")
    Outbox(source=SOURCE).create_table(conn)
    conn.commit()
    yield conn
    conn.close()


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(postgres_url)
    Outbox(source=SOURCE).create_table(conn)
    conn.commit()
    yield conn
    conn.close()


def _payloads(conn: Any) -> list[bytes]:
    rows = conn.execute("SELECT payload FROM damestoilet_outbox ORDER BY seq").fetchall()
    if isinstance(conn, psycopg.Connection):
        conn.rollback()
    return [bytes(r[0]) for r in rows]


def test_the_stored_payload_is_the_emitters_stream_field_byte_for_byte(
    sqlite_db: sqlite3.Connection,
) -> None:
    box = Outbox(source=SOURCE)
    event = _event(1)
    envelope = box.envelope(event)
    [event_id] = box.add_envelopes(sqlite_db, [envelope])
    sqlite_db.commit()
    assert event_id == envelope.id
    [payload] = _payloads(sqlite_db)
    assert payload == envelope.to_fields(version=STREAM_VERSION)["e"]
    decoded = Envelope.from_bytes(payload)
    assert decoded == envelope
    assert decoded.plan == event.flush_plan()


def test_debezium_columns_hold_id_type_and_entity(sqlite_db: sqlite3.Connection) -> None:
    box = Outbox(source=SOURCE)
    event_id = box.add(sqlite_db, _event(7))
    sqlite_db.commit()
    row = sqlite_db.execute(
        "SELECT id, aggregatetype, aggregateid, type FROM damestoilet_outbox"
    ).fetchone()
    assert row == (event_id, "test.v1.KeysChanged", "k:7", "test.v1.KeysChanged")


def test_entity_key_is_the_first_key_of_the_plan_or_the_type() -> None:
    box = Outbox(source=SOURCE)
    assert entity_key(box.envelope(_event(1))) == "k:1"
    assert entity_key(box.envelope(KeysChanged())) == "test.v1.KeysChanged"


def test_a_rolled_back_transaction_leaves_no_event_in_sqlite(
    sqlite_db: sqlite3.Connection,
) -> None:
    box = Outbox(source=SOURCE)
    box.add(sqlite_db, _event(1))
    sqlite_db.rollback()
    box.add(sqlite_db, _event(2))
    sqlite_db.commit()
    assert [Envelope.from_bytes(p).plan.stages[0][0].key for p in _payloads(sqlite_db)] == [  # type: ignore[union-attr]
        "k:2"
    ]


def test_a_rolled_back_transaction_leaves_no_event_in_postgres(
    pg_db: psycopg.Connection[Any],
) -> None:
    box = Outbox(source=SOURCE)
    with pg_db.transaction():
        pg_db.execute("CREATE TABLE product (id text PRIMARY KEY, cents int)")
    try:
        with pg_db.transaction():
            pg_db.execute("INSERT INTO product VALUES ('p1', 5)")
            box.add(pg_db, _event(1))
            raise RuntimeError("the request failed after the write")
    except RuntimeError:
        pass
    assert _payloads(pg_db) == []
    assert pg_db.execute("SELECT count(*) FROM product").fetchone() == (0,)


def test_add_never_commits_the_callers_transaction(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path)
    Outbox(source=SOURCE).create_table(writer)
    writer.commit()
    Outbox(source=SOURCE).add(writer, _event(1))
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM damestoilet_outbox").fetchone() == (0,)
    writer.commit()
    assert reader.execute("SELECT count(*) FROM damestoilet_outbox").fetchone() == (1,)


def test_an_event_that_fails_to_plan_writes_nothing(
    sqlite_db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Outbox(source=SOURCE)
    good = ProductPriceChanged(product_id="p1", store_ids=(), category_id="c1", price_cents=5)
    stores = tuple(f"s{i}" for i in range(20))
    bad = ProductPriceChanged(product_id="p2", store_ids=stores, category_id="c1", price_cents=5)
    monkeypatch.setattr(catalog_v1, "FANOUT_CAP", 10)  # a service lowered its cap
    with pytest.raises(FanOutError):
        box.add_many(sqlite_db, [good, bad])
    sqlite_db.commit()
    assert _payloads(sqlite_db) == []


def test_a_missing_table_names_the_command_that_creates_it(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "empty.db")
    box = Outbox(source=SOURCE)
    with pytest.raises(OutboxError, match="damestoilet outbox init --db URL"):
        box.add(conn, _event(1))
    with pytest.raises(OutboxError, match="does not exist"):
        box.check_table(conn)


def test_a_table_of_another_shape_is_refused_with_the_missing_columns(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE damestoilet_outbox (id TEXT, payload BLOB)")
    box = Outbox(source=SOURCE)
    with pytest.raises(OutboxError, match=r"lacks the column.*aggregatetype, aggregateid"):
        box.create_table(conn)
    with pytest.raises(OutboxError, match="not an outbox table"):
        box.add(conn, _event(1))


def test_a_misshapen_postgres_table_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE damestoilet_outbox (id uuid)")
        conn.commit()
        with pytest.raises(OutboxError, match="lacks the column"):
            Outbox(source=SOURCE).check_table(conn)
        with pytest.raises(OutboxError, match="not an outbox table"):
            Outbox(source=SOURCE).add(conn, _event(1))


def test_create_table_is_idempotent_on_both_databases(
    sqlite_db: sqlite3.Connection, pg_db: psycopg.Connection[Any]
) -> None:
    for conn in (sqlite_db, pg_db):
        Outbox(source=SOURCE).add(conn, _event(1))
        conn.commit()
        Outbox(source=SOURCE).create_table(conn)
        conn.commit()
        assert len(_payloads(conn)) == 1


def test_an_autocommit_connection_outside_a_transaction_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    conn = sqlite3.connect(tmp_path / "auto.db", isolation_level=None)
    box = Outbox(source=SOURCE)
    box.create_table(conn)
    with pytest.raises(OutboxError, match="autocommit"):
        box.add(conn, _event(1))
    conn.execute("BEGIN")
    box.add(conn, _event(2))
    conn.execute("COMMIT")
    assert len(_payloads(conn)) == 1
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        box.create_table(pg)
        with pytest.raises(OutboxError, match="autocommit"):
            box.add(pg, _event(1))
        with pg.transaction():
            box.add(pg, _event(2))
        assert len(_payloads(pg)) == 1


def test_an_unknown_connection_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"sqlite3\.Connection, psycopg\.Connection"):
        Outbox(source=SOURCE).add(object(), _event(1))
    with pytest.raises(ValueError, match="letters, digits"):
        Outbox(source=SOURCE, table="x; DROP TABLE y")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sqlalchemy_connection_and_session_write_in_their_transaction(
    database: str, tmp_path: Path, postgres_url: str
) -> None:
    url = (
        f"sqlite:///{tmp_path}/sa.db"
        if database == "sqlite"
        else postgres_url.replace("postgresql://", "postgresql+psycopg://")
    )
    engine = sqlalchemy.create_engine(url)
    box = Outbox(source=SOURCE)
    with engine.begin() as conn:
        box.create_table(conn)
    with engine.connect() as conn:
        box.add(conn, _event(1))
        conn.rollback()
        box.add_many(conn, [_event(2), _event(3)])
        conn.commit()
    with Session(engine) as session:
        box.add(session, _event(4))
        session.rollback()
        with session.begin():
            box.add(session, _event(5))
    with engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text("SELECT aggregateid FROM damestoilet_outbox ORDER BY seq")
        )
        assert [r[0] for r in rows] == ["k:2", "k:3", "k:5"]
    engine.dispose()


def test_async_twins_write_through_psycopg_and_sqlalchemy(postgres_url: str) -> None:
    box = AsyncOutbox(source=SOURCE)

    async def main() -> list[str]:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            await box.create_table(conn)
            await conn.commit()
            await box.add(conn, _event(1))
            await conn.rollback()
            await box.add_many(conn, [_event(2), _event(3)])
            await conn.commit()
        engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        async with engine.connect() as sa_conn:
            await box.add(sa_conn, _event(4))
            await sa_conn.commit()
        async with AsyncSession(engine) as session:
            await box.add(session, _event(5))
            await session.rollback()
            await box.add(session, _event(6), entity="product:6")
            await session.commit()
        await engine.dispose()
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cur = await conn.execute("SELECT aggregateid FROM damestoilet_outbox ORDER BY seq")
            return [r[0] for r in await cur.fetchall()]

    assert asyncio.run(main()) == ["k:2", "k:3", "k:4", "product:6"]
    with pytest.raises(TypeError, match="AsyncConnection"):
        asyncio.run(box.add(sqlite3.connect(":memory:"), _event(1)))
