"""Kill tests of the outbox, with real processes: a service killed with SIGKILL right after
its commit, a relay killed with SIGKILL in the middle of its batch again and again, and two
relays at once on PostgreSQL; on a real SQLite file and a real PostgreSQL server, with a real
Redis and a real ``damestoilet coordinator`` purging the keys."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from damestoilet_contracts.outbox import Outbox
from damestoilet_contracts.runtime import Envelope
from tests.runtime_support import KeysChanged
from tests.servers import free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

STREAM = "outbox-kill-events"
GROUP = "damestoilet-coordinator"
SOURCE = "//tests/outbox-kill"
CLI = [sys.executable, "-c", "from damestoilet_contracts.cli import main; main()"]


class Proc:
    """A ``damestoilet`` subprocess with its JSON log on disk."""

    def __init__(self, log: Path, *args: str, ready: str = '"msg": "started"') -> None:
        self.log = log
        self.stderr = log.open("wb")
        self.popen = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=self.stderr)
        _wait(lambda: ready in self.text() or self.popen.poll() is not None, 30)
        assert self.popen.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.text().splitlines() if x.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.popen.send_signal(sig)
        code = self.popen.wait(timeout)
        self.stderr.close()
        return code


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
        proc.stderr.close()


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An outbox database with its table: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "service.db"
        with sqlite3.connect(path) as conn:
            Outbox(source=SOURCE).create_table(conn)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    with psycopg.connect(url) as pg:
        Outbox(source=SOURCE).create_table(pg)
    return url


def _connect(db_url: str) -> Any:
    if db_url.startswith("sqlite:///"):
        return sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30)
    return psycopg.connect(db_url)


def _waiting(db_url: str) -> int:
    with _connect(db_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM damestoilet_outbox").fetchone()
    return int(count)


def _coordinator(redis_url: str, log: Path) -> Proc:
    return Proc(
        log, "coordinator", "--redis", redis_url, "--stream", STREAM, "--block-ms", "20",
        "--batch", "50", "--claim-idle-ms", "100000",
    )  # fmt: skip


def _relay(db_url: str, redis_url: str, log: Path, *extra: str) -> Proc:
    return Proc(
        log, "relay", "--db", db_url, "--bus", redis_url, "--stream", STREAM,
        "--poll", "0.02", "--lease", "3", "--report", "0.5", *extra,
    )  # fmt: skip


def _caught_up(client: redis.Redis) -> bool:
    if not client.exists(STREAM):
        return True
    groups = [g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP.encode()]
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


def _stream_ids(client: redis.Redis) -> list[str]:
    return [Envelope.from_fields(f).id for _, f in client.xrange(STREAM)]


def _run_service(db_url: str, redis_url: str, count: int, mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "tests.outbox_service", db_url, redis_url, STREAM, str(count), mode],
        capture_output=True,
        timeout=120,
    )
    return done.returncode


def test_a_service_killed_after_its_commit_loses_nothing_with_the_outbox(
    db_url: str, redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    redis_client.mset({f"product:{i}": "cached" for i in range(20)})
    # no relay runs while the service lives: the outbox is the only way the event can go
    assert _run_service(db_url, redis_url, 20, "outbox") == -signal.SIGKILL
    assert not redis_client.exists(STREAM)
    with _connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM product").fetchone() == (20,)
    assert _waiting(db_url) == 20
    procs.append(_coordinator(redis_url, tmp_path / "coordinator.log"))
    port = free_port()
    procs.append(_relay(db_url, redis_url, tmp_path / "relay.log", "--metrics-port", str(port)))
    _wait(lambda: redis_client.exists(*(f"product:{i}" for i in range(20))) == 0, 30)
    assert _waiting(db_url) == 0
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert b"damestoilet_relay_published_total 20.0" in metrics


def test_emit_after_commit_leaves_the_last_key_stale_when_the_service_dies(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, procs: list[Proc]
) -> None:
    """The same service without the outbox: what the outbox fixes."""
    path = tmp_path / "plain.db"
    redis_client.mset({f"product:{i}": "cached" for i in range(20)})
    assert _run_service(f"sqlite:///{path}", redis_url, 20, "plain") == -signal.SIGKILL
    procs.append(_coordinator(redis_url, tmp_path / "coordinator.log"))
    _wait(lambda: redis_client.exists(*(f"product:{i}" for i in range(19))) == 0, 30)
    time.sleep(0.5)
    assert redis_client.get("product:19") == b"cached"  # stale until its TTL, or forever


class _DeleteBlocker:
    """Lets a relay take its lease, claim and publish but not delete, from before it starts:
    on SQLite a trigger that fails every DELETE (the relay keeps retrying its delete, with
    backoff, re-sending its batch), on PostgreSQL ``LOCK TABLE ... IN SHARE MODE``
    (compatible with FOR UPDATE, not with DELETE). A SQLite write lock would block the
    relay's lease too, so it could only be taken once the relay had started, racing it: a
    relay that got there first deleted batches, or drained the table, before it."""

    def __init__(self, db_url: str) -> None:
        self.sqlite = db_url.startswith("sqlite:///")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(
                db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30
            )
        else:
            self.conn = psycopg.connect(db_url, autocommit=True)

    def hold(self) -> None:
        if self.sqlite:
            self.conn.execute(
                "CREATE TRIGGER test_blocks_deletes BEFORE DELETE ON damestoilet_outbox "
                "BEGIN SELECT RAISE(ABORT, 'deletes blocked by the test'); END"
            )
        else:
            self.conn.execute("BEGIN")
            self.conn.execute("LOCK TABLE damestoilet_outbox IN SHARE MODE")

    def let_go(self) -> None:
        if self.sqlite:
            self.conn.execute("DROP TRIGGER test_blocks_deletes")
        else:
            self.conn.execute("ROLLBACK")


def test_a_relay_killed_mid_batch_again_and_again_loses_nothing_and_dedup_absorbs_resends(
    db_url: str, redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    committed = [KeysChanged(keys=[f"k:{i}"], derived=[f"k:{i}:d"]) for i in range(1500)]
    rolled_back = [KeysChanged(keys=[f"rb:{i}"]) for i in range(100)]
    redis_client.mset({k: "cached" for e in committed + rolled_back for k in [*e.keys, *e.derived]})
    box = Outbox(source=SOURCE)
    committed_ids: list[str] = []
    rolled_back_ids: list[str] = []
    with _connect(db_url) as conn:
        for start in range(0, 1500, 15):
            committed_ids += box.add_many(conn, committed[start : start + 15])
            conn.commit()
            if start % 150 == 0:
                rolled_back_ids += box.add_many(conn, rolled_back[start // 15 : start // 15 + 10])
                conn.rollback()
    coordinator = _coordinator(redis_url, tmp_path / "coordinator.log")
    procs.append(coordinator)

    blocker = _DeleteBlocker(db_url)
    kills = 4
    for round_no in range(kills):
        start_len = redis_client.xlen(STREAM)
        blocker.hold()
        relay = _relay(db_url, redis_url, tmp_path / f"relay{round_no}.log", "--batch", "100")
        procs.append(relay)

        def mid_batch(start_len: int = start_len) -> bool:
            # a whole batch went out since the relay started (its delete cannot succeed)
            return redis_client.xlen(STREAM) - start_len >= 100

        _wait(mid_batch, 30)
        assert relay.stop(signal.SIGKILL) == -signal.SIGKILL
        blocker.let_go()
        # the coordinator marks this round's events done before their re-sends arrive
        _wait(lambda: _caught_up(redis_client), 60)
    assert _waiting(db_url) > 0, "the relays finished before they were killed: nothing tested"

    last = _relay(db_url, redis_url, tmp_path / "last.log", "--batch", "100")
    procs.append(last)
    _wait(lambda: _waiting(db_url) == 0, 60)
    _wait(lambda: _caught_up(redis_client), 60)
    assert last.stop() == 0
    assert coordinator.stop() == 0

    every_key = [k for e in committed for k in [*e.keys, *e.derived]]
    assert sum(redis_client.exists(*every_key[i : i + 500]) for i in range(0, 3000, 500)) == 0
    assert redis_client.exists(*(k for e in rolled_back for k in e.keys)) == 100
    ids = _stream_ids(redis_client)
    assert set(ids) == set(committed_ids)
    assert not set(ids) & set(rolled_back_ids)
    assert len(ids) >= len(committed_ids) + kills * 100  # each kill re-sent its batch
    outcomes = [r.get("outcome") for r in coordinator.records()]
    assert outcomes.count("purged") == len(committed_ids)
    assert outcomes.count("duplicate") == len(ids) - len(committed_ids)


def test_two_postgres_relays_publish_every_row_once_in_order_per_entity(
    postgres_url: str, redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    with psycopg.connect(postgres_url) as pg:
        Outbox(source=SOURCE).create_table(pg)
    box = Outbox(source=SOURCE)
    entities = 300
    written: list[tuple[str, str]] = []  # (entity, id) in commit order

    def write(count: int, pace_s: float) -> None:
        with psycopg.connect(postgres_url) as conn:
            for start in range(0, count, 10):
                events = [KeysChanged(keys=[f"e:{(start + i) % entities}"]) for i in range(10)]
                ids = box.add_many(conn, events)
                conn.commit()
                written.extend((e.keys[0], i) for e, i in zip(events, ids, strict=True))
                time.sleep(pace_s)

    write(2000, 0)
    redis_client.mset({f"e:{i}": "cached" for i in range(entities)})
    coordinator = _coordinator(redis_url, tmp_path / "coordinator.log")
    procs.append(coordinator)
    relays = [
        _relay(postgres_url, redis_url, tmp_path / f"relay{n}.log", "--batch", "50")
        for n in range(2)
    ]
    procs.extend(relays)
    writer = threading.Thread(target=write, args=(2000, 0.005))
    writer.start()
    writer.join(120)
    _wait(lambda: _waiting(postgres_url) == 0, 60)
    _wait(lambda: _caught_up(redis_client), 60)
    assert [relay.stop() for relay in relays] == [0, 0]
    assert coordinator.stop() == 0

    published = [
        next(r["published"] for r in relay.records() if r.get("msg") == "stopped")
        for relay in relays
    ]
    assert all(n > 0 for n in published), f"one relay did all the work: {published}"
    ids = _stream_ids(redis_client)
    assert sorted(ids) == sorted(i for _, i in written)  # every row, none twice
    assert sum(published) == len(ids)
    position = {event_id: n for n, event_id in enumerate(ids)}
    for entity in {e for e, _ in written}:
        order = [position[i] for e, i in written if e == entity]
        assert order == sorted(order), f"{entity} was published out of order"
    assert redis_client.exists(*(f"e:{i}" for i in range(entities))) == 0
