"""End to end on Kafka: a Node service built on the generated TypeScript package produces onto
the session's broker (Tansu on loopback, or ``$DAMESTOILET_KAFKA_BOOTSTRAP``), each record is
what the Python publisher makes of its envelope (value, key, headers, signature), and the
Python coordinator with the signing key purges the signed events' keys in a real Redis and
dead-letters the unsigned one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from damestoilet_contracts.runtime import Coordinator, CoordinatorConfig, SigningKeys
from damestoilet_contracts.runtime._signing import KEY_ENV
from tests.servers_kafka import BOOTSTRAP_ENV
from tests.typescript import node_service, run

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

KEY = "k" * 16 + "-node-kafka-key"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Node service importing the generated package ``reference`` (see ``node_service``)."""
    return node_service(tmp_path_factory.mktemp("ts-kafka-service"))


def _records(bootstrap: str, topic: str, count: int) -> list[Any]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe([topic])
        out: list[Any] = []
        for _ in range(120):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                out.append(message)
            if len(out) >= count:
                break
        return out
    finally:
        consumer.close()


def test_node_produces_what_the_python_publisher_would_and_a_signing_coordinator_purges_it(
    service: Path, kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis
) -> None:
    from codegen import ProductPriceChanged
    from damestoilet_contracts.runtime._cloudevents import from_binary
    from damestoilet_contracts.runtime.kafka._binding import to_record
    from damestoilet_contracts.runtime.kafka._layout import topic_name

    stream = f"t-{uuid.uuid4().hex[:10]}:events"
    # Tansu takes no idempotent producer from kafkajs (nor from aiokafka); a real broker does
    idempotent = "1" if os.environ.get(BOOTSTRAP_ENV) else "0"
    url = f"kafka://{kafka_bootstrap}"
    ids = run(
        ["node", str(service / "kafka.mjs"), url, stream, idempotent],
        service,
        env={KEY_ENV: KEY},
    ).split()
    assert len(ids) == 4
    keys = SigningKeys(KEY.encode())
    records = sorted(_records(kafka_bootstrap, topic_name(stream), 4), key=lambda m: m.timestamp())
    by_id = {}
    for message in records:
        envelope = from_binary(message.headers(), message.value(), "kafka")
        signed = envelope.id != ids[3]
        expected = to_record(envelope, keys if signed else None)  # what Python produces
        assert message.value() == expected.value
        assert message.key() == expected.key
        assert message.headers() == list(expected.headers)
        by_id[envelope.id] = envelope
    assert sorted(by_id) == sorted(ids)
    price = ProductPriceChanged.from_bytes(by_id[ids[0]].data)
    assert by_id[ids[0]].partitionkey == price.partition_key() == "pé1"
    assert by_id[ids[0]].plan == price.flush_plan()

    stale = ["catalog:product:pé1", "cart:c9", "cart:c8"]
    redis_client.mset(dict.fromkeys([*stale, "cart:c7"], 1))
    config = CoordinatorConfig(stream=stream, consumer="c1", block_ms=100)
    bus_url = f"{url}?session.timeout.ms=6000"
    with Coordinator.from_url(redis_url, config, bus_url=bus_url, signing=keys) as worker:
        worker.run(stop_when_idle=True)
        assert (worker.stats.events, worker.stats.dead_lettered) == (3, 1)
    assert [k for k in stale if redis_client.exists(k)] == []
    assert redis_client.exists("cart:c7") == 1  # the unsigned event purged nothing
