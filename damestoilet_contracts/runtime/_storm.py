"""The storm guard's policy, without I/O: how many keys one purge op may still delete outright,
and when each of the rest goes stale instead.

A target with ``storm_max_keys`` in ``flush-graph.yaml`` (:class:`~damestoilet_contracts.model.
StormGuard`) bounds a wide purge: of the keys one ``delete`` op of a stage matches (a prefix or
a tag), the first ``max_keys`` are deleted and every further one is *spread*: it keeps serving
its value until a moment drawn uniformly from ``[0, spread_seconds)`` after the purge, then goes
stale the way a soft purge makes it (one reader refills, the others get the stale value for the
target's grace window). The refills of a 50,000-key tag then reach the source at about
``keys / spread_seconds`` a second instead of all at once. ``mode: hard`` ops (``storm: never``
in a schema) and soft ops are never spread.

A budget lives for one stage of one purge target call; a backend asks it, page by page as it
finds an op's keys, which of them to delete and which to spread.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from damestoilet_contracts.model import StormGuard

K = TypeVar("K")


@dataclass(slots=True)
class Engaged:
    """What the guard did to one op of a stage: keys deleted outright and keys spread."""

    deleted: int = 0
    spread: int = 0


@dataclass(slots=True)
class StormBudget:
    """The keys each guarded op of one stage has deleted so far, and what was spread."""

    rng: random.Random = field(default_factory=random.Random)
    #: Per op (any hashable that names it), what the guard did, for logs and metrics.
    ops: dict[Hashable, Engaged] = field(default_factory=dict)

    def split(
        self, op: Hashable, guard: StormGuard, keys: Sequence[K]
    ) -> tuple[Sequence[K], Sequence[K]]:
        """``keys`` (the next page that ``op`` matched) cut into those to delete now and
        those to spread, so that ``op`` deletes at most ``guard.max_keys`` in all."""
        seen = self.ops.setdefault(op, Engaged())
        room = max(0, guard.max_keys - seen.deleted)
        now, later = keys[:room], keys[room:]
        seen.deleted += len(now)
        seen.spread += len(later)
        return now, later

    def delays_ms(self, guard: StormGuard, count: int) -> list[int]:
        """When each of ``count`` spread keys goes stale, in ms from now: uniform over the
        window, so the refills arrive at a bounded rate."""
        window = guard.spread_seconds * 1000.0
        uniform = self.rng.uniform
        return [int(uniform(0.0, window)) for _ in range(count)]

    @property
    def spread(self) -> int:
        """Keys spread in this stage, over every op."""
        return sum(e.spread for e in self.ops.values())

    def engaged(self) -> dict[Hashable, Engaged]:
        """The ops whose keys the guard spread (some), with their counts."""
        return {op: e for op, e in self.ops.items() if e.spread}
