"""The seams of the runtime: the small protocols the coordinator is written against, so that
it needs no concrete broker or purge backend.

The bus a coordinator consumes from is a stream with a consumer group, at-least-once
delivery, per-entry delivery counts and a dead-letter stream; Redis Streams implement it in
:mod:`runtime.redis._bus`. A purge target executes one stage of a plan; the Redis targets in
:mod:`runtime.redis._purge` satisfy :class:`PurgeTarget`, and so may others."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from damestoilet_contracts.model import FlushOp, Plan

#: Fields a dead-letter entry adds to the original fields.
DLQ_REASON = "dlq_reason"
DLQ_STREAM = "dlq_stream"
DLQ_ID = "dlq_id"
DLQ_DELIVERIES = "dlq_deliveries"
DLQ_TIME = "dlq_time"
#: The consumer group that dead-lettered it (letters written before this field have none).
DLQ_GROUP = "dlq_group"
DLQ_FIELDS = (DLQ_REASON, DLQ_STREAM, DLQ_ID, DLQ_DELIVERIES, DLQ_TIME, DLQ_GROUP)


def dlq_stream_name(stream: str) -> str:
    """The default dead-letter stream of ``stream``: ``<stream>:dlq``."""
    return f"{stream}:dlq"


@dataclass(frozen=True, slots=True)
class BusEntry:
    """One entry read from the bus: its id, its raw fields and how often it was delivered."""

    id: str
    fields: Mapping[bytes, bytes]
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a reclaim returned: entries now owned by this consumer, and ids the stream lost."""

    entries: list[BusEntry] = field(default_factory=list)
    # Ids that were pending but whose entries were trimmed away (MAXLEN) before anyone acked.
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """The consumer group's backlog: entries not yet delivered (None if unknown) and pending."""

    lag: int | None
    pending: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Entries trimmed from the stream before the group read them: ``count`` of them (-1:
    some, how many is unknown), between ids ``after`` and ``before`` (both exclusive)."""

    count: int
    after: str
    before: str


class Bus(Protocol):
    """A stream read by one consumer of a consumer group."""

    @property
    def stream(self) -> str:
        """The stream's name."""
        ...

    def ensure_group(self) -> None:
        """Create the stream and the consumer group if they do not exist."""
        ...

    def read_new(self, count: int, block_ms: int) -> list[BusEntry]:
        """Up to ``count`` entries never delivered to the group, waiting up to ``block_ms``."""
        ...

    def read_pending(self, after: str, count: int) -> list[BusEntry]:
        """Up to ``count`` of this consumer's own pending entries with ids after ``after``."""
        ...

    def claim(self, ids: Sequence[str]) -> list[BusEntry]:
        """Take ``ids`` (again) for this consumer, counting a delivery each; for retries."""
        ...

    def claim_idle(self, min_idle_ms: int, count: int) -> Claimed:
        """Take entries idle at least ``min_idle_ms`` in any consumer of the group."""
        ...

    def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge ``ids``: they are done and leave the pending list."""
        ...

    def dead_letter(self, entries: Sequence[tuple[BusEntry, str]]) -> None:
        """Copy each entry with its reason to the dead-letter stream (does not acknowledge);
        once per entry, even when a crash came between the letter and the ack."""
        ...

    def take_lost(self) -> list[Lost]:
        """Entries reads found trimmed before delivery since the last call."""
        ...

    def record_failures(self, ids: Sequence[str]) -> list[int]:
        """Count one failed purge attempt for each of ``ids``; their counts so far (reads,
        restarts and reclaims are no attempts)."""
        ...

    def forget_failures(self, ids: Sequence[str]) -> None:
        """Drop the failed-attempt counts of ``ids``, now settled."""
        ...

    def group_info(self) -> GroupInfo:
        """The group's lag and pending count."""
        ...


class PurgeTarget(Protocol):
    """Executes one stage of a flush plan; raises on failure, returns statistics or None."""

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """Purge every operation of ``ops`` (one stage); raise :class:`PurgeError` on failure."""
        ...


#: Computes the plan of an event from its encoded payload (a generated flush handler).
FlushHandler: TypeAlias = Callable[[bytes], Plan]

#: Flush handlers by event type full name, as a handlers package exposes them in ``HANDLERS``.
HandlerRegistry: TypeAlias = Mapping[str, FlushHandler]
