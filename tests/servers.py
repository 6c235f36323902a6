"""Real servers for the tests: each started on loopback, on a free port, in a temp dir, and
stopped afterwards. Nothing here talks to any address outside this machine."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from damestoilet_contracts._process import (
    free_port,
    free_ports,
    redis_args,
    running,
    wait_for_port,
)

__all__ = [
    "free_port",
    "free_ports",
    "redis_cluster",
    "redis_server",
    "wait_for_cluster",
    "wait_for_port",
]


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed; run `bash scripts/setup.sh`")
    return path


@contextlib.contextmanager
def redis_server(
    workdir: Path, *extra: str, port: int | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run one redis-server on loopback in ``workdir``, on ``port`` or a free one; yields
    (port, process)."""
    port = free_port() if port is None else port
    workdir.mkdir(parents=True, exist_ok=True)
    with running(redis_args(redis_server_binary(), port, workdir, *extra), port=port) as proc:
        yield port, proc


def redis_cli_binary() -> str:
    path = shutil.which("redis-cli")
    if path is None:
        raise RuntimeError("redis-cli is not installed; run `bash scripts/setup.sh`")
    return path


def wait_for_cluster(ports: list[int], timeout: float = 30.0) -> None:
    """Block until every node at ``ports`` reports ``cluster_state:ok`` and knows all the
    others, or raise TimeoutError."""
    import redis  # only the test session and the benchmarks need it

    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        port = pending[0]
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as node:
            info = node.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        if "cluster_state:ok" in text and f"cluster_known_nodes:{len(ports)}" in text:
            pending.pop(0)
        else:
            time.sleep(0.05)
    if pending:
        raise TimeoutError(f"Redis Cluster on ports {ports} not ok after {timeout}s")


@contextlib.contextmanager
def redis_cluster(workdir: Path, primaries: int = 3) -> Iterator[list[int]]:
    """Run a Redis Cluster of ``primaries`` primaries (no replicas) on loopback, each node a
    redis-server in its own directory under ``workdir``; yields the nodes' ports once the
    cluster is ok, and stops every node afterwards."""
    with contextlib.ExitStack() as stack:
        # the bus ports are named, not port+10000, which may be taken or out of range
        chosen = free_ports(2 * primaries)
        ports, buses = chosen[:primaries], chosen[primaries:]
        for i, (port, bus) in enumerate(zip(ports, buses, strict=True)):
            node_dir = workdir / f"node{i}"
            stack.enter_context(
                redis_server(
                    node_dir,
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--cluster-port", str(bus),
                    "--cluster-node-timeout", "5000",
                    port=port,
                )
            )  # fmt: skip
        subprocess.run(
            [
                redis_cli_binary(), "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for_cluster(ports)
        yield ports
