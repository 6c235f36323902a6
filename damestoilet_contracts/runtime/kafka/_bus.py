"""Kafka as the bus: one member of a consumer group, manual commits of the settled prefix.

The neutral verbs map to Kafka's (docs/kafka.md): ``fetch`` is a ``consume`` of up to
``count`` records, after the retries whose backoff is over; ``done`` and ``dead(reason)``
(the record copied with the reason to the dead-letter topic first) settle an offset, and the
:class:`OffsetTracker` commits only the contiguous settled prefix of each partition;
``retry_after(s)`` keeps the record in the :class:`RetryHold` and hands it out again after
``s`` with one more delivery, pausing a partition whose hold is full. A rebalance commits
what is settled of the revoked partitions and drops their held retries: their new owner reads
them again from the committed offset, where the done store skips what was purged. A killed
member's partitions move once its session times out (``session.timeout.ms``, 10 s here).

Delivery counts live in this process: after a crash a record starts again at one, so a record
that kills its coordinator is retried until an operator steps in (the engine's "delivered more
often than max_deliveries without a settle" needs a broker-side count, which Kafka has not).

:class:`AsyncKafkaBus` runs the same consumer on one worker thread for asyncio code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, cast

import confluent_kafka
from confluent_kafka import TopicPartition

from damestoilet_contracts.runtime._seams import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_REASON,
    DLQ_STREAM,
    DLQ_TIME,
    Backlog,
    ConsumePolicy,
    Dead,
    Delivery,
    Lost,
    Settlement,
    default_consumer,
)
from damestoilet_contracts.runtime.kafka._hold import DEFAULT_CAPACITY, RetryHold
from damestoilet_contracts.runtime.kafka._layout import (
    DEFAULT_SESSION_TIMEOUT_MS,
    delivery_errors,
    dlq_topic,
    ensure_topics,
    parse_url,
    producer_config,
    topic_name,
    translated,
)
from damestoilet_contracts.runtime.kafka._offsets import OffsetTracker

#: Header with the original record's key on a dead letter (the letter itself is keyed by id).
DLQ_KEY = "dlq_key"
#: How long a first fetch waits for the group to assign this member its partitions (s).
JOIN_WAIT_S = 60.0
#: How long after an assignment an empty fetch still waits for the first records (s).
FIRST_FETCH_S = 2.0


class KafkaBus:
    """One member of a consumer group on the topic of ``stream``."""

    def __init__(
        self,
        config: dict[str, str],
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
        partitions: int = 4,
        hold_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        """Consume with librdkafka ``config`` (``bootstrap.servers``, TLS, SASL) the topic of
        ``stream`` in ``group``; ``consumer`` names this member (its ``client.id``);
        dead letters go to the topic of ``dlq_stream`` (default ``<stream>:dlq``)."""
        self.config = config
        self.stream = stream
        self.topic = topic_name(stream)
        self.group = group
        self.consumer = consumer or default_consumer()
        self.dlq_stream = dlq_stream or f"{stream}:dlq"
        self.dlq_topic = topic_name(self.dlq_stream) if dlq_stream else dlq_topic(stream)
        self.partitions = partitions
        self.policy = ConsumePolicy()
        self.tracker: OffsetTracker[int] = OffsetTracker()
        self.hold: RetryHold[int, Delivery] = RetryHold(hold_capacity)
        self._consumer: Any = None
        self._producer: Any = None
        self._subscribed = False
        self._assigned_at: float | None = None
        self.lost = 0
        # Record id -> failed purge attempts counted by this member (lost with it, like the
        # delivery counts: a new owner tries again from 0, never dead-letters sooner).
        self._attempts: dict[str, int] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
    ) -> KafkaBus:
        """A bus for ``kafka://HOST:PORT[,HOST:PORT][?librdkafka options]``."""
        config, partitions = parse_url(url)
        return cls(
            config,
            stream=stream,
            group=group,
            consumer=consumer,
            dlq_stream=dlq_stream,
            partitions=partitions,
        )

    @property
    def name(self) -> str:
        """The topic's name."""
        return self.topic

    def open(self, policy: ConsumePolicy) -> None:
        """Create the topic and the dead-letter topic if missing, and the group's consumer
        (it joins the group on the first fetch)."""
        self.policy = policy
        ensure_topics(self.config, [self.topic, self.dlq_topic], self.partitions)
        if self._consumer is None:
            settings: dict[str, Any] = {
                "session.timeout.ms": DEFAULT_SESSION_TIMEOUT_MS,
                "fetch.wait.max.ms": 50,
                **self.config,
                "group.id": self.group,
                "client.id": self.consumer,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest" if policy.ephemeral else "earliest",
                # eager: a revoke hands back every partition, commits first, then reassigns
                "partition.assignment.strategy": "range",
            }
            with translated(f"cannot create a consumer of {self.topic}"):
                self._consumer = confluent_kafka.Consumer(settings)

    def _subscribe(self) -> None:
        if self._consumer is None:
            self.open(self.policy)
        if not self._subscribed:
            with translated(f"cannot subscribe to {self.topic}"):
                self._consumer.subscribe(
                    [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
                )
            self._subscribed = True

    # -- rebalances (called inside consume) ------------------------------------------------

    def _settling_in(self) -> bool:
        """Whether this member waits for its first assignment, or got it a moment ago."""
        at = self._assigned_at
        return at is None or time.monotonic() - at < FIRST_FETCH_S

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._assigned_at = time.monotonic()
        for tp in partitions:
            self.tracker.assign(tp.partition)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        self._commit(self.tracker.revoke(numbers))
        self.hold.drop(numbers)

    # -- the verbs ---------------------------------------------------------------------------

    def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """Retries whose backoff is over first, then up to ``count`` new records, waiting up to
        ``wait_s`` (or until the next retry is due) for the first."""
        self._subscribe()
        now = time.monotonic()
        out = [replace(d, deliveries=d.deliveries + 1) for d in self.hold.due(now, count)]
        self._resume()
        room = count - len(out)
        if room <= 0:
            return out
        timeout = 0.0 if out else max(wait_s, 0.0)
        next_due = self.hold.next_due()
        if next_due is not None:
            timeout = min(timeout, max(next_due - now, 0.0))
        with translated(f"fetching from {self.topic} failed"):
            messages = self._consumer.consume(room, timeout)
            # Until the group assigns this member its partitions, and for a moment after (the
            # first fetch of each partition looks up its offset first), nothing can come: wait
            # (a worker that stops when idle would otherwise stop before it started).
            deadline = time.monotonic() + JOIN_WAIT_S
            while not messages and time.monotonic() < deadline and self._settling_in():
                messages = self._consumer.consume(room, 0.2)
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise confluent_kafka_error(f"consuming {self.topic} failed", error)
                continue  # transient (a broker down): librdkafka retries by itself
            partition, offset = msg.partition(), msg.offset()
            try:
                self.tracker.fetched(partition, offset)
            except ValueError:  # read again from an earlier offset: a fresh assignment
                self.tracker.assign(partition)
                self.tracker.fetched(partition, offset)
            headers = {name: value for name, value in (msg.headers() or ()) if value is not None}
            out.append(
                Delivery(
                    f"{partition}-{offset}",
                    {},
                    1,
                    msg,
                    headers=cast(dict[str, str], headers),  # bytes: from_binary decodes them
                    body=msg.value() or b"",
                    binding="kafka",
                )
            )
        return out

    def settle(self, settlement: Settlement) -> None:
        """Dead-letter the dead (stored before anything is committed), settle the done and the
        dead, hold the retries, then commit the settled prefix of each partition."""
        if settlement.dead:
            self._dead_letter(settlement.dead)
        for delivery in settlement.done:
            self._settled(delivery)
        for dead in settlement.dead:
            self._settled(dead.delivery)
        if self._attempts:
            for delivery in [*settlement.done, *(d.delivery for d in settlement.dead)]:
                self._attempts.pop(delivery.id, None)
        now = time.monotonic()
        for retry in settlement.retry:
            msg = retry.delivery.handle
            self.hold.hold(msg.partition(), retry.delivery, now + retry.delay_s)
        paused = self.hold.to_pause()
        if paused:
            with translated(f"pausing partitions of {self.topic} failed"):
                self._consumer.pause([TopicPartition(self.topic, p) for p in paused])
        self._commit(self.tracker.commits())

    def _settled(self, delivery: Delivery) -> None:
        msg = delivery.handle
        self.tracker.settled(msg.partition(), msg.offset())

    def _resume(self) -> None:
        ready = self.hold.to_resume()
        if ready:
            with translated(f"resuming partitions of {self.topic} failed"):
                self._consumer.resume([TopicPartition(self.topic, p) for p in ready])

    def _commit(self, offsets: dict[int, int]) -> None:
        if not offsets or self._consumer is None:
            return
        with translated(f"committing offsets of {self.topic} failed"):
            self._consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                asynchronous=False,
            )
        self.tracker.committed(offsets)

    def _dead_letter(self, dead: Sequence[Dead]) -> None:
        if self._producer is None:
            with translated("cannot create a Kafka producer"):
                self._producer = confluent_kafka.Producer(producer_config(self.config))
        reports: list[BaseException | None] = []

        def report(err: Any, _msg: Any) -> None:
            reports.append(None if err is None else confluent_kafka.KafkaException(err))

        now = str(int(time.time() * 1000)).encode()
        with translated(f"dead-lettering to {self.dlq_topic} failed"):
            for d in dead:
                msg = d.delivery.handle
                headers = list(msg.headers() or ())
                headers += [
                    (DLQ_REASON, d.reason.encode()),
                    (DLQ_STREAM, self.stream.encode()),
                    (DLQ_ID, d.delivery.id.encode()),
                    (DLQ_GROUP, self.group.encode()),
                    (DLQ_DELIVERIES, str(d.delivery.deliveries).encode()),
                    (DLQ_TIME, now),
                ]
                if msg.key() is not None:
                    headers.append((DLQ_KEY, msg.key()))
                self._producer.produce(
                    self.dlq_topic,
                    value=msg.value(),
                    key=f"{self.topic}/{d.delivery.id}".encode(),
                    headers=headers,
                    on_delivery=report,
                )
            delivery_errors(self._producer, reports, f"dead-lettering to {self.dlq_topic}")

    def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Count one failed purge attempt for each of ``deliveries`` (in this member)."""
        out = []
        for d in deliveries:
            n = self._attempts.get(d.id, 0) + 1
            self._attempts[d.id] = n
            out.append(n)
        return out

    def take_lost(self) -> list[Lost]:
        """Nothing: records removed by retention before the group read them are skipped by
        ``auto.offset.reset`` without a report; size retention for the slowest group."""
        return []

    def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to tell Kafka: a member keeps its partitions while it heartbeats (librdkafka
        does, on its own thread) and polls within ``max.poll.interval.ms`` (5 minutes)."""

    def backlog(self) -> Backlog:
        """``lag``: records of the topic after the group's committed offsets (from the broker's
        end offsets; Tansu reports those short, docs/kafka.md); ``pending``: records this member
        fetched and has not settled (held retries included)."""
        if self._consumer is None:
            self.open(self.policy)
        with translated(f"reading the offsets of {self.group} on {self.topic} failed"):
            metadata = self._consumer.list_topics(self.topic, timeout=10)
            numbers = sorted(metadata.topics[self.topic].partitions)
            committed = self._consumer.committed(
                [TopicPartition(self.topic, p) for p in numbers], timeout=10
            )
            lag = 0
            for tp in committed:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, tp.partition), timeout=10, cached=False
                )
                start = tp.offset if tp.offset >= 0 else low
                lag += max(high - start, 0)
        pending = sum(self.tracker.unsettled(p) for p in self.tracker.partitions())
        return Backlog(lag, pending, self.lost)

    def retries_waiting(self) -> bool:
        """Whether this member holds retries not handed out again yet."""
        return self.hold.held() > 0

    def close(self) -> None:
        """Commit what is settled, leave the group (its partitions move at once), and close."""
        if self._consumer is not None:
            try:
                self._commit(self.tracker.commits())
            finally:
                with translated(f"closing the consumer of {self.topic} failed"):
                    self._consumer.close()
                self._consumer = None
                self._subscribed = False
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None


def confluent_kafka_error(what: str, error: Any) -> Exception:
    """A :class:`BackendError` for a fatal librdkafka error."""
    from damestoilet_contracts.runtime.kafka._layout import backend_error

    return backend_error(what, confluent_kafka.KafkaException(error))


class AsyncKafkaBus:
    """:class:`KafkaBus` for asyncio code: the consumer's calls run, one at a time, on a worker
    thread, so the event loop never waits on librdkafka."""

    def __init__(self, inner: KafkaBus) -> None:
        """Wrap ``inner``."""
        self._inner = inner
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="damestoilet-kafka")
        self.consumer = inner.consumer
        self.group = inner.group

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncKafkaBus:
        """See :meth:`KafkaBus.from_url`."""
        return cls(KafkaBus.from_url(url, **options))

    @property
    def name(self) -> str:
        """The topic's name."""
        return self._inner.name

    @property
    def inner(self) -> KafkaBus:
        """The sync bus doing the work."""
        return self._inner

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self, policy: ConsumePolicy) -> None:
        """See :meth:`KafkaBus.open`."""
        await self._run(self._inner.open, policy)

    async def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """See :meth:`KafkaBus.fetch`."""
        out: list[Delivery] = await self._run(self._inner.fetch, count, wait_s)
        return out

    async def settle(self, settlement: Settlement) -> None:
        """See :meth:`KafkaBus.settle`."""
        await self._run(self._inner.settle, settlement)

    async def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`KafkaBus.in_progress`."""

    async def backlog(self) -> Backlog:
        """See :meth:`KafkaBus.backlog`."""
        out: Backlog = await self._run(self._inner.backlog)
        return out

    def retries_waiting(self) -> bool:
        """See :meth:`KafkaBus.retries_waiting`."""
        return self._inner.retries_waiting()

    async def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """See :meth:`KafkaBus.record_failures`."""
        return self._inner.record_failures(deliveries)

    def take_lost(self) -> list[Lost]:
        """See :meth:`KafkaBus.take_lost`."""
        return []

    async def aclose(self) -> None:
        """See :meth:`KafkaBus.close`."""
        try:
            await self._run(self._inner.close)
        finally:
            self._pool.shutdown(wait=False)
