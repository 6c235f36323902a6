"""What the Kafka bus relies on, tested on the session's broker (Tansu unless
DAMESTOILET_KAFKA_BOOTSTRAP names another): docs/kafka.md lists these findings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from tests.fixtures_kafka import TOPIC_PARTITIONS
from tests.servers_kafka import BOOTSTRAP_ENV

pytestmark = pytest.mark.kafka

ON_TANSU = not os.environ.get(BOOTSTRAP_ENV)


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})


def _consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Tansu holds a group's first join for about half the session timeout (45 s default)
        "session.timeout.ms": 6000,
        **extra,
    }
    return Consumer(config)


def _consume(consumer: Consumer, count: int, timeout: float = 30.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for message in consumer.consume(count - len(got), 0.5):
            assert message.error() is None, message.error()
            got.append(message)
    return got


def test_idempotent_producer_reports_every_delivery(kafka_bootstrap: str, kafka_topic: str):
    producer = _producer(kafka_bootstrap)
    reports: list[tuple[object, bytes, int]] = []
    for i in range(20):
        producer.produce(
            kafka_topic,
            key=f"k{i % 5}".encode(),
            value=b"v",
            on_delivery=lambda err, msg: reports.append((err, msg.key(), msg.partition())),
        )
    assert producer.flush(30) == 0
    assert [r for r in reports if r[0] is not None] == []
    assert len(reports) == 20
    # one key, one partition: the order per entity that the bus promises rests on this
    by_key: dict[bytes, set[int]] = {}
    for _err, key, partition in reports:
        by_key.setdefault(key, set()).add(partition)
    assert len(by_key) == 5
    assert all(len(parts) == 1 for parts in by_key.values())


def test_headers_and_key_round_trip_byte_for_byte(
    kafka_bootstrap: str, kafka_topic: str, kafka_group: str
):
    producer = _producer(kafka_bootstrap)
    headers = [("ce_id", b"1"), ("bin", bytes(range(256))), ("dup", b"a"), ("dup", b"b")]
    producer.produce(kafka_topic, key=b"entity", value=b"\x00payload\xff", headers=headers)
    assert producer.flush(30) == 0
    consumer = _consumer(kafka_bootstrap, kafka_group)
    consumer.subscribe([kafka_topic])
    try:
        [message] = _consume(consumer, 1)
    finally:
        consumer.close()
    assert message.key() == b"entity"
    assert message.value() == b"\x00payload\xff"
    assert message.headers() == headers  # order and repeated names kept


def test_manual_commits_are_where_the_group_resumes(
    kafka_bootstrap: str, kafka_topic: str, kafka_group: str
):
    producer = _producer(kafka_bootstrap)
    for i in range(10):
        producer.produce(kafka_topic, value=str(i).encode(), partition=0)
    assert producer.flush(30) == 0
    first = _consumer(kafka_bootstrap, kafka_group)
    first.subscribe([kafka_topic])
    try:
        assert len(_consume(first, 10)) == 10
        # commit up to offset 4 only: 4..9 must come again
        first.commit(offsets=[TopicPartition(kafka_topic, 0, 4)], asynchronous=False)
        committed = first.committed([TopicPartition(kafka_topic, 0)], timeout=10)
        assert committed[0].offset == 4
    finally:
        first.close()
    second = _consumer(kafka_bootstrap, kafka_group)
    second.subscribe([kafka_topic])
    try:
        again = _consume(second, 6)
    finally:
        second.close()
    assert [m.offset() for m in again] == [4, 5, 6, 7, 8, 9]


def test_two_members_of_a_group_split_the_partitions(
    kafka_bootstrap: str, kafka_topic: str, kafka_group: str
):
    members = [_consumer(kafka_bootstrap, kafka_group) for _ in range(2)]
    for member in members:
        member.subscribe([kafka_topic])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for member in members:
                member.poll(0.1)
            owned = [{tp.partition for tp in m.assignment()} for m in members]
            if all(owned) and sum(map(len, owned)) == TOPIC_PARTITIONS:
                break
        assert owned[0] and owned[1]
        assert owned[0].isdisjoint(owned[1])
        assert owned[0] | owned[1] == set(range(TOPIC_PARTITIONS))
    finally:
        for member in members:
            member.close()


def test_a_short_session_timeout_makes_the_first_join_quick(
    kafka_bootstrap: str, kafka_topic: str, kafka_group: str
):
    """Apache Kafka holds a new group's first join for ``group.initial.rebalance.delay.ms``
    (3 s by default); Tansu 0.6 for about half the member's session timeout, which is why the
    Kafka bus defaults ``session.timeout.ms`` to 10 s rather than librdkafka's 45 s."""
    consumer = _consumer(kafka_bootstrap, kafka_group)
    consumer.subscribe([kafka_topic])
    started = time.monotonic()
    try:
        assigned: list[TopicPartition] = []
        while not assigned and time.monotonic() - started < 60:
            consumer.poll(0.1)
            assigned = consumer.assignment()
        took = time.monotonic() - started
    finally:
        consumer.close()
    assert len(assigned) == TOPIC_PARTITIONS
    # 3 s on an idle machine either way; the 45 s default would take 23 s on Tansu
    assert took < 15.0


def test_high_watermark_on_this_broker(kafka_bootstrap: str, kafka_topic: str, kafka_group: str):
    """Tansu 0.6 answers the high watermark as the last *batch*'s base offset + 1, not the
    last record's offset + 1 (Apache Kafka): lag read from it is a lower bound there."""
    producer = _producer(kafka_bootstrap)
    for _ in range(10):
        producer.produce(kafka_topic, value=b"x", partition=0)
    assert producer.flush(30) == 0  # one batch of 10 records
    consumer = _consumer(kafka_bootstrap, kafka_group)
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(kafka_topic, 0), timeout=10, cached=False
        )
    finally:
        consumer.close()
    assert low == 0
    if ON_TANSU:
        assert 1 <= high <= 10
    else:
        assert high == 10


MEMBER = """
import sys
from confluent_kafka import Consumer
bootstrap, group, topic = sys.argv[1:4]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "session.timeout.ms": 6000})
consumer.subscribe([topic])
while True:
    consumer.poll(0.2)
"""


def test_a_killed_members_partitions_go_to_the_other_member(
    kafka_bootstrap: str, kafka_topic: str, kafka_group: str, tmp_path
):
    member = tmp_path / "member.py"
    member.write_text(MEMBER)
    consumer = _consumer(kafka_bootstrap, kafka_group)
    consumer.subscribe([kafka_topic])
    other = subprocess.Popen(
        [sys.executable, str(member), kafka_bootstrap, kafka_group, kafka_topic]
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(consumer.assignment()) != TOPIC_PARTITIONS // 2:
            consumer.poll(0.1)
        assert len(consumer.assignment()) == TOPIC_PARTITIONS // 2  # split with the other one
        other.send_signal(signal.SIGKILL)
        other.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(consumer.assignment()) != TOPIC_PARTITIONS:
            consumer.poll(0.1)
        assert len(consumer.assignment()) == TOPIC_PARTITIONS
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
        consumer.close()
