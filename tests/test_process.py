"""The throw-away server runner every server of the tests, the demo and the benchmarks starts
through: it waits until the process answers, and stops it whatever happens."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from damestoilet_contracts._process import free_ports, running

LISTEN = """
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("listening", flush=True)
time.sleep(60)
"""


def test_a_server_that_listens_is_yielded_and_stopped_afterwards(tmp_path: Path) -> None:
    [port] = free_ports(1)
    log = tmp_path / "server.log"
    with running([sys.executable, "-c", LISTEN, str(port)], port=port, log=log) as proc:
        socket.create_connection(("127.0.0.1", port), 1).close()
        assert proc.poll() is None
    assert proc.poll() is not None  # stopped on exit
    assert "listening" in log.read_text()


def test_a_server_that_exits_first_is_an_error_naming_its_status() -> None:
    [port] = free_ports(1)
    with (
        pytest.raises(RuntimeError, match="exited with 3"),
        running([sys.executable, "-c", "raise SystemExit(3)"], port=port),
    ):
        pass


def test_a_server_that_never_answers_is_stopped_after_the_timeout() -> None:
    [port] = free_ports(1)
    started = []

    def ready() -> bool:
        return False

    with (
        pytest.raises(TimeoutError, match=r"not ready after 0\.5s"),
        running(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            port=port,
            ready=ready,
            timeout=0.5,
        ) as proc,
    ):
        started.append(proc)  # never reached
    assert started == []


def test_an_error_in_the_block_still_stops_the_server() -> None:
    [port] = free_ports(1)
    procs = []
    with (
        pytest.raises(ValueError, match="the test's own"),
        running([sys.executable, "-c", LISTEN, str(port)], port=port) as proc,
    ):
        procs.append(proc)
        raise ValueError("the test's own")
    assert procs[0].poll() is not None


def test_ports_chosen_together_are_distinct() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8
