"""Reading and replaying the dead-letter topic of a Kafka bus (the topic of ``<stream>:dlq``).

Each dead letter is the original record's value and headers plus the ``dlq_*`` headers; its id
is its own ``partition-offset`` in the dead-letter topic. A topic cannot delete one record, so
a replayed letter is marked with a tombstone: a record keyed by the letter's id with the
``dlq_drop`` header and no value; reading skips letters that have one (on a compacted topic,
Kafka removes both in time).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from damestoilet_contracts._errors import DeliveryError
from damestoilet_contracts.runtime._seams import (
    DLQ_DELIVERIES,
    DLQ_FIELDS,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_REASON,
    DLQ_STREAM,
    DLQ_TIME,
)
from damestoilet_contracts.runtime.kafka._bus import DLQ_KEY
from damestoilet_contracts.runtime.kafka._layout import (
    DLQ_DROP,
    delivery_errors,
    ensure_topics,
    parse_url,
    producer_config,
    topic_name,
    translated,
)
from damestoilet_contracts.runtime.redis._dead_letters import DeadLetter

#: How long reading the topic waits for the broker to say a partition is at its end (s).
_READ_TIMEOUT_S = 30.0


def _headers(msg: Any) -> dict[str, bytes]:
    """A record's headers by name (the last of a repeated one), values as bytes."""
    return {name: value or b"" for name, value in (msg.headers() or ())}


def _number(value: bytes | None) -> int:
    return int(value) if value and value.isdigit() else 0


class KafkaDeadLetters:
    """Dead letters of a Kafka bus, behind the neutral ``entries`` / ``replay`` verbs that
    ``damestoilet dlq`` uses on every bus."""

    def __init__(self, config: dict[str, str], partitions: int = 4) -> None:
        """Dead letters through librdkafka ``config``."""
        self.config = config
        self.partitions = partitions

    @classmethod
    def from_url(cls, url: str) -> KafkaDeadLetters:
        """Dead letters of ``kafka://HOST:PORT[,HOST:PORT][?librdkafka options]``."""
        config, partitions = parse_url(url)
        return cls(config, partitions)

    def _read(self, topic: str) -> list[tuple[DeadLetter, Any]]:
        """Every live letter of ``topic``, oldest first per partition, with its record."""
        consumer = confluent_kafka.Consumer(
            {
                **self.config,
                "group.id": f"damestoilet-dlq-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        letters: dict[str, tuple[DeadLetter, Any]] = {}
        dropped: set[str] = set()
        # (group, original id) of each letter read: a later letter of the same record by the
        # same group is the re-send of a kill between the letter and the commit.
        written: set[tuple[str, str]] = set()
        try:
            with translated(f"reading {topic} failed"):
                metadata = consumer.list_topics(topic, timeout=10)
                if topic not in metadata.topics or metadata.topics[topic].error is not None:
                    return []
                numbers = sorted(metadata.topics[topic].partitions)
                consumer.assign(
                    [TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in numbers]
                )
                open_parts = set(numbers)
                deadline = time.monotonic() + _READ_TIMEOUT_S
                while open_parts and time.monotonic() < deadline:
                    for msg in consumer.consume(500, 0.5):
                        error = msg.error()
                        if error is not None:
                            if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                                open_parts.discard(msg.partition())
                            continue
                        headers = _headers(msg)
                        if DLQ_DROP in headers:
                            dropped.add((msg.key() or b"").decode())
                            continue
                        dlq_id = f"{msg.partition()}-{msg.offset()}"
                        letter = self._letter(dlq_id, headers)
                        if letter.group:
                            if (letter.group, letter.original_id) in written:
                                continue
                            written.add((letter.group, letter.original_id))
                        letters[dlq_id] = (letter, msg)
                if open_parts:
                    raise DeliveryError(
                        f"reading {topic}: partitions {sorted(open_parts)} did not reach their "
                        f"end within {_READ_TIMEOUT_S:.0f}s"
                    )
        finally:
            consumer.close()
        return [v for k, v in letters.items() if k not in dropped]

    @staticmethod
    def _letter(dlq_id: str, headers: dict[str, bytes]) -> DeadLetter:
        shown = {
            name.encode(): headers[f"ce_{name}"]
            for name in ("id", "type")
            if f"ce_{name}" in headers
        }
        return DeadLetter(
            dlq_id=dlq_id,
            reason=headers.get(DLQ_REASON, b"").decode(errors="replace"),
            stream=headers.get(DLQ_STREAM, b"").decode(errors="replace"),
            original_id=headers.get(DLQ_ID, b"").decode(errors="replace"),
            deliveries=_number(headers.get(DLQ_DELIVERIES)),
            time_ms=_number(headers.get(DLQ_TIME)),
            fields=shown,
            group=headers.get(DLQ_GROUP, b"").decode(errors="replace"),
        )

    def entries(self, dlq_stream: str, *, count: int | None = None) -> list[DeadLetter]:
        """The dead letters of ``dlq_stream`` not replayed yet, at most ``count``."""
        letters = [letter for letter, _ in self._read(topic_name(dlq_stream))]
        return letters if count is None else letters[:count]

    def replay(
        self, dlq_stream: str, ids: Sequence[str] | None = None, *, stream: str | None = None
    ) -> list[tuple[str, str]]:
        """Produce dead letters back on their topic with their original key, value and headers
        (the envelope id unchanged), then mark them replayed with a tombstone. Returns
        ``(dlq id, topic)`` pairs; raises :class:`DeliveryError`
        naming ids that are not dead letters of ``dlq_stream`` (nothing is replayed)."""
        dlq = topic_name(dlq_stream)
        letters = self._select(dlq, ids)
        producer = confluent_kafka.Producer(producer_config(self.config))
        placed: list[tuple[str, str]] = []
        reports: list[BaseException | None] = []

        def report(err: Any, msg: Any) -> None:
            if err is not None:
                reports.append(confluent_kafka.KafkaException(err))
            else:
                reports.append(None)

        with translated(f"replaying {dlq} failed"):
            for letter, msg in letters:
                target = stream or letter.stream
                if not target:
                    raise DeliveryError(
                        f"dead letter {letter.dlq_id} does not say which stream it came from; "
                        "pass the stream to replay it onto"
                    )
                topic = topic_name(target)
                ensure_topics(self.config, [topic], self.partitions)
                headers = _headers(msg)
                key = headers.pop(DLQ_KEY, None)
                original: list[tuple[str, str | bytes | None]] = [
                    (n, v) for n, v in headers.items() if n not in DLQ_FIELDS
                ]
                producer.produce(
                    topic, value=msg.value(), key=key, headers=original, on_delivery=report
                )
                delivery_errors(producer, reports, f"replaying onto {topic}")
                placed.append((letter.dlq_id, topic))
            # Marked only once every one is back: a crash in between replays twice.
            for letter, _ in letters:
                producer.produce(
                    dlq, value=None, key=letter.dlq_id.encode(), headers=[(DLQ_DROP, b"replayed")]
                )
            delivery_errors(producer, reports, f"marking replayed letters on {dlq}")
        return placed

    def _select(self, dlq: str, ids: Sequence[str] | None) -> list[tuple[DeadLetter, Any]]:
        letters = self._read(dlq)
        if ids is None:
            return letters
        wanted = list(dict.fromkeys(ids))
        by_id = {letter.dlq_id: (letter, msg) for letter, msg in letters}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise DeliveryError(
                f"not in dead-letter topic {dlq}: {', '.join(missing)}; see `damestoilet dlq list`"
            )
        return [by_id[i] for i in wanted]

    def drop(self, dlq_stream: str, ids: Sequence[str] | None = None) -> list[str]:
        """Mark dead letters dropped for good with a tombstone each (a topic cannot delete
        one record); returns their ids. Raises :class:`DeliveryError` naming ids that are not
        dead letters of ``dlq_stream`` (nothing is dropped)."""
        dlq = topic_name(dlq_stream)
        letters = self._select(dlq, ids)
        producer = confluent_kafka.Producer(producer_config(self.config))
        reports: list[BaseException | None] = []

        def report(err: Any, msg: Any) -> None:
            reports.append(None if err is None else confluent_kafka.KafkaException(err))

        with translated(f"dropping from {dlq} failed"):
            for letter, _ in letters:
                producer.produce(
                    dlq,
                    value=None,
                    key=letter.dlq_id.encode(),
                    headers=[(DLQ_DROP, b"dropped")],
                    on_delivery=report,
                )
            delivery_errors(producer, reports, f"marking dropped letters on {dlq}")
        return [letter.dlq_id for letter, _ in letters]

    def close(self) -> None:
        """Nothing to release: each call uses its own clients."""
