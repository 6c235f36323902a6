"""A service process for the kill tests: writes a product row and, in the same transaction,
its invalidation into the outbox (or, with ``plain``, emits it after the commit), then is
killed with SIGKILL right after its last commit, before anything is emitted.

    python -m tests.outbox_service DB_URL REDIS_URL STREAM COUNT outbox|plain
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from typing import Any

import psycopg

from damestoilet_contracts.outbox import Outbox
from damestoilet_contracts.runtime import Emitter
from tests.runtime_support import KeysChanged

SOURCE = "//tests/outbox-service"


def connect(db_url: str) -> Any:
    if db_url.startswith("sqlite:///"):
        return sqlite3.connect(db_url.removeprefix("sqlite:///"))
    return psycopg.connect(db_url)


def main() -> None:
    db_url, redis_url, stream, count, mode = sys.argv[1:6]
    conn = connect(db_url)
    box = Outbox(source=SOURCE)
    emitter = Emitter.from_url(redis_url, source=SOURCE, stream=stream, maxlen=None)
    conn.execute("CREATE TABLE IF NOT EXISTS product (id TEXT PRIMARY KEY, cents INTEGER)")
    conn.commit()
    for i in range(int(count)):
        event = KeysChanged(keys=[f"product:{i}"])
        conn.execute(f"INSERT INTO product VALUES ('p{i}', {i})")
        if mode == "outbox":
            box.add(conn, event)
        conn.commit()
        if i == int(count) - 1:
            os.kill(os.getpid(), signal.SIGKILL)  # after the commit, before any emit
        if mode == "plain":
            emitter.emit(event)


if __name__ == "__main__":
    main()
