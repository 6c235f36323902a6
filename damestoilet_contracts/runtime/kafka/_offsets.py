"""Which offset of each partition a Kafka consumer may commit: the contiguous settled prefix.

Kafka remembers one offset per partition and group: where a restarted member resumes. A
coordinator settles a batch's messages out of order (a failed purge is held for a retry while
the ones after it are purged), so it may commit an offset only when every message before it
on that partition is settled (purged, skipped as a duplicate, or dead-lettered). Committing
past one still retrying would lose it in a crash; committing short of settled ones only means
they are purged again after a restart (purges are idempotent, and the done store skips them).

The prefix is taken over the offsets actually fetched, not over integers: a compacted topic or
transaction markers leave gaps, and an offset never fetched cannot be waited for.

No I/O: the Kafka bus calls :meth:`OffsetTracker.fetched` and :meth:`~OffsetTracker.settled`
as messages come and go, and commits what :meth:`~OffsetTracker.commits` answers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

#: What names a partition: its number on a bus that reads one topic, or (topic, number).
P = TypeVar("P", bound=Hashable)


@dataclass(slots=True)
class _Partition:
    #: Fetched offsets in fetch order (increasing), settled or not, after the settled prefix.
    order: deque[int] = field(default_factory=deque)
    #: Of those, the ones not settled yet.
    open: set[int] = field(default_factory=set)
    #: The next offset to read after the settled prefix; None until something was fetched.
    position: int | None = None
    #: What was last committed (or read as committed); None: nothing yet.
    committed: int | None = None
    last_fetched: int = -1


class OffsetTracker(Generic[P]):
    """Fetched and settled offsets per partition, and the offsets safe to commit."""

    def __init__(self) -> None:
        self._parts: dict[P, _Partition] = {}

    def assign(self, partition: P, committed: int | None = None) -> None:
        """Start tracking ``partition`` afresh (it was just assigned), at ``committed`` if the
        group has a committed offset there."""
        self._parts[partition] = _Partition(committed=committed, position=committed)

    def fetched(self, partition: P, offset: int) -> None:
        """Record that ``offset`` of ``partition`` was handed out. Offsets of a partition must
        come in increasing order; raises ValueError otherwise (a seek backwards must
        :meth:`assign` the partition again first)."""
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition()
        if offset <= part.last_fetched:
            raise ValueError(
                f"offset {offset} of partition {partition!r} fetched after {part.last_fetched};"
                " a partition read again from an earlier offset must be assigned afresh"
            )
        part.last_fetched = offset
        part.order.append(offset)
        part.open.add(offset)

    def settled(self, partition: P, offset: int) -> None:
        """Record that ``offset`` is purged, skipped or dead-lettered. Settling an offset this
        tracker does not hold (its partition was revoked meanwhile) does nothing."""
        part = self._parts.get(partition)
        if part is None or offset not in part.open:
            return  # settled before, never fetched, or from an earlier assignment
        part.open.discard(offset)
        order, still_open = part.order, part.open
        while order and order[0] not in still_open:
            part.position = order.popleft() + 1

    def position(self, partition: P) -> int | None:
        """The offset after the settled prefix of ``partition`` (None: nothing settled)."""
        part = self._parts.get(partition)
        return None if part is None else part.position

    def unsettled(self, partition: P) -> int:
        """How many fetched offsets of ``partition`` are not settled yet."""
        part = self._parts.get(partition)
        return 0 if part is None else len(part.open)

    def commits(self) -> dict[P, int]:
        """The offsets to commit now: per partition whose settled prefix moved since it was last
        committed, the offset after that prefix (Kafka's "next offset to read")."""
        return {
            p: part.position
            for p, part in self._parts.items()
            if part.position is not None and part.position != part.committed
        }

    def committed(self, offsets: dict[P, int]) -> None:
        """Record that ``offsets`` were committed (as :meth:`commits` gave them)."""
        for p, offset in offsets.items():
            part = self._parts.get(p)
            if part is not None:
                part.committed = offset

    def revoke(self, partitions: Iterable[P]) -> dict[P, int]:
        """Stop tracking ``partitions`` (a rebalance took them); returns what of theirs is still
        to commit, for the bus to commit before it lets them go."""
        out: dict[P, int] = {}
        for p in partitions:
            part = self._parts.pop(p, None)
            if part is not None and part.position is not None and part.position != part.committed:
                out[p] = part.position
        return out

    def partitions(self) -> list[P]:
        """The partitions tracked now."""
        return list(self._parts)
