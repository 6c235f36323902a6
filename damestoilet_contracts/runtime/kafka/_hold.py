"""The Kafka bus's retry policy: a bounded in-memory hold, with pause and resume.

Kafka has no per-message redelivery: a consumer group only remembers one offset per
partition. A failed purge is therefore kept here until its backoff is over and handed out
again by the same consumer, while the messages after it on its partition go on being purged;
the :class:`~runtime.kafka._offsets.OffsetTracker` does not commit past it, so a crash or a
rebalance redelivers it from the committed offset (the done store skips its settled
neighbours). When a partition holds ``capacity`` retries, the bus pauses that partition (no
more fetching from it) until some come due: a target that is down cannot make a consumer read
its whole backlog into memory.

Why not a retry topic (Uber's design, Spring Kafka's ``@RetryableTopic``): a retry topic
costs a produce, a second consumer and a commit per retry, its delay is only as exact as that
consumer's polling, and copying the message then committing the original is two writes that
a crash can separate. It pays off when one message may wait minutes or hours; here a retry
waits at most ``retry_max`` seconds and ``max_deliveries`` retries end in the dead-letter
topic, so the commit point of a partition is held back for at most the sum of the backoffs,
and nothing behind it waits for its purge. The hold is lost in a crash, which costs only
re-purging from the committed offset.

No I/O: the bus asks :meth:`RetryHold.due` for what to hand out again, and
:meth:`RetryHold.to_pause` / :meth:`RetryHold.to_resume` what to pause and resume.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

#: What names a partition (as in :class:`~runtime.kafka._offsets.OffsetTracker`).
P = TypeVar("P", bound=Hashable)
#: What is held: the bus's own record of a message.
T = TypeVar("T")

#: Retries one partition may hold before the bus pauses it.
DEFAULT_CAPACITY = 1_000


@dataclass(order=True, slots=True)
class _Held(Generic[P, T]):
    due: float
    seq: int
    partition: P = field(compare=False)
    item: T = field(compare=False)
    #: The partition's epoch when it was held: a drop starts a new one.
    epoch: int = field(compare=False, default=0)


class RetryHold(Generic[P, T]):
    """Messages waiting for their retry, per partition, due in order of their due time."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a retry hold needs a capacity of at least 1, not {capacity}")
        self.capacity = capacity
        self._heap: list[_Held[P, T]] = []
        self._count: dict[P, int] = {}
        self._paused: set[P] = set()
        self._epoch: dict[P, int] = {}
        self._seq = itertools.count()

    def hold(self, partition: P, item: T, due: float) -> None:
        """Keep ``item`` of ``partition`` until time ``due`` (the bus's clock, seconds)."""
        epoch = self._epoch.get(partition, 0)
        heapq.heappush(self._heap, _Held(due, next(self._seq), partition, item, epoch))
        self._count[partition] = self._count.get(partition, 0) + 1

    def due(self, now: float, limit: int | None = None) -> list[T]:
        """Take out the items due at ``now``, earliest first, at most ``limit``."""
        out: list[T] = []
        heap = self._heap
        while heap and heap[0].due <= now and (limit is None or len(out) < limit):
            held = heapq.heappop(heap)
            if self._stale(held):
                continue  # its partition was revoked meanwhile
            self._count[held.partition] -= 1
            out.append(held.item)
        return out

    def next_due(self) -> float | None:
        """When the earliest held item comes due (None: nothing held)."""
        while self._heap and self._stale(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    def held(self, partition: P | None = None) -> int:
        """How many items are held for ``partition`` (None: in all)."""
        if partition is None:
            return sum(self._count.values())
        return self._count.get(partition, 0)

    def to_pause(self) -> list[P]:
        """Partitions that just reached the capacity: pause them now (they count as paused
        from here on)."""
        full = [p for p, n in self._count.items() if n >= self.capacity and p not in self._paused]
        self._paused.update(full)
        return full

    def to_resume(self) -> list[P]:
        """Paused partitions back under the capacity: resume them now."""
        ready = [p for p in self._paused if self._count.get(p, 0) < self.capacity]
        self._paused.difference_update(ready)
        return ready

    def drop(self, partitions: Iterable[P]) -> int:
        """Forget what ``partitions`` hold (a rebalance took them: their new owner reads them
        again from the committed offset); returns how many items were dropped."""
        dropped = 0
        for p in partitions:
            dropped += self._count.pop(p, 0)
            self._paused.discard(p)
            self._epoch[p] = self._epoch.get(p, 0) + 1
        if not self._count:
            self._heap.clear()
        return dropped

    def _stale(self, held: _Held[P, T]) -> bool:
        return held.epoch != self._epoch.get(held.partition, 0)
