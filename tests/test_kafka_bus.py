"""The Kafka bus beyond the conformance suite: two coordinators of one group split the
partitions, and when one is killed the other finishes its partitions' backlog; events of one
entity keep their order across a rebalance; dead letters list and replay on Kafka."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import Coordinator, CoordinatorConfig, Emitter, RedisDoneStore
from damestoilet_contracts.runtime.kafka._bus import KafkaBus
from damestoilet_contracts.runtime.kafka._layout import parse_url
from damestoilet_contracts.runtime.redis._layout import tag_key
from tests.fixtures_kafka import TOPIC_PARTITIONS
from tests.kafka_support import committed_lag
from tests.runtime_support import KeysChanged

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REPO = str(Path(__file__).resolve().parent.parent)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EntityChanged(KeysChanged):
    """A KeysChanged about one entity: its partition key."""

    entity: str = ""

    def partition_key(self) -> str:
        return self.entity


@pytest.fixture
def bus_url(kafka_bootstrap: str) -> str:
    return f"kafka://{kafka_bootstrap}?session.timeout.ms=6000"


@pytest.fixture
def stream() -> str:
    return f"kbus-{uuid.uuid4().hex[:10]}:events"


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _coordinator(
    redis_url: str, bus_url: str, stream: str, group: str, log: Path
) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", redis_url, "--bus", bus_url, "--stream", stream,
        "--group", group,
        "--consumer", log.stem, "--batch", "1", "--block-ms", "100", "--log-level", "info",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": REPO}
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=out)


def _partitions(log: Path) -> set[int]:
    """The partitions of the entries a coordinator logged as purged."""
    found = set()
    for line in log.read_text(errors="replace").splitlines():
        if '"outcome": "purged"' in line:
            found.add(int(json.loads(line)["entry"].split("-")[0]))
    return found


def test_two_coordinators_split_the_partitions_and_the_survivor_finishes_the_backlog(
    redis_url: str,
    redis_client: redis.Redis,
    bus_url: str,
    stream: str,
    kafka_group: str,
    tmp_path: Path,
):
    keys = [f"split:{i}" for i in range(40_000)]
    redis_client.mset(dict.fromkeys(keys, 1))
    with Emitter.from_url(bus_url, source="//t", stream=stream) as emitter:
        emitter.emit_many(
            [EntityChanged(keys=[k], entity=f"e{i % 40}") for i, k in enumerate(keys)]
        )
    logs = tmp_path / "a.log", tmp_path / "b.log"
    first = _coordinator(redis_url, bus_url, stream, kafka_group, logs[0])
    second = None
    try:
        _wait(lambda: not redis_client.exists(keys[0]) or _partitions(logs[0]), 60, "A starts")
        second = _coordinator(redis_url, bus_url, stream, kafka_group, logs[1])
        _wait(lambda: _partitions(logs[1]), 60, "B gets partitions of its own")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert redis_client.exists(*keys) > 0, "killed too late to test a takeover"
        _wait(lambda: redis_client.exists(*keys) == 0, 240, "every key purged")
        _wait(lambda: committed_lag(bus_url, stream, kafka_group) == 0, 30,
              "everything committed")  # fmt: skip
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
    a, b = _partitions(logs[0]), _partitions(logs[1])
    assert a and b  # both worked
    assert b == set(range(TOPIC_PARTITIONS))  # the survivor took the killed one's partitions


class _Recording:
    """A purge target remembering, in order, every key purged (threads share it)."""

    def __init__(self, log: list[str], lock: threading.Lock) -> None:
        self.log, self.lock = log, lock

    def purge_stage(self, ops: Sequence[FlushOp]) -> None:
        with self.lock:
            self.log.extend(op.key for op in ops)


def test_events_of_one_entity_keep_their_order_across_a_rebalance(
    redis_client: redis.Redis, bus_url: str, stream: str, kafka_group: str
):
    entities, per_entity = 12, 150
    events = [
        EntityChanged(keys=[f"o:e{e}:{n}"], entity=f"e{e}")
        for n in range(per_entity)
        for e in range(entities)
    ]
    with Emitter.from_url(bus_url, source="//t", stream=stream) as emitter:
        emitter.emit_many(events)
    purged: list[str] = []
    lock = threading.Lock()
    config = CoordinatorConfig(stream=stream, group=kafka_group, consumer="a", batch=5, block_ms=50)
    config_options, _ = parse_url(bus_url)

    def worker(name: str, stop: threading.Event) -> None:
        bus = KafkaBus(config_options, stream=stream, group=config.group, consumer=name)
        target = _Recording(purged, lock)
        with Coordinator(bus, target, RedisDoneStore(redis_client), config) as coordinator:
            while not stop.is_set():
                coordinator.step()

    stop = threading.Event()
    a = threading.Thread(target=worker, args=("a", stop))
    a.start()
    _wait(lambda: len(purged) > 100, 60, "the first purges")
    b = threading.Thread(target=worker, args=("b", stop))  # joins: the group rebalances
    b.start()
    _wait(lambda: len(set(purged)) == len(events), 120, "every event purged")
    stop.set()
    a.join(60)
    b.join(60)
    first_seen: dict[str, int] = {}
    for position, key in enumerate(purged):
        first_seen.setdefault(key, position)
    for e in range(entities):
        order = [first_seen[f"o:e{e}:{n}"] for n in range(per_entity)]
        assert order == sorted(order), f"entity e{e} purged out of order"


def test_dead_letters_list_and_replay_on_kafka(
    redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str, kafka_group: str
):
    redis_client.set(tag_key("bad"), "not a set")  # every purge of the tag: WRONGTYPE
    with Emitter.from_url(bus_url, source="//t", stream=stream) as emitter:
        emitter.emit(EntityChanged(tags=["bad"], entity="x"))
    config = CoordinatorConfig(
        stream=stream, group=kafka_group, max_deliveries=2, retry_base_s=0.05, block_ms=50
    )
    with Coordinator.from_url(redis_url, config, bus_url=bus_url) as worker:
        worker.run(stop_when_idle=True)
    assert worker.stats.dead_lettered == 1
    runner = CliRunner()
    listed = runner.invoke(main, ["dlq", "list", "--bus", bus_url, "--stream", stream, "--json"])
    assert listed.exit_code == 0, listed.output
    [letter] = [json.loads(line) for line in listed.output.splitlines() if line.strip()]
    assert "WRONGTYPE" in letter["reason"]
    redis_client.delete(tag_key("bad"))  # the cause is fixed: replay it
    replayed = runner.invoke(main, ["dlq", "replay", "--bus", bus_url, "--stream", stream, "--all"])
    assert replayed.exit_code == 0, replayed.output
    listed = runner.invoke(main, ["dlq", "list", "--bus", bus_url, "--stream", stream, "--json"])
    assert listed.output.strip() in ("", "[]")  # replayed letters are gone from the list
    config = dataclasses.replace(config, consumer="again")
    with Coordinator.from_url(redis_url, config, bus_url=bus_url) as worker:
        worker.run(stop_when_idle=True)
    assert worker.stats.events == 1  # purged this time, same envelope id


def test_a_letter_resent_after_a_kill_is_listed_once_and_dlq_drop_hides_it(
    redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str, kafka_group: str
) -> None:
    """A topic cannot refuse a second letter (a kill between the letter and the commit), so
    the reader keeps the first letter per group and record; drop writes a tombstone."""
    from damestoilet_contracts.runtime._seams import Dead, Settlement

    with Emitter.from_url(bus_url, source="//t", stream=stream) as emitter:
        emitter.emit(EntityChanged(keys=["k1"], entity="x"))
    config, partitions = parse_url(bus_url)
    bus = KafkaBus(config, stream=stream, group=kafka_group, partitions=partitions)
    try:
        bus.open(CoordinatorConfig(stream=stream, group=kafka_group).policy())
        deliveries: list[Any] = []
        _wait(lambda: deliveries.extend(bus.fetch(10, 0.5)) or deliveries, 60, "the record")
        [delivery] = deliveries
        bus._dead_letter([Dead(delivery, "first")])  # the kill came before the commit
        bus.settle(Settlement(dead=[Dead(delivery, "again")]))
    finally:
        bus.close()
    runner = CliRunner()
    listed = runner.invoke(main, ["dlq", "list", "--bus", bus_url, "--stream", stream, "--json"])
    assert listed.exit_code == 0, listed.output
    [letter] = [json.loads(line) for line in listed.output.splitlines() if line.strip()]
    assert letter["reason"] == "first"
    missing = runner.invoke(
        main, ["dlq", "drop", "--bus", bus_url, "--stream", stream, "--id", "0-99"]
    )
    assert missing.exit_code == 1 and "not in dead-letter topic" in missing.output
    dropped = runner.invoke(main, ["dlq", "drop", "--bus", bus_url, "--stream", stream, "--all"])
    assert dropped.exit_code == 0, dropped.output
    assert dropped.output.splitlines()[0] == letter["dlq_id"]
    listed = runner.invoke(main, ["dlq", "list", "--bus", bus_url, "--stream", stream, "--json"])
    assert listed.output.strip() == ""


def test_emit_and_coordinator_commands_purge_the_keys_over_kafka(
    redis_url: str, redis_client: redis.Redis, bus_url: str, stream: str, kafka_group: str,
    tmp_path: Path,
):  # fmt: skip
    """What the issue calls done: `damestoilet emit ... --bus kafka://` and `damestoilet
    coordinator --bus kafka:// --target default=redis://...` purge the keys."""
    redis_client.set("catalog:product:p1", "stale")
    payload = '{"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 5}'
    emitted = CliRunner().invoke(
        main,
        ["emit", str(Path(REPO) / "schemas"), "catalog.v1.ProductPriceChanged",
         "--bus", bus_url, "--stream", stream, "--json", payload],
    )  # fmt: skip
    assert emitted.exit_code == 0, emitted.output
    args = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--bus", bus_url, "--stream", stream, "--group", kafka_group,
        "--target", f"default={redis_url}", "--target", f"pricing={redis_url}",
        "--target", f"cdn={redis_url}", "--block-ms", "100",
    ]  # fmt: skip
    log = tmp_path / "coordinator.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            args, env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.DEVNULL, stderr=out
        )
    try:
        _wait(lambda: not redis_client.exists("catalog:product:p1"), 60, "the purge")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    assert code == 0, log.read_text()
    assert '"outcome": "purged"' in log.read_text()
