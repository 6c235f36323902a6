"""A throw-away redis-server for the demo and the benchmark: a free loopback port, a temp
directory, no persistence, stopped (and its directory removed) on exit.

The process handling is :mod:`damestoilet_contracts._process`'s, shared with the pytest plugin
and ``tests/servers.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts._process import free_port, redis_args, running, wait_for_port

__all__ = ["default_schemas", "free_port", "local_redis", "redis_server_binary", "wait_for_port"]


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
        port, up = free_port(), False
        try:
            with running(redis_args(binary, port, workdir, *extra), port=port):
                up = True
                yield f"redis://127.0.0.1:{port}/0"
        except (TimeoutError, RuntimeError) as exc:
            if up:  # raised by the caller's block, not by the start
                raise
            log = workdir / "redis.log"
            tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise DamestoiletError(f"redis-server did not start: {exc}\n{tail}") from exc


def default_schemas() -> Path:
    """The contract directory the demo and the benchmark use when none is named: ``schemas``
    in the working directory if there is one, else the repository's (an editable install)."""
    here = Path("schemas")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "schemas"
