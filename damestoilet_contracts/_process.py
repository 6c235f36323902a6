"""Throw-away servers on loopback: a free port, a child process, a wait until it answers, and a
stop that never leaves it running. What the demo, the benchmarks, the pytest plugin and the
test suite start their redis-server, nats-server, Tansu and varnishd with.

Nothing here talks to any address outside this machine.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that nothing listens on right now (held open
    together while chosen, so the OS cannot hand out the same one twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def answers(port: int) -> bool:
    """Whether 127.0.0.1:``port`` accepts a connection now."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_until(
    ready: Callable[[], bool],
    what: str,
    timeout: float = 10.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until ``ready()``; raise TimeoutError naming ``what`` after ``timeout`` seconds,
    or RuntimeError as soon as ``proc`` (the server being waited for) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if ready():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what}: not ready after {timeout}s")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until 127.0.0.1:``port`` accepts connections, or raise TimeoutError."""
    wait_until(lambda: answers(port), f"nothing listens on 127.0.0.1:{port}", timeout)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate ``proc``; kill it if it is still there after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    port: int,
    log: Path | None = None,
    cwd: Path | None = None,
    ready: Callable[[], bool] | None = None,
    timeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` (its output appended to ``log``, or dropped), wait until ``ready()``
    (default: ``port`` accepts connections), yield the process, and stop it on exit.

    Raises TimeoutError when it is not ready within ``timeout`` seconds and RuntimeError when
    it exits first; either way it is stopped before the error leaves."""
    with contextlib.ExitStack() as stack:
        out: IO[bytes] | int = subprocess.DEVNULL
        if log is not None:
            out = stack.enter_context(log.open("ab"))
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        stack.callback(stop, proc)
        check = ready or (lambda: answers(port))
        wait_until(check, f"{Path(args[0]).name} on 127.0.0.1:{port}", timeout, proc)
        yield proc


def redis_args(binary: str, port: int, workdir: Path, *extra: str) -> list[str]:
    """The command line of a throw-away redis-server: loopback, ``port``, its files in
    ``workdir``, no snapshots or AOF (``extra`` may turn them back on), protected mode."""
    return [
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
