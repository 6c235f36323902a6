"""A real nats-server with JetStream for the tests: started on loopback, on a free port, with
its store in a temp dir, and stopped afterwards (``nats-server -js -a 127.0.0.1 -p PORT
-sd DIR``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from damestoilet_contracts._process import free_port, running


def nats_server_binary() -> str:
    path = shutil.which("nats-server")
    if path is None:
        raise RuntimeError("nats-server is not installed; run `bash scripts/setup.sh`")
    return path


@contextlib.contextmanager
def nats_server(
    workdir: Path, *, port: int | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run one nats-server with JetStream on loopback, its store in ``workdir``; yields
    (port, process). The same ``workdir`` and ``port`` restart it on the same store."""
    port = free_port() if port is None else port
    workdir.mkdir(parents=True, exist_ok=True)
    args = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(workdir)]
    with running(args, port=port, log=workdir / "nats.log") as proc:
        yield port, proc
