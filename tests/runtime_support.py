"""A tiny event class that satisfies ContractEvent, with hand-built plans, for runtime tests;
its module also serves as a ``--handlers`` package (``HANDLERS``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import fastavro

from damestoilet_contracts.model import FlushOp, Plan

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "KeysChanged",
        "namespace": "test.v1",
        "fields": [
            {"name": "keys", "type": {"type": "array", "items": "string"}},
            {"name": "derived", "type": {"type": "array", "items": "string"}},
            {"name": "prefixes", "type": {"type": "array", "items": "string"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
        ],
    }
)


@dataclass(frozen=True)
class KeysChanged:
    """Purges ``keys``, ``prefixes`` and ``tags`` in stage 1, then ``derived`` keys in stage 2."""

    EVENT_TYPE: ClassVar[str] = "test.v1.KeysChanged"
    SCHEMA_FINGERPRINT: ClassVar[str] = "schema-fp-1"
    RULES_FINGERPRINT: ClassVar[str] = "rules-fp-1"
    CONTENT_TYPE: ClassVar[str] = "avro/binary"

    keys: Sequence[str] = ()
    derived: Sequence[str] = ()
    prefixes: Sequence[str] = ()
    tags: Sequence[str] = ()

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        record = {
            "keys": list(self.keys),
            "derived": list(self.derived),
            "prefixes": list(self.prefixes),
            "tags": list(self.tags),
        }
        fastavro.schemaless_writer(out, SCHEMA, record)
        return out.getvalue()

    def flush_plan(self) -> Plan:
        first = (
            *(FlushOp("key", "default", k) for k in self.keys),
            *(FlushOp("prefix", "default", p) for p in self.prefixes),
            *(FlushOp("tag", "default", t) for t in self.tags),
        )
        stages = [first] if first else []
        if self.derived:
            stages.append(tuple(FlushOp("key", "default", k) for k in self.derived))
        return Plan(self.EVENT_TYPE, tuple(stages))

    @classmethod
    def from_bytes(cls, data: bytes) -> KeysChanged:
        record = fastavro.schemaless_reader(io.BytesIO(data), SCHEMA)
        assert isinstance(record, dict)
        return cls(record["keys"], record["derived"], record["prefixes"], record["tags"])


def plan_keys_changed(data: bytes) -> Plan:
    """The flush handler of KeysChanged: the same plan, computed from the payload."""
    return KeysChanged.from_bytes(data).flush_plan()


HANDLERS = {KeysChanged.EVENT_TYPE: plan_keys_changed}


def produce_kafka(
    bus_url: str,
    stream: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, object]] | None = None,
) -> None:
    """Put one raw record on the topic of ``stream`` (created if missing) with confluent-kafka,
    as a producer that is not damestoilet's would: a forger's, or a broken one."""
    from confluent_kafka import Producer

    from damestoilet_contracts.runtime.kafka._layout import ensure_topics, parse_url, topic_name

    config, partitions = parse_url(bus_url)
    ensure_topics(config, [topic_name(stream)], partitions)
    producer = Producer(config)
    producer.produce(topic_name(stream), value=value, key=key, headers=list(headers or []))
    assert producer.flush(30) == 0
