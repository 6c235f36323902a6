"""The seams of the runtime: the small protocols the coordinator engine is written against, so
that it knows no broker and no store. Each has one implementation per backend sub-package
(``runtime/redis/``, ``runtime/nats/``, ...), picked by URL scheme (:mod:`runtime._registry`).

- :class:`Bus` / :class:`AsyncBus`: fetch a batch of :class:`Delivery`; settle each as done,
  retry after a delay, or dead with a reason; report the :class:`Backlog`. Redelivery,
  claiming a dead consumer's work and the retry schedule belong to the backend.
- :class:`Publisher` / :class:`AsyncPublisher`: what emitters (and an outbox relay) write
  envelopes through.
- :class:`DoneStore` / :class:`AsyncDoneStore`: which event ids a consumer group already
  purged (dedup beyond what the bus itself drops).
- :class:`PurgeTarget` / :class:`AsyncPurgeTarget`: executes one stage of ops; a
  :class:`~runtime._router.TargetRouter` sends each op to the backend bound to its target.

Backends raise only the project's errors (:class:`BackendError` for a failing or unreachable
server, :class:`PurgeError` from a purge): the engine never sees a client library's exception.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime._envelope import Envelope

#: The default stream (Redis stream, JetStream subject) and consumer group.
DEFAULT_STREAM = "damestoilet:events"
DEFAULT_GROUP = "damestoilet-coordinator"
#: Default approximate cap of a stream's length; older entries are trimmed as new ones come.
DEFAULT_MAXLEN = 1_000_000
#: How long an event id stays marked done (s) by default.
DEFAULT_DONE_TTL_S = 300

#: Fields (Redis) or headers (NATS) a dead letter adds to the original message.
DLQ_REASON = "dlq_reason"
DLQ_STREAM = "dlq_stream"
DLQ_ID = "dlq_id"
DLQ_DELIVERIES = "dlq_deliveries"
DLQ_TIME = "dlq_time"
#: The consumer group that dead-lettered it (letters written before this field have none).
DLQ_GROUP = "dlq_group"
DLQ_FIELDS = (DLQ_REASON, DLQ_STREAM, DLQ_ID, DLQ_DELIVERIES, DLQ_TIME, DLQ_GROUP)


def default_consumer() -> str:
    """A consumer name unique to this process on this host: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def dlq_stream_name(stream: str) -> str:
    """The default dead-letter stream of ``stream``: ``<stream>:dlq``."""
    return f"{stream}:dlq"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the bus delivered it.

    ``id`` is the bus's own id of the message (a stream entry id, a JetStream sequence);
    ``fields`` its envelope fields (Redis), empty when the bus lost the message before it
    was processed; ``deliveries`` counts this one. A bus with message headers (NATS, Kafka)
    gives ``headers`` and ``body`` instead: a CloudEvent in binary mode of its ``binding``
    (or, without ``ce-`` headers, an envelope's bytes as the body). ``handle`` is the
    backend's own object for settling it (never looked at by the engine).
    """

    id: str
    fields: Mapping[bytes, bytes]
    deliveries: int = 1
    handle: Any = field(default=None, compare=False, repr=False)
    headers: Mapping[str, str] | None = None
    body: bytes = field(default=b"", repr=False)
    binding: str = "nats"


@dataclass(frozen=True, slots=True)
class Retry:
    """Settle ``delivery`` as failed: deliver it again after ``delay_s`` seconds."""

    delivery: Delivery
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Dead:
    """Settle ``delivery`` as dead: copy it with ``reason`` to the dead letters, then ack it."""

    delivery: Delivery
    reason: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one batch ends, for the bus to carry out in as few round trips as it can."""

    done: Sequence[Delivery] = ()
    retry: Sequence[Retry] = ()
    dead: Sequence[Dead] = ()


@dataclass(frozen=True, slots=True)
class Backlog:
    """A consumer group's backlog: messages not yet delivered (None: unknown), delivered but
    not settled, and messages lost (trimmed, expired) before they were settled, counted since
    this bus was opened."""

    lag: int | None
    pending: int
    lost: int = 0


@dataclass(frozen=True, slots=True)
class ConsumePolicy:
    """What the engine asks of a bus when it opens it; each backend maps it to its own terms
    (Redis: XAUTOCLAIM idle time; JetStream: ``ack_wait``, ``max_deliver``)."""

    #: A delivery left unsettled this long (a consumer died) is delivered again (ms).
    redeliver_after_ms: int = 60_000
    #: How often to look for such deliveries, where the backend must look itself (s).
    reclaim_interval_s: float = 30.0
    #: The engine dead-letters, unread, a delivery whose count passes this (read that often
    #: and never settled: it may be what kills consumers); a backend that stops redelivering
    #: by itself must still deliver once more than this. Failed purge attempts are counted
    #: apart (:meth:`Bus.record_failures`).
    max_deliveries: int = 50
    #: The group is this process's own (an in-process cache's listener): it starts at the
    #: end of the stream, since a new cache holds nothing older, and is deleted on close.
    ephemeral: bool = False


@dataclass(frozen=True, slots=True)
class Lost:
    """Entries trimmed from the stream before the group read them: ``count`` of them (-1:
    some, how many is unknown), between ids ``after`` and ``before`` (both exclusive)."""

    count: int
    after: str
    before: str


class Bus(Protocol):
    """One consumer of a consumer group, at-least-once: what is fetched and not settled is
    delivered again (after a crash: once ``redeliver_after_ms`` passed)."""

    @property
    def name(self) -> str:
        """The stream or subject this bus reads, for logs."""
        ...

    def open(self, policy: ConsumePolicy) -> None:
        """Create what consuming needs (stream, group, consumer) if it does not exist."""
        ...

    def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """Up to ``count`` deliveries, waiting up to ``wait_s`` when there are none: the
        consumer's own unsettled ones first, then due retries, reclaimed and new ones."""
        ...

    def settle(self, settlement: Settlement) -> None:
        """Ack the done, schedule the retries, dead-letter (then ack) the dead."""
        ...

    def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """Tell the bus these are still being worked on, so they are not redelivered."""
        ...

    def backlog(self) -> Backlog:
        """The group's lag, pending and lost counts."""
        ...

    def retries_waiting(self) -> bool:
        """Whether this consumer has retries scheduled and not yet delivered again."""
        ...

    def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Count one failed purge attempt for each of ``deliveries``; their counts so far.
        Only a purge that ran and failed is an attempt: a restart, a kill or a reclaim that
        delivers a message again is none. :meth:`settle` forgets the counts it settles."""
        ...

    def take_lost(self) -> list[Lost]:
        """Messages the bus found lost (trimmed, expired) before delivery since the last
        call; the engine logs each gap as an ERROR."""
        ...

    def close(self) -> None:
        """Stop consuming: delete an ephemeral group, release the connection if this bus
        made it."""
        ...


class AsyncBus(Protocol):
    """:class:`Bus` for asyncio code: the same verbs, awaited."""

    @property
    def name(self) -> str:
        """The stream or subject this bus reads, for logs."""
        ...

    async def open(self, policy: ConsumePolicy) -> None:
        """See :meth:`Bus.open`."""
        ...

    async def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """See :meth:`Bus.fetch`."""
        ...

    async def settle(self, settlement: Settlement) -> None:
        """See :meth:`Bus.settle`."""
        ...

    async def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`Bus.in_progress`."""
        ...

    async def backlog(self) -> Backlog:
        """See :meth:`Bus.backlog`."""
        ...

    def retries_waiting(self) -> bool:
        """See :meth:`Bus.retries_waiting`."""
        ...

    async def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """See :meth:`Bus.record_failures`."""
        ...

    def take_lost(self) -> list[Lost]:
        """See :meth:`Bus.take_lost`."""
        ...

    async def aclose(self) -> None:
        """See :meth:`Bus.close`."""
        ...


class Publisher(Protocol):
    """Appends encoded envelopes to a bus, in order, at least once."""

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Append ``envelopes`` in order (the bus may drop a re-sent id). Raises
        :class:`BackendError` when the bus fails."""
        ...

    def close(self) -> None:
        """Release the connection if this publisher made it."""
        ...


class AsyncPublisher(Protocol):
    """:class:`Publisher` for asyncio code."""

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """See :meth:`Publisher.publish`."""
        ...

    async def aclose(self) -> None:
        """See :meth:`Publisher.close`."""
        ...


class DoneStore(Protocol):
    """Remembers, per consumer group, the event ids whose purge succeeded."""

    def seen(self, group: str, ids: Sequence[str]) -> set[int]:
        """The positions in ``ids`` of the ids already done for ``group``."""
        ...

    def mark(self, group: str, ids: Sequence[str], ttl_s: int) -> None:
        """Remember ``ids`` as done for ``group`` for ``ttl_s`` seconds."""
        ...


class AsyncDoneStore(Protocol):
    """:class:`DoneStore` for asyncio code."""

    async def seen(self, group: str, ids: Sequence[str]) -> set[int]:
        """See :meth:`DoneStore.seen`."""
        ...

    async def mark(self, group: str, ids: Sequence[str], ttl_s: int) -> None:
        """See :meth:`DoneStore.mark`."""
        ...


class StageOps(list[FlushOp]):
    """The ops of one stage of a batch, a plain list to any purge target, that also says which
    event each op came from: ``self[ends[i - 1]:ends[i]]`` are the ops of event ``ids[i]``.

    A coordinator hands these to its purge target, so a backend can bound what *one event*
    does (the storm guard over a stage's exact keys); routers and agents that pass a part of a
    stage on keep the owners with :meth:`take`."""

    __slots__ = ("ends", "ids")

    def __init__(
        self, ops: Sequence[FlushOp] = (), ids: Sequence[str] = (), ends: Sequence[int] = ()
    ) -> None:
        super().__init__(ops)
        self.ids = tuple(ids)
        self.ends = tuple(ends)

    def events(self) -> list[tuple[str, Sequence[FlushOp]]]:
        """Each event of the stage with its ops, in order."""
        out: list[tuple[str, Sequence[FlushOp]]] = []
        start = 0
        for event_id, end in zip(self.ids, self.ends, strict=True):
            out.append((event_id, self[start:end]))
            start = end
        return out

    def take(self, indices: Sequence[int]) -> StageOps:
        """The ops at ``indices`` (ascending), each still with its event."""
        ops: list[FlushOp] = []
        ids: list[str] = []
        ends: list[int] = []
        event, last = 0, -1
        for i in indices:
            while i >= self.ends[event]:
                event += 1
            ops.append(self[i])
            if event == last:
                ends[-1] = len(ops)
            else:
                ids.append(self.ids[event])
                ends.append(len(ops))
                last = event
        return StageOps(ops, ids, ends)


class PurgeTarget(Protocol):
    """Executes one stage of a flush plan; raises on failure, returns statistics or None.
    ``ops`` may be :class:`StageOps` (a list that also names each op's event)."""

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """Purge every operation of ``ops`` (one stage); raise :class:`PurgeError` on failure."""
        ...


class AsyncPurgeTarget(Protocol):
    """:class:`PurgeTarget` for asyncio code."""

    async def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """See :meth:`PurgeTarget.purge_stage`."""
        ...


#: Computes the plan of an event from its encoded payload (a generated flush handler).
FlushHandler: TypeAlias = Callable[[bytes], Plan]

#: Flush handlers by event type full name, as a handlers package exposes them in ``HANDLERS``.
HandlerRegistry: TypeAlias = Mapping[str, FlushHandler]
