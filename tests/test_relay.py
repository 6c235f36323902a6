"""The relay moves outbox rows to a real Redis stream in commit order and deletes them; on
PostgreSQL several relays share the rows without breaking per-entity order and wake on
NOTIFY; on SQLite one relay holds the lease; a bus that is down keeps the rows."""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts import DeliveryError
from damestoilet_contracts.cli import main
from damestoilet_contracts.outbox import (
    Backoff,
    Outbox,
    PostgresStore,
    Relay,
    SqliteStore,
    open_publisher,
    open_store,
    serve_relay_metrics,
)
from damestoilet_contracts.runtime import Envelope
from tests.runtime_support import KeysChanged
from tests.servers import free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

STREAM = "relay-events"
SOURCE = "//tests/relay"


def _events(n: int, entities: int = 0) -> list[KeysChanged]:
    return [KeysChanged(keys=[f"e:{i % entities}" if entities else f"k:{i}"]) for i in range(n)]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "service.db"
    with sqlite3.connect(path) as conn:
        Outbox(source=SOURCE).create_table(conn)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    with psycopg.connect(postgres_url) as conn:
        Outbox(source=SOURCE).create_table(conn)
    return postgres_url


def _write(db_url: str, events: list[KeysChanged], per_tx: int = 50) -> list[str]:
    box = Outbox(source=SOURCE)
    ids: list[str] = []
    conn: Any = (
        sqlite3.connect(db_url.removeprefix("sqlite:///"))
        if db_url.startswith("sqlite")
        else psycopg.connect(db_url)
    )
    with conn:
        for start in range(0, len(events), per_tx):
            ids += box.add_many(conn, events[start : start + per_tx])
            conn.commit()
    conn.close()
    return ids


def _wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _stream_ids(client: redis.Redis) -> list[str]:
    return [Envelope.from_fields(f).id for _, f in client.xrange(STREAM)]


@pytest.fixture
def relay_of(redis_url: str) -> Iterator[Any]:
    made: list[Relay] = []

    def make(db_url: str, **kwargs: Any) -> Relay:
        store = open_store(db_url, lease_s=kwargs.pop("lease_s", 10.0))
        relay = Relay(store, open_publisher(redis_url, stream=STREAM, maxlen=None), **kwargs)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.store.close()
        relay.publisher.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_relay_publishes_every_row_in_commit_order_and_empties_the_table(
    db: str, sqlite_url: str, pg_url: str, redis_client: redis.Redis, relay_of: Any
) -> None:
    url = sqlite_url if db == "sqlite" else pg_url
    ids = _write(url, _events(1234))
    relay = relay_of(url, batch=100)
    assert relay.drain() == 1234
    assert _stream_ids(redis_client) == ids
    assert relay.store.backlog() == (0, None)
    assert relay.stats.batches == 13


def test_the_relayed_entry_is_the_emitters_entry(
    sqlite_url: str, redis_client: redis.Redis, relay_of: Any
) -> None:
    event = KeysChanged(keys=["a"], derived=["b"])
    box = Outbox(source=SOURCE)
    envelope = box.envelope(event)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        box.add_envelopes(conn, [envelope])
    relay_of(sqlite_url).drain()
    [(_, fields)] = redis_client.xrange(STREAM)
    assert fields == {b"e": envelope.to_fields(version=2)["e"]}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_bus_that_is_down_keeps_the_rows_and_the_relay_retries(
    db: str, sqlite_url: str, pg_url: str
) -> None:
    url = sqlite_url if db == "sqlite" else pg_url
    _write(url, _events(10))
    dead = open_publisher(f"redis://127.0.0.1:{free_port()}/0", stream=STREAM)
    relay = Relay(open_store(url), dead, backoff=Backoff(base_s=0.01, cap_s=0.02))
    with pytest.raises(DeliveryError, match="cannot publish"):
        relay.run_once()
    assert relay.store.backlog()[0] == 10
    thread = threading.Thread(target=relay.run)
    thread.start()
    deadline = time.monotonic() + 10
    while relay.stats.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    relay.stop()
    thread.join(10)
    assert relay.stats.failures >= 3
    assert relay.stats.published == 0
    assert relay.store.backlog()[0] == 10
    relay.store.close()
    dead.close()


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    assert 0.05 <= backoff.compute(1) <= 0.1
    assert 0.2 <= backoff.compute(3) <= 0.4
    assert all(0.5 <= backoff.compute(n) <= 1.0 for n in (5, 10, 100))


def test_postgres_relay_wakes_on_notify_at_commit(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    _write(pg_url, _events(1))
    started = time.monotonic()
    store.wait(5.0)  # the insert's NOTIFY is queued: returns at once
    assert time.monotonic() - started < 1.0
    writer = threading.Timer(0.3, _write, (pg_url, _events(1)))
    writer.start()
    started = time.monotonic()
    store.wait(10.0)
    waited = time.monotonic() - started
    writer.join()
    assert 0.2 < waited < 5.0
    store.close()


def test_two_postgres_relays_never_split_an_entity_out_of_order(pg_url: str) -> None:
    # rows 0..9 alternate entities a, b; relay A claims the first four (a b a b)
    _write(pg_url, [KeysChanged(keys=["a" if i % 2 == 0 else "b"]) for i in range(10)])
    _write(pg_url, [KeysChanged(keys=["c"])])
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    claimed_first = first.claim(4)
    assert len(claimed_first) == 4
    claimed_second = second.claim(100)
    # every other a and b row has an older row in the first relay's hands: only c is free
    keys = [Envelope.from_bytes(p).plan.stages[0][0].key for _, p in claimed_second]  # type: ignore[union-attr]
    assert keys == ["c"]
    first.settle([seq for seq, _ in claimed_first])
    second.settle([seq for seq, _ in claimed_second])
    rest = second.claim(100)
    assert len(rest) == 6
    second.settle([seq for seq, _ in rest])
    assert second.backlog() == (0, None)
    first.close()
    second.close()


def test_sqlite_relays_take_turns_by_lease(sqlite_url: str) -> None:
    _write(sqlite_url, _events(5))
    path = sqlite_url.removeprefix("sqlite:///")
    first = SqliteStore(path, lease_s=0.5, holder="first")
    second = SqliteStore(path, lease_s=0.5, holder="second")
    assert len(first.claim(10)) == 5
    assert second.claim(10) == []  # the first holds the lease
    time.sleep(0.6)  # the first died: its lease runs out
    assert len(second.claim(10)) == 5
    assert first.claim(10) == []
    second.release()
    assert len(first.claim(10)) == 5
    first.close()
    second.close()


def test_a_sqlite_lease_taken_after_waiting_for_a_writer_runs_from_when_it_was_taken(
    sqlite_url: str,
) -> None:
    _write(sqlite_url, _events(5))
    path = sqlite_url.removeprefix("sqlite:///")
    first = SqliteStore(path, lease_s=0.5, holder="first")
    second = SqliteStore(path, lease_s=0.5, holder="second")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    claimed: list[list[tuple[int, bytes]]] = []
    waiting = threading.Thread(target=lambda: claimed.append(first.claim(10)))
    waiting.start()
    time.sleep(0.8)  # a writer holds the database longer than a lease
    writer.execute("ROLLBACK")
    waiting.join(10)
    assert len(claimed[0]) == 5
    assert second.claim(10) == []  # the first's lease is not over as soon as it is written
    for conn in (first, second, writer):
        conn.close()


def test_relay_command_refuses_a_missing_table_and_bad_urls(tmp_path: Path, redis_url: str) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = runner.invoke(main, ["relay", "--db", f"sqlite:///{empty}", "--bus", redis_url])
    assert result.exit_code == 1
    assert "damestoilet outbox init" in result.output
    result = runner.invoke(main, ["relay", "--db", "mysql://x/y", "--bus", redis_url])
    assert result.exit_code == 2
    assert "sqlite:///path.db or postgresql://" in result.output
    result = runner.invoke(main, ["relay", "--db", f"sqlite:///{empty}", "--bus", "amqp://x"])
    assert result.exit_code == 2
    assert "nats://" in result.output  # the schemes it does publish to
    missing = tmp_path / "missing.db"
    result = runner.invoke(main, ["relay", "--db", f"sqlite:///{missing}", "--bus", redis_url])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_outbox_init_creates_then_changes_nothing_and_refuses_a_misshapen_table(
    tmp_path: Path, postgres_url: str
) -> None:
    runner = CliRunner()
    db = tmp_path / "new.db"
    for _ in range(2):
        result = runner.invoke(main, ["outbox", "init", "--db", f"sqlite:///{db}"])
        assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        Outbox(source=SOURCE).check_table(conn)
    result = runner.invoke(main, ["outbox", "init", "--db", postgres_url, "--table", "shop_outbox"])
    assert result.exit_code == 0, result.output
    with psycopg.connect(postgres_url) as conn:
        Outbox(source=SOURCE, table="shop_outbox").check_table(conn)
        conn.execute("CREATE TABLE odd (id int)")
    result = runner.invoke(main, ["outbox", "init", "--db", postgres_url, "--table", "odd"])
    assert result.exit_code == 1
    assert "lacks the column" in result.output
    result = runner.invoke(main, ["outbox", "init", "--db", "sqlite://rel.db"])
    assert result.exit_code == 2
    result = runner.invoke(main, ["outbox", "init", "--db", f"sqlite:///{db}", "--table", "a-b"])
    assert result.exit_code == 2


@pytest.mark.parametrize("command", [["relay"], ["outbox"], ["outbox", "init"]])
def test_every_outbox_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "damestoilet " in result.output.split("Examples:")[1]


def test_a_postgres_relay_reconnects_after_its_connections_are_cut(
    pg_url: str, redis_client: redis.Redis, relay_of: Any
) -> None:
    relay = relay_of(pg_url, batch=50, poll_s=0.02, backoff=Backoff(base_s=0.01, cap_s=0.05))
    thread = threading.Thread(target=relay.run)
    thread.start()
    try:
        ids = _write(pg_url, _events(100))
        _wait_until(lambda: redis_client.xlen(STREAM) >= 100)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ids += _write(pg_url, _events(100))
        _wait_until(lambda: redis_client.xlen(STREAM) >= 200)
    finally:
        relay.stop()
        thread.join(10)
    assert set(_stream_ids(redis_client)) == set(ids)  # a cut claim may be re-sent: same ids
    assert relay.stats.failures >= 1
    assert relay.store.backlog() == (0, None)


def test_relay_metrics_are_served_for_prometheus(
    sqlite_url: str, redis_client: redis.Redis, relay_of: Any
) -> None:
    _write(sqlite_url, _events(30))
    relay = relay_of(sqlite_url, batch=10)
    relay.drain()
    relay.refresh()
    port = free_port()
    stop = serve_relay_metrics(relay.stats, port, "127.0.0.1")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        stop()
    assert "damestoilet_relay_published_total 30.0" in text
    assert "damestoilet_relay_batches_total 3.0" in text
    assert "damestoilet_relay_waiting 0.0" in text


@pytest.mark.nats
def test_relay_publishes_through_the_runtimes_publisher_onto_jetstream(
    sqlite_url: str, redis_url: str, redis_client: redis.Redis, nats_url: str, nats_subject: str
) -> None:
    """On a bus other than Redis the relay goes through the runtime's publisher: the
    coordinator on that bus reads what the outbox stored and purges it."""
    from damestoilet_contracts.runtime import Coordinator, CoordinatorConfig

    redis_client.mset({"k:0": 1, "k:1": 1, "k:2": 1})
    ids = _write(sqlite_url, _events(3))
    store = open_store(sqlite_url)
    relay = Relay(store, open_publisher(nats_url, stream=nats_subject))
    try:
        assert relay.drain() == 3
    finally:
        store.close()
        relay.publisher.close()
    config = CoordinatorConfig(stream=nats_subject, consumer="c1", block_ms=50)
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.run(stop_when_idle=True)
    assert worker.stats.events == 3
    assert redis_client.exists("k:0", "k:1", "k:2") == 0
    assert len(ids) == 3


def test_relay_command_says_when_the_bus_cannot_be_reached(sqlite_url: str) -> None:
    port = free_port()
    result = CliRunner().invoke(
        main, ["relay", "--db", sqlite_url, "--bus", f"nats://u:secret@127.0.0.1:{port}"]
    )
    assert result.exit_code == 1, result.output
    assert "relay cannot start" in result.output
    assert "secret" not in result.output
