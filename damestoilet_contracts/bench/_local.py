"""A throw-away redis-server for the demo and the benchmark: a free loopback port, a temp
directory, no persistence, stopped (and its directory removed) on exit.

``tests/servers.py`` starts its servers the same way; it is test code, this is the library's.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from damestoilet_contracts._errors import DamestoiletError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until 127.0.0.1:``port`` accepts connections; raises TimeoutError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def redis_server_binary() -> str:
    """The path of ``redis-server``; raises :class:`DamestoiletError` when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        raise DamestoiletError(
            "redis-server is not installed; run `bash scripts/setup.sh` or pass --redis URL"
        )
    return path


@contextlib.contextmanager
def local_redis(*extra: str, workdir: Path | None = None) -> Iterator[str]:
    """Run one redis-server on a free loopback port and yield its URL
    (``redis://127.0.0.1:PORT/0``); stop it on exit.

    ``extra`` are more ``redis-server`` arguments (``"--notify-keyspace-events", "K$"``).
    ``workdir`` holds its log; None: a temp directory, removed afterwards. Raises
    :class:`DamestoiletError` when redis-server is missing or does not come up.
    """
    binary = redis_server_binary()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dsredis-")))
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(workdir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--logfile", str(workdir / "redis.log"),
            *extra,
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            try:
                wait_for_port(port)
            except TimeoutError as exc:
                log = workdir / "redis.log"
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise DamestoiletError(f"redis-server did not start: {exc}\n{tail}") from exc
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def default_schemas() -> Path:
    """The contract directory the demo and the benchmark use when none is named: ``schemas``
    in the working directory if there is one, else the repository's (an editable install)."""
    here = Path("schemas")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "schemas"
