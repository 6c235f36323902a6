"""Kafka as a publisher: each envelope one record, in CloudEvents binary mode (docs/kafka.md),
keyed by the event's partition key, from an idempotent producer (``enable.idempotence``,
``acks=all``), signed when given keys (``damestoilet_signature``). A batch counts as sent
only once every record's delivery report came back without an error.
:class:`AsyncKafkaPublisher` runs the same producer off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import confluent_kafka

from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._seams import DEFAULT_MAXLEN, DEFAULT_STREAM
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime.kafka._binding import to_record
from damestoilet_contracts.runtime.kafka._layout import (
    delivery_errors,
    ensure_topics,
    parse_url,
    producer_config,
    topic_name,
    translated,
)


class KafkaPublisher:
    """Produces envelopes to the topic of ``stream``, for sync code."""

    def __init__(
        self,
        config: dict[str, str],
        *,
        stream: str = DEFAULT_STREAM,
        partitions: int = 4,
        signing: SigningKeys | None = None,
    ) -> None:
        """Produce with librdkafka ``config`` (``bootstrap.servers`` and any TLS or SASL
        options) to the topic of ``stream``, created with ``partitions`` if missing;
        ``signing`` signs every record (docs/trust.md)."""
        self.config = config
        self.signing = signing
        self.stream = stream
        self.topic = topic_name(stream)
        self.partitions = partitions
        with translated("cannot create a Kafka producer"):
            self._producer = confluent_kafka.Producer(producer_config(config))
        self._ready = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        signing: SigningKeys | None = None,
    ) -> KafkaPublisher:
        """A publisher for ``kafka://HOST:PORT[,HOST:PORT][?librdkafka options]``. ``maxlen``
        is Redis's cap; a topic's size is its retention, set on the topic."""
        config, partitions = parse_url(url)
        return cls(config, stream=stream, partitions=partitions, signing=signing)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Produce ``envelopes`` in order and wait until the broker stored every one."""
        if not envelopes:
            return
        if not self._ready:
            ensure_topics(self.config, [self.topic], self.partitions)
            self._ready = True
        reports: list[BaseException | None] = []

        def report(err: Any, _msg: Any) -> None:
            reports.append(None if err is None else confluent_kafka.KafkaException(err))

        with translated(f"producing to {self.topic} failed"):
            for env in envelopes:
                record = to_record(env, self.signing)
                while True:
                    try:
                        self._producer.produce(
                            self.topic,
                            value=record.value,
                            key=record.key,
                            headers=record.headers,
                            on_delivery=report,
                        )
                        break
                    except BufferError:  # the local queue is full: let it drain
                        self._producer.poll(0.1)
            delivery_errors(self._producer, reports, f"producing to {self.topic} failed")

    def close(self) -> None:
        """Flush what is queued."""
        self._producer.flush(10)


class AsyncKafkaPublisher:
    """:class:`KafkaPublisher` for asyncio code: the producer's calls run on one worker thread,
    so the event loop never waits on librdkafka."""

    def __init__(self, inner: KafkaPublisher) -> None:
        """Wrap ``inner``."""
        self._inner = inner
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="damestoilet-kafka-publish")
        self.stream = inner.stream
        self.signing = inner.signing

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        signing: SigningKeys | None = None,
    ) -> AsyncKafkaPublisher:
        """See :meth:`KafkaPublisher.from_url`."""
        return cls(KafkaPublisher.from_url(url, stream=stream, maxlen=maxlen, signing=signing))

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """See :meth:`KafkaPublisher.publish`."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._inner.publish, envelopes)

    async def aclose(self) -> None:
        """See :meth:`KafkaPublisher.close`."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._inner.close)
        self._pool.shutdown(wait=False)
