"""A throwaway redis-server for a test session: loopback, a free port, a temp dir, stopped after."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from damestoilet_contracts._process import free_port, redis_args, running


@contextlib.contextmanager
def redis_server(workdir: Path, executable: str = "redis-server") -> Iterator[str]:
    """Run a redis-server on 127.0.0.1 in ``workdir``, no persistence; yields its URL.

    Raises RuntimeError naming the fix when ``executable`` is not found or does not start.
    """
    binary = shutil.which(executable)
    if binary is None:
        raise RuntimeError(
            f"{executable} not found: install Redis (apt-get install redis-server, brew install "
            "redis) or pass --damestoilet-redis-exec PATH"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port, up = free_port(), False
    try:
        with running(redis_args(binary, port, workdir), port=port):
            up = True
            yield f"redis://127.0.0.1:{port}/0"
    except (TimeoutError, RuntimeError) as exc:
        if up:  # raised by the test, not by the start
            raise
        raise RuntimeError(f"redis-server did not start ({exc}); see {workdir}") from exc
