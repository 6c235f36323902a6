"""``damestoilet coordinator`` as a real process: SIGTERM exits 0 with nothing pending, a
SIGKILL mid-run loses nothing once it is started again, metrics are served."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from damestoilet_contracts.runtime import Emitter, Envelope
from tests.runtime_support import KeysChanged
from tests.servers import free_port

pytestmark = pytest.mark.redis

STREAM = "proc-events"
GROUP = "damestoilet-coordinator"


class Proc:
    """A coordinator subprocess with its JSON log on disk."""

    def __init__(self, redis_url: str, log: Path, *args: str) -> None:
        self.log = log
        command = [
            sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
            "coordinator", "--redis", redis_url, "--stream", STREAM, "--block-ms", "50", *args,
        ]  # fmt: skip
        self.stderr = log.open("wb")
        self.popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.stderr)
        _wait(lambda: '"msg": "started"' in self.text() or self.popen.poll() is not None, 20)
        assert self.popen.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict[str, object]]:
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.popen.send_signal(sig)
        code = self.popen.wait(timeout)
        self.stderr.close()
        return code


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
        proc.stderr.close()


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def _group(client: redis.Redis) -> dict[str, object]:
    [group] = [g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP.encode()]
    return group


def _emit_with_keys(client: redis.Redis, count: int) -> list[str]:
    """``count`` events, each purging an existing key and, in stage 2, its derived key."""
    keys = []
    with Emitter(client, source="//tests", stream=STREAM, maxlen=None) as emitter:
        for start in range(0, count, 1000):
            events = []
            for i in range(start, min(count, start + 1000)):
                keys += [f"k:{i}", f"k:{i}:derived"]
                events.append(KeysChanged(keys=[f"k:{i}"], derived=[f"k:{i}:derived"]))
            client.mset(dict.fromkeys(keys[-2 * len(events) :], 1))
            emitter.emit_many(events)
    return keys


def test_sigterm_finishes_the_batch_acks_and_exits_zero(
    redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    _emit_with_keys(redis_client, 5000)
    proc = Proc(redis_url, tmp_path / "log", "--batch", "20", "--consumer", "term")
    procs.append(proc)
    _wait(lambda: int(_group(redis_client)["entries-read"] or 0) >= 200, 20)
    assert proc.stop(signal.SIGTERM) == 0
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    stopped = [r for r in proc.records() if r.get("msg") == "stopped"]
    assert len(stopped) == 1
    purged = [r for r in proc.records() if r.get("outcome") == "purged"]
    assert len(purged) == _group(redis_client)["entries-read"]  # every read entry was purged


def test_sigint_exits_zero_too(
    redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    proc = Proc(redis_url, tmp_path / "log")
    procs.append(proc)
    assert proc.stop(signal.SIGINT) == 0


@pytest.mark.parametrize("restart_as", ["same consumer", "new consumer"])
def test_sigkill_mid_run_then_restart_purges_every_key_and_leaves_nothing_pending(
    redis_url: str,
    redis_client: redis.Redis,
    procs: list[Proc],
    tmp_path: Path,
    restart_as: str,
) -> None:
    keys = _emit_with_keys(redis_client, 20_000)
    first = Proc(redis_url, tmp_path / "first.log", "--batch", "50", "--consumer", "victim")
    procs.append(first)
    _wait(lambda: int(_group(redis_client)["entries-read"] or 0) >= 2000, 30)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    left = sum(redis_client.exists(*keys[i : i + 1000]) for i in range(0, len(keys), 1000))
    assert left > 0, "the coordinator finished before it was killed: nothing was tested"

    consumer = "victim" if restart_as == "same consumer" else "rescuer"
    second = Proc(
        redis_url, tmp_path / "second.log", "--batch", "200", "--consumer", consumer,
        "--claim-idle-ms", "100", "--claim-interval", "0.2",
    )  # fmt: skip
    procs.append(second)

    def drained() -> bool:
        group = _group(redis_client)
        return group["lag"] == 0 and group["pending"] == 0

    _wait(drained, 60)
    assert second.stop() == 0
    for i in range(0, len(keys), 1000):
        assert redis_client.exists(*keys[i : i + 1000]) == 0
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    assert redis_client.xlen(f"{STREAM}:dlq") == 0


def test_metrics_are_served_on_the_metrics_port(
    redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    _emit_with_keys(redis_client, 10)
    port = free_port()
    proc = Proc(
        redis_url, tmp_path / "log", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"
    )
    procs.append(proc)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    _wait(lambda: "damestoilet_coordinator_events_total 10.0" in scrape(), 20)
    text = scrape()
    assert 'damestoilet_coordinator_keys_purged_total{op="key"} 20.0' in text
    assert "damestoilet_coordinator_flush_latency_seconds_count 10.0" in text
    assert "damestoilet_coordinator_dead_lettered_total 0.0" in text
    assert proc.stop() == 0


def test_unimportable_handlers_package_exits_one(redis_url: str, tmp_path: Path) -> None:
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", redis_url, "--handlers", "no_such_package_xyz",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=30)
    assert result.returncode == 1
    assert b"cannot import handlers package" in result.stderr


def test_handlers_package_plans_events_that_arrive_without_a_plan(
    redis_url: str, redis_client: redis.Redis, procs: list[Proc], tmp_path: Path
) -> None:
    env = Envelope.from_event(KeysChanged(keys=["k"], derived=["d"]), source="//other")
    fields = {name: getattr(env, name) for name in Envelope.__dataclass_fields__}
    redis_client.mset({"k": 1, "d": 1})
    Emitter(redis_client, source="//t", stream=STREAM).emit_envelopes(
        [Envelope(**{**fields, "plan": None})]
    )
    proc = Proc(redis_url, tmp_path / "log", "--handlers", "tests.runtime_support")
    procs.append(proc)
    _wait(lambda: redis_client.exists("k", "d") == 0, 20)
    assert proc.stop() == 0
    assert [r["outcome"] for r in proc.records() if "outcome" in r] == ["purged"]
