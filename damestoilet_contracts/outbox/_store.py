"""The reading side of the outbox, what a relay does to the table: claim a batch in commit
order, delete what was published, wait for more, and count what is waiting.

- SQLite (``sqlite:///path.db``): one relay publishes at a time, the holder of a lease row in
  ``<table>_lease``, renewed at a claim once half of it has run; another relay takes over
  when it expires. The
  batch is read outside any transaction and deleted in a short one, so writers are not held up
  while the relay talks to the bus.
- PostgreSQL (``postgresql://...``): a batch is claimed ``FOR UPDATE SKIP LOCKED`` in a
  transaction held until its rows are deleted, so several relays share the work. A row whose
  entity has an older row outside the batch (still waiting, or claimed by another relay) is
  left for later: order per entity holds across relays. Relays wake on ``LISTEN``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from damestoilet_contracts._errors import OutboxError
from damestoilet_contracts.outbox._table import (
    DEFAULT_TABLE,
    check_columns,
    check_name,
    columns_statement,
)

#: The database URL schemes a relay reads.
SCHEMES = ("sqlite", "postgresql", "postgres")

#: Seconds a SQLite relay's lease lasts unless renewed.
DEFAULT_LEASE_S = 10.0

_DELETE_CHUNK = 500


class RelayStore(Protocol):
    """An outbox table as a relay sees it."""

    def check(self) -> None:
        """Raise :class:`OutboxError` naming the fix when the table is missing or misshapen."""
        ...

    def claim(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` rows to publish, oldest first, as (seq, payload)."""
        ...

    def settle(self, seqs: list[int]) -> None:
        """Delete the published rows ``seqs`` and end the claim."""
        ...

    def abandon(self) -> None:
        """End the claim without deleting anything (publishing failed)."""
        ...

    def wait(self, timeout: float) -> None:
        """Return when new rows may be there, or after ``timeout`` seconds."""
        ...

    def backlog(self) -> tuple[int, float | None]:
        """(rows waiting, age in seconds of the oldest or None)."""
        ...

    def release(self) -> None:
        """Let another relay take over at once (a relay that stops calls it)."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...


@contextlib.contextmanager
def _sqlite_errors(path: str) -> Iterator[None]:
    """sqlite3's errors as :class:`OutboxError` (the relay retries those with backoff)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise OutboxError(f"database error on {path}: {exc}") from exc


def holder_name() -> str:
    """A relay's name, unique to this process: ``<hostname>-<pid>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SqliteStore:
    """A relay's view of an outbox in a SQLite file."""

    def __init__(
        self,
        path: str,
        *,
        table: str = DEFAULT_TABLE,
        lease_s: float = DEFAULT_LEASE_S,
        holder: str | None = None,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = path
        self.table = check_name(table)
        self.lease_s = lease_s
        self.holder = holder or holder_name()
        self._renew_at = 0.0
        # isolation_level=None: this code says BEGIN and COMMIT itself
        # check_same_thread=False: one relay uses it from one thread at a time, maybe not
        # the one that opened it
        self._conn = sqlite3.connect(
            path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False
        )

    def check(self) -> None:
        found = self._conn.execute(columns_statement("sqlite", self.table)).fetchall()
        check_columns(self.table, found, self.path)
        lease = self._conn.execute(columns_statement("sqlite", self.table + "_lease")).fetchall()
        if not lease:
            raise OutboxError(
                f"{self.path} has the outbox table {self.table} but not its lease table "
                f"{self.table}_lease; run `damestoilet outbox init --db sqlite:///{self.path}`"
            )

    def _take_lease(self) -> bool:
        if time.time() < self._renew_at:
            return True  # held for at least half a lease more: spare writers a write
        t = self.table
        self._conn.execute("BEGIN IMMEDIATE")
        # The lease runs from when the lock was got: BEGIN may have waited for a writer for
        # longer than a lease, and a lease dated from before would be over when written.
        now = time.time()
        try:
            self._conn.execute(
                f"INSERT INTO {t}_lease (name, holder, expires) VALUES ('relay', ?, ?) "
                f"ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                f"expires = excluded.expires "
                f"WHERE {t}_lease.holder = excluded.holder OR {t}_lease.expires < ?",
                (self.holder, now + self.lease_s, now),
            )
            (holder,) = self._conn.execute(
                f"SELECT holder FROM {t}_lease WHERE name = 'relay'"
            ).fetchone()
        finally:
            self._conn.execute("COMMIT")
        mine = bool(holder == self.holder)
        self._renew_at = now + self.lease_s / 2 if mine else 0.0
        return mine

    def claim(self, limit: int) -> list[tuple[int, bytes]]:
        with _sqlite_errors(self.path):
            if not self._take_lease():
                return []
            rows = self._conn.execute(
                f"SELECT seq, payload FROM {self.table} ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(int(seq), bytes(payload)) for seq, payload in rows]

    def settle(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with _sqlite_errors(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(seqs), _DELETE_CHUNK):
                    chunk = seqs[start : start + _DELETE_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    self._conn.execute(f"DELETE FROM {self.table} WHERE seq IN ({marks})", chunk)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def abandon(self) -> None:
        if self._conn.in_transaction:
            with _sqlite_errors(self.path):
                self._conn.execute("ROLLBACK")

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)

    def backlog(self) -> tuple[int, float | None]:
        with _sqlite_errors(self.path):
            count, oldest = self._conn.execute(
                f"SELECT count(*), min(created) FROM {self.table}"
            ).fetchone()
        return int(count), None if oldest is None else max(0.0, time.time() - float(oldest))

    def release(self) -> None:
        """Give the lease up, so another relay takes over at once."""
        self._renew_at = 0.0
        with _sqlite_errors(self.path):
            self._conn.execute(
                f"DELETE FROM {self.table}_lease WHERE name = 'relay' AND holder = ?",
                (self.holder,),
            )

    def close(self) -> None:
        self._conn.close()


class PostgresStore:
    """A relay's view of an outbox in PostgreSQL (psycopg 3). A connection the server dropped
    is opened again at the next call; what was claimed on it went back to the table."""

    def __init__(self, url: str, *, table: str = DEFAULT_TABLE) -> None:
        self.url = url
        self.table = check_name(table)
        t = self.table
        self._claim = (
            f"WITH c AS (SELECT seq, aggregateid FROM {t} ORDER BY seq LIMIT %s "
            f"FOR UPDATE SKIP LOCKED) "
            f"SELECT o.seq, o.payload FROM {t} o JOIN c ON o.seq = c.seq "
            f"WHERE NOT EXISTS (SELECT 1 FROM {t} p WHERE p.aggregateid = c.aggregateid "
            f"AND p.seq < c.seq AND p.seq NOT IN (SELECT seq FROM c)) ORDER BY o.seq"
        )
        self._work: Any = None
        self._listen: Any = None
        with self._errors():
            self._connect()

    def _connect(self) -> None:
        import psycopg

        self.close()
        self._work = psycopg.connect(self.url)
        self._listen = psycopg.connect(self.url, autocommit=True)
        self._listen.execute(f'LISTEN "{self.table}"')

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg

        try:
            if self._work is not None and (self._work.broken or self._listen.broken):
                self._connect()
            yield
        except psycopg.Error as exc:
            raise OutboxError(f"database error on {_redacted(self.url)}: {exc}") from exc

    def check(self) -> None:
        with self._errors():
            found = self._work.execute(columns_statement("postgresql", self.table)).fetchall()
            self._work.rollback()
        check_columns(self.table, found, _redacted(self.url))

    def claim(self, limit: int) -> list[tuple[int, bytes]]:
        with self._errors():
            rows = self._work.execute(self._claim, (limit,)).fetchall()
        return [(int(seq), bytes(payload)) for seq, payload in rows]

    def settle(self, seqs: list[int]) -> None:
        with self._errors():
            if seqs:
                self._work.execute(f"DELETE FROM {self.table} WHERE seq = ANY(%s)", (seqs,))
            self._work.commit()

    def abandon(self) -> None:
        with self._errors():
            self._work.rollback()

    def wait(self, timeout: float) -> None:
        with self._errors():
            for _ in self._listen.notifies(timeout=timeout, stop_after=1):
                pass

    def backlog(self) -> tuple[int, float | None]:
        with self._errors():
            count, age = self._work.execute(
                f"SELECT count(*), extract(epoch FROM now() - min(created)) FROM {self.table}"
            ).fetchone()
            self._work.rollback()
        return int(count), None if age is None else max(0.0, float(age))

    def release(self) -> None:
        pass  # the row locks went with the last commit

    def close(self) -> None:
        for conn in (self._work, self._listen):
            if conn is not None:
                conn.close()
        self._work = self._listen = None


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's
    spelling). Raises ValueError for another form."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(
            f"database URL {url!r}: write sqlite:///relative/path.db or sqlite:////abs/path.db"
        )
    return unquote(url[len(prefix) :])


def postgres_url(url: str) -> str:
    """``url`` as libpq reads it: a SQLAlchemy driver suffix (``postgresql+psycopg://``) is
    dropped."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def open_store(
    url: str, *, table: str = DEFAULT_TABLE, lease_s: float = DEFAULT_LEASE_S
) -> RelayStore:
    """The store of database ``url``: ``sqlite:///path.db`` or ``postgresql://...``.

    Raises ValueError for another scheme, :class:`OutboxError` when PostgreSQL cannot be
    reached or the SQLite file does not exist.
    """
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme == "sqlite":
        path = sqlite_path(url)
        if not os.path.exists(path):
            raise OutboxError(
                f"{path} does not exist; create the outbox with `damestoilet outbox init "
                f"--db {url}`"
            )
        return SqliteStore(path, table=table, lease_s=lease_s)
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(postgres_url(url), table=table)
    raise ValueError(
        f"database URL {url!r}: the outbox lives in sqlite:///path.db or postgresql://..."
    )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
