"""Helpers for Kafka tests: what a group has not committed yet, read exactly."""

from __future__ import annotations

import time
import uuid

import confluent_kafka
from confluent_kafka import TopicPartition

from damestoilet_contracts.runtime.kafka._layout import parse_url, topic_name


def end_offsets(bus_url: str, stream: str) -> dict[int, int]:
    """The offset after the last record of each partition, found by reading to the end (the
    fetch path's end of partition is right on Tansu, where ListOffsets is not)."""
    config, _ = parse_url(bus_url)
    topic = topic_name(stream)
    reader = confluent_kafka.Consumer(
        {**config, "group.id": f"probe-{uuid.uuid4().hex[:8]}", "enable.partition.eof": True}
    )
    try:
        numbers = sorted(reader.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = dict.fromkeys(numbers, 0)
        reader.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in numbers])
        open_parts = set(numbers)
        deadline = time.monotonic() + 60
        while open_parts and time.monotonic() < deadline:
            for msg in reader.consume(1000, 0.5):
                if msg.error() is None:
                    ends[msg.partition()] = msg.offset() + 1
                elif msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    open_parts.discard(msg.partition())
        assert not open_parts, f"partitions {open_parts} of {topic} not read to their end"
        return ends
    finally:
        reader.close()


def committed_lag(bus_url: str, stream: str, group: str) -> int:
    """Records of ``stream`` after ``group``'s committed offsets (all of them where it has
    committed nothing)."""
    config, _ = parse_url(bus_url)
    topic = topic_name(stream)
    ends = end_offsets(bus_url, stream)
    probe = confluent_kafka.Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    finally:
        probe.close()
    return sum(ends[tp.partition] - max(tp.offset, 0) for tp in committed)
