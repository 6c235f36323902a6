"""NATS JetStream as the bus: a durable pull consumer per consumer group.

The neutral verbs map to JetStream's own (docs/runtime.md, the seams): ``fetch`` is a pull
of up to ``count`` messages; ``done`` is ``ack``; ``retry_after(s)`` is ``nak(delay=s)``
(JetStream redelivers it after the delay and counts a delivery); ``dead(reason)`` publishes
the message with the reason to the dead-letter stream, then acks it. A killed consumer's
unacked messages come back after ``ack_wait`` (``redeliver_after_ms``); ``in_progress``
extends that for a long batch. JetStream stops redelivering after ``max_deliver`` and only
sends an advisory, leaving the message in place: the consumer is created with
``max_deliver = max_deliveries + 1``, so the engine always sees the delivery after the last
allowed one and dead-letters it itself.

:class:`JetStreamBus` is asyncio (nats-py is asyncio-only); :class:`BlockingJetStreamBus`
runs one on a private event loop thread for the sync :class:`Coordinator`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.api
import nats.js.errors

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.runtime._blocking import LoopThread
from damestoilet_contracts.runtime._envelope import STREAM_FIELD, STREAM_VERSION
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
from damestoilet_contracts.runtime.nats._layout import (
    NATS_ERRORS,
    backend_error,
    connect,
    dlq_subject,
    durable_name,
    ensure_stream,
    stream_name,
    translated,
)


class JetStreamBus:
    """One consumer of a consumer group (a durable pull consumer) on a JetStream subject."""

    def __init__(
        self,
        client: Any,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
        owns_client: bool = False,
    ) -> None:
        """Consume ``stream`` (the subject) with the durable consumer of ``group`` through
        the connected nats-py ``client``; ``dlq_stream`` defaults to ``<stream>:dlq``.
        ``consumer`` names this process in logs (JetStream hands each message of a durable
        pull consumer to one fetcher, whoever asks)."""
        self._nc = client
        self._js = client.jetstream()
        self._subject = stream
        self.group = group
        self.consumer = consumer or default_consumer()
        self.dlq_subject = dlq_stream or dlq_subject(stream)
        self.stream_name = stream_name(stream)
        self.durable = durable_name(group)
        self.policy = ConsumePolicy()
        self._owns_client = owns_client
        self._sub: Any = None
        # Stream sequence -> when (time.monotonic) its nak delay ends: retries not yet back.
        self._naked: dict[str, float] = {}
        # Stream sequence -> failed purge attempts counted by this process. JetStream's own
        # delivery count also counts redeliveries after a crash, which are no attempts; this
        # one is lost with the process (a restart tries again from 0, never dead-letters an
        # event sooner) and crash loops are bounded by the delivery count instead.
        self._attempts: dict[str, int] = {}
        # Stream sequence -> its deliveries so far, as reported (num_delivered) and never less
        # than one more than the last delivery this process saw: an older nats-server (2.9,
        # fixed in 2.10 by nats-server#5305 and #5338) redelivers a nak'd message that meets
        # an expiring pull request with a count of 1 again; a count going backwards makes a
        # letter say fewer deliveries than attempts and lets a crash loop run past
        # crash_deliveries.
        self._delivered: dict[str, int] = {}

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
    ) -> JetStreamBus:
        """A bus with its own connection to ``url`` (``nats://host:port``)."""
        client = await connect(url)
        return cls(
            client,
            stream=stream,
            group=group,
            consumer=consumer,
            dlq_stream=dlq_stream,
            owns_client=True,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
    ) -> _LazyJetStreamBus:
        """A bus for ``url`` that connects when opened (``await bus.open(policy)``), since a
        connection needs the event loop that will use it."""
        return _LazyJetStreamBus(
            url, stream=stream, group=group, consumer=consumer, dlq_stream=dlq_stream
        )

    @property
    def name(self) -> str:
        """The subject's name."""
        return self._subject

    @property
    def client(self) -> Any:
        """The nats-py client."""
        return self._nc

    async def open(self, policy: ConsumePolicy) -> None:
        """Create the stream, the dead-letter stream and the durable pull consumer."""
        self.policy = policy
        await ensure_stream(self._js, self._subject)
        await ensure_stream(self._js, self.dlq_subject)
        api = nats.js.api
        config = api.ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=api.DeliverPolicy.NEW if policy.ephemeral else api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=max(policy.redeliver_after_ms / 1000, 0.1),
            max_deliver=policy.max_deliveries + 1,
            max_ack_pending=-1,
            filter_subject=self._subject,
        )
        async with translated(f"cannot create consumer {self.durable} on {self.stream_name}"):
            if self._sub is None:
                self._sub = await self._js.pull_subscribe(
                    self._subject, durable=self.durable, stream=self.stream_name, config=config
                )

    async def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """Up to ``count`` messages, waiting up to ``wait_s`` for the first."""
        if self._sub is None:
            await self.open(self.policy)
        try:
            msgs = await self._sub.fetch(count, timeout=max(wait_s, 0.05))
        except (nats.errors.TimeoutError, TimeoutError):
            return []  # nothing came within wait_s
        except NATS_ERRORS as exc:
            raise backend_error(f"fetching from {self.stream_name} failed", exc) from exc
        out = []
        for msg in msgs:
            meta = msg.metadata
            seq = str(meta.sequence.stream)
            self._naked.pop(seq, None)
            deliveries = max(int(meta.num_delivered or 1), self._delivered.get(seq, 0) + 1)
            self._delivered[seq] = deliveries
            headers = msg.headers or {}
            out.append(Delivery(seq, {}, deliveries, msg, headers=headers, body=msg.data or b""))
        return out

    async def settle(self, settlement: Settlement) -> None:
        """Ack the done; nak the retries with their delay; dead-letter, then ack, the dead."""
        async with translated(f"settling messages of {self.stream_name} failed"):
            if settlement.dead:
                await self._dead_letter(settlement.dead)
            for delivery in settlement.done:
                await delivery.handle.ack()
                self._forget(delivery.id)
            for dead in settlement.dead:
                await dead.delivery.handle.ack()
                self._forget(dead.delivery.id)
            now = time.monotonic()
            for retry in settlement.retry:
                await retry.delivery.handle.nak(delay=retry.delay_s or None)
                self._naked[retry.delivery.id] = now + retry.delay_s
            await self._nc.flush()

    def _forget(self, seq: str) -> None:
        self._attempts.pop(seq, None)
        self._delivered.pop(seq, None)

    async def _dead_letter(self, dead: Sequence[Dead]) -> None:
        now = str(int(time.time() * 1000))
        futures = []
        for d in dead:
            msg = d.delivery.handle
            headers = dict(msg.headers or {})
            # The letter is its own message, with an id of its own: a kill between the letter
            # and the ack re-sends it within the duplicate window, and JetStream drops it.
            headers["Nats-Msg-Id"] = f"dlq:{self.group}:{d.delivery.id}"
            headers[DLQ_GROUP] = self.group
            headers[DLQ_REASON] = d.reason.replace("\r", " ").replace("\n", " ")
            headers[DLQ_STREAM] = self._subject
            headers[DLQ_ID] = d.delivery.id
            headers[DLQ_DELIVERIES] = str(d.delivery.deliveries)
            headers[DLQ_TIME] = now
            futures.append(
                await self._js.publish_async(self.dlq_subject, msg.data, headers=headers)
            )
        for future in futures:
            await future  # stored before the original is acked

    async def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """``in_progress`` each: JetStream restarts their ``ack_wait``."""
        async with translated(f"extending messages of {self.stream_name} failed"):
            for d in deliveries:
                await d.handle.in_progress()
            await self._nc.flush()

    async def backlog(self) -> Backlog:
        """The consumer's ``num_pending`` (lag) and ``num_ack_pending`` (pending)."""
        async with translated(f"reading consumer {self.durable} failed"):
            info = await self._js.consumer_info(self.stream_name, self.durable)
        return Backlog(int(info.num_pending or 0), int(info.num_ack_pending or 0))

    async def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Count one failed purge attempt for each of ``deliveries`` (in this process)."""
        out = []
        for d in deliveries:
            n = self._attempts.get(d.id, 0) + 1
            self._attempts[d.id] = n
            out.append(n)
        return out

    def take_lost(self) -> list[Lost]:
        """Nothing: a JetStream stream's limits drop messages without telling a consumer
        (``num_pending`` shrinks); size ``max_msgs``/``max_age`` for the slowest group."""
        return []

    def retries_waiting(self) -> bool:
        """Whether a nak'd message has not come back yet (allowing a second past its delay)."""
        now = time.monotonic()
        for seq, due in list(self._naked.items()):
            if due + 1.0 < now:
                del self._naked[seq]  # settled elsewhere, or gone: stop waiting for it
        return bool(self._naked)

    async def aclose(self) -> None:
        """Delete an ephemeral consumer; close the connection if this bus made it."""
        async with translated(f"closing consumer {self.durable} failed"):
            if self._sub is not None:
                await self._sub.unsubscribe()
                self._sub = None
            if self.policy.ephemeral:
                await self._js.delete_consumer(self.stream_name, self.durable)
            if self._owns_client:
                await self._nc.close()


class _LazyJetStreamBus:
    """A :class:`JetStreamBus` that connects on :meth:`open`, in the loop that awaits it."""

    def __init__(self, url: str, **options: Any) -> None:
        self._url = url
        self._options = options
        self._bus: JetStreamBus | None = None
        self.name = options["stream"]
        self.consumer = options.get("consumer")

    async def _ensure(self) -> JetStreamBus:
        if self._bus is None:
            self._bus = await JetStreamBus.connect(self._url, **self._options)
            self.consumer = self._bus.consumer
        return self._bus

    @property
    def inner(self) -> JetStreamBus | None:
        """The connected bus, once opened."""
        return self._bus

    async def open(self, policy: ConsumePolicy) -> None:
        await (await self._ensure()).open(policy)

    async def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        return await (await self._ensure()).fetch(count, wait_s)

    async def settle(self, settlement: Settlement) -> None:
        await (await self._ensure()).settle(settlement)

    async def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        await (await self._ensure()).in_progress(deliveries)

    async def backlog(self) -> Backlog:
        return await (await self._ensure()).backlog()

    def retries_waiting(self) -> bool:
        return self._bus is not None and self._bus.retries_waiting()

    async def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        return await (await self._ensure()).record_failures(deliveries)

    def take_lost(self) -> list[Lost]:
        return []

    async def aclose(self) -> None:
        if self._bus is not None:
            await self._bus.aclose()
            self._bus = None


class BlockingJetStreamBus:
    """A :class:`JetStreamBus` for sync code: its own event loop on a daemon thread."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
    ) -> None:
        """Connect to ``url`` on a private loop; the options are those of :class:`JetStreamBus`.
        Raises :class:`BackendError` when the server cannot be reached."""
        self._loop = LoopThread(f"damestoilet-nats-{stream}")
        self._bus: JetStreamBus = self._loop.run(
            JetStreamBus.connect(
                url, stream=stream, group=group, consumer=consumer, dlq_stream=dlq_stream
            )
        )
        self.consumer = self._bus.consumer
        self.group = group

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BlockingJetStreamBus:
        """See the constructor."""
        return cls(url, **options)

    @property
    def name(self) -> str:
        """The subject's name."""
        return self._bus.name

    @property
    def inner(self) -> JetStreamBus:
        """The asyncio bus doing the work."""
        return self._bus

    def run(self, coro: Any) -> Any:
        """Run ``coro`` on this bus's loop and return its result (for tests and tools)."""
        return self._loop.run(coro)

    def open(self, policy: ConsumePolicy) -> None:
        """See :meth:`JetStreamBus.open`."""
        self._loop.run(self._bus.open(policy))

    def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """See :meth:`JetStreamBus.fetch`."""
        out: list[Delivery] = self._loop.run(self._bus.fetch(count, wait_s))
        return out

    def settle(self, settlement: Settlement) -> None:
        """See :meth:`JetStreamBus.settle`."""
        self._loop.run(self._bus.settle(settlement))

    def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`JetStreamBus.in_progress`."""
        self._loop.run(self._bus.in_progress(deliveries))

    def backlog(self) -> Backlog:
        """See :meth:`JetStreamBus.backlog`."""
        out: Backlog = self._loop.run(self._bus.backlog())
        return out

    def retries_waiting(self) -> bool:
        """See :meth:`JetStreamBus.retries_waiting`."""
        return self._bus.retries_waiting()

    def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """See :meth:`JetStreamBus.record_failures`."""
        out: list[int] = self._loop.run(self._bus.record_failures(deliveries))
        return out

    def take_lost(self) -> list[Lost]:
        """See :meth:`JetStreamBus.take_lost`."""
        return self._bus.take_lost()

    def close(self) -> None:
        """Close the consumer (deleting an ephemeral one) and the connection, then the loop."""
        try:
            self._loop.run(self._bus.aclose())
        finally:
            self._loop.stop()


async def read_last_async(url: str, subject: str, count: int) -> list[tuple[str, Any]]:
    """The last ``count`` messages of ``subject``, oldest first, as ``(sequence, fields)``
    with the envelope in the version-2 field ``e`` (what the verifier samples); a message
    that is not an envelope keeps its body there, to be reported as unreadable."""
    from damestoilet_contracts.runtime._core import decode

    nc = await connect(url)
    try:
        js = nc.jetstream()
        name = stream_name(subject)
        async with translated(f"reading {name} failed"):
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                return []
            out: list[tuple[str, Any]] = []
            seq = int(info.state.last_seq)
            first = max(1, int(info.state.first_seq))
            while seq >= first and len(out) < count:
                try:
                    raw = await js.get_msg(name, seq)
                except nats.js.errors.NotFoundError:
                    seq -= 1
                    continue
                delivery = Delivery(str(seq), {}, headers=raw.headers or {}, body=raw.data or b"")
                try:
                    body = decode(delivery).to_bytes(version=STREAM_VERSION)
                except EnvelopeError:
                    body = raw.data or b""
                out.append((str(seq), {STREAM_FIELD.encode(): body}))
                seq -= 1
            return out[::-1]
    finally:
        await nc.close()


def read_last(url: str, subject: str, count: int) -> list[tuple[str, Any]]:
    """Sync :func:`read_last_async` (its own event loop)."""
    loop = LoopThread("damestoilet-nats-tail")
    try:
        return loop.run(read_last_async(url, subject, count))
    finally:
        loop.stop()
