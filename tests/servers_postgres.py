"""A real PostgreSQL server for the tests: ``initdb`` a cluster in a temp dir, ``pg_ctl`` it
up on a free loopback port (no Unix socket, trust auth for loopback only), and stop it and
remove the dir afterwards. As root the binaries run as the ``postgres`` user (PostgreSQL
refuses to run as root), in a dir that user owns."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.servers import free_port, wait_for_port

#: Where Debian's postgresql-15 puts initdb and pg_ctl.
PG_BIN = Path(os.environ.get("DAMESTOILET_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running PostgreSQL as root needs runuser (util-linux)")
    return [runuser, "-u", "postgres", "--", *args]


def pg_binary(name: str) -> str:
    path = PG_BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing; run `bash scripts/setup.sh` (postgresql)")
    return str(path)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Run one PostgreSQL cluster on 127.0.0.1 on a free port; yields the URL of its
    ``postgres`` database (user ``postgres``, no password)."""
    root = Path(tempfile.mkdtemp(prefix="damestoilet-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    port = free_port()
    try:
        subprocess.run(
            _as_postgres([
                pg_binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--no-sync", "--no-instructions",
            ]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        subprocess.run(
            _as_postgres([
                pg_binary("pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                "-w", "-t", "60", "-o", options, "start",
            ]),
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        try:
            wait_for_port(port)
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            stop = [pg_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_postgres(stop), capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
