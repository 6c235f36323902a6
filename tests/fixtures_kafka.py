"""Kafka fixtures: a Kafka-protocol broker for the session (Tansu on loopback, or the broker
``DAMESTOILET_KAFKA_BOOTSTRAP`` names) and a fresh topic per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.servers_kafka import BOOTSTRAP_ENV, tansu_broker, wait_for_broker

#: Partitions of each test's topic: enough for two consumers of a group to split them.
TOPIC_PARTITIONS = 4


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a broker that lives as long as the test session."""
    named = os.environ.get(BOOTSTRAP_ENV)
    if named:
        wait_for_broker(named)
        yield named
        return
    with tansu_broker(tmp_path_factory.mktemp("tansu")) as (bootstrap, _proc):
        wait_for_broker(bootstrap)
        yield bootstrap


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> str:
    """A topic no other test uses, with :data:`TOPIC_PARTITIONS` partitions (a real broker is
    shared, so each test gets its own name rather than an emptied one)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"damestoilet-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    future = admin.create_topics([NewTopic(name, TOPIC_PARTITIONS, replication_factor=1)])[name]
    future.result(timeout=30)
    return name


@pytest.fixture
def kafka_group() -> str:
    """A consumer group name no other test uses."""
    return f"damestoilet-test-{uuid.uuid4().hex[:12]}"
