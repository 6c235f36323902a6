"""The storm guard's policy, without I/O: how many keys one purge op may still delete outright,
and when each of the rest goes stale instead.

A target with ``storm_max_keys`` in ``flush-graph.yaml`` (:class:`~damestoilet_contracts.model.
StormGuard`) bounds a wide purge: of the keys one ``delete`` op of a stage matches (a prefix or
a tag), the first ``max_keys`` are deleted and every further one is *spread*: it keeps serving
its value until a moment in ``[0, spread_seconds)`` after the purge (stratified jitter: see
:meth:`StormBudget.delays_ms`), then goes stale the way a soft purge makes it (one reader
refills, the others get the stale value for the target's grace window). The refills of a
50,000-key tag then reach the source at about ``keys / spread_seconds`` a second instead of
all at once. ``mode: hard`` ops (``storm: never``
in a schema) and soft ops are never spread.

A budget lives for one stage of one purge target call; a backend asks it, page by page as it
finds an op's keys, which of them to delete and which to spread. The backend returns what the
guard did as :class:`Engagement` records (in ``PurgeStats.storm``); it sees only ops, so the
coordinator's batch core, which knows which event each op of a stage came from, logs each one
with its event id(s) (:func:`report`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime._logging import log_fields

logger = logging.getLogger("damestoilet.purge")

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
        """When each of ``count`` spread keys goes stale, in ms from now: stratified jitter
        over the window (the window cut into ``count`` equal slices, one moment drawn
        uniformly in each) and shuffled, so that the i-th key is not the i-th slice.

        Independent uniform moments bunch (a 1 s slice of the window gets its expected share
        plus or minus its square root); stratified ones give every slice its share, give or
        take one key, so when readers refill a key as soon as it goes stale the refills are as
        even as the moments."""
        if count <= 0:
            return []
        step = guard.spread_seconds * 1000.0 / count
        random_ = self.rng.random
        delays = [int((i + random_()) * step) for i in range(count)]
        self.rng.shuffle(delays)
        return delays

    @property
    def spread(self) -> int:
        """Keys spread in this stage, over every op."""
        return sum(e.spread for e in self.ops.values())

    def engaged(self) -> dict[Hashable, Engaged]:
        """The ops whose keys the guard spread (some), with their counts."""
        return {op: e for op, e in self.ops.items() if e.spread}


@dataclass(frozen=True, slots=True)
class Engagement:
    """What the guard did to one op of a stage: which op (its kind and its prefix or tag),
    the keys it deleted and spread, and the guard that did it. For exact keys (``op`` is
    ``key``): the keys one event had for one target, ``text`` the first one spread, and the
    ``event`` (its id), which the backend knows from the stage's ops. ``target``: the target
    whose guard it was ("" from a backend that does not say)."""

    op: str
    text: str
    deleted: int
    spread: int
    max_keys: int
    spread_seconds: float
    event: str | None = None
    target: str = ""

    def owned_by(self, event_id: str, ops: Iterable[FlushOp]) -> bool:
        """Whether event ``event_id``, with ``ops`` of the stage, holds the guarded op(s) this
        engagement stands for."""
        if self.event is not None:
            return self.event == event_id
        return any(o.op == self.op and o.key == self.text and o.mode == "delete" for o in ops)


def owners(
    engagement: Engagement, stage: Sequence[tuple[str, Sequence[FlushOp]]]
) -> tuple[list[str], bool]:
    """The ids of the events of ``stage`` (per event, its id and its ops of the stage) that
    ``engagement`` came from, and whether any op says so: when none holds it (a backend that
    renamed the op), every id of the stage, as the events it may have come from."""
    ids = [event_id for event_id, ops in stage if engagement.owned_by(event_id, ops)]
    if ids:
        return ids, True
    return [event_id for event_id, _ in stage], False


def report(
    engagements: Iterable[Engagement], stage: Sequence[tuple[str, Sequence[FlushOp]]]
) -> None:
    """Log one WARNING ``storm_guard`` line per engagement of a stage, with the event(s) it
    came from: ``stage`` holds, per event of the stage, its id and its ops of the stage. One
    event: its ``id``; an op that several events of the batch share (purged once for all):
    every one of their ``ids``; when no op of the stage matches (a backend that renamed it),
    the ``ids`` of the whole stage, as the events it may have come from."""
    for e in engagements:
        ids, attributed = owners(e, stage)
        who: dict[str, object]
        if len(ids) == 1 and attributed:
            who = {"id": ids[0]}
        else:
            who = {"ids": ids, "attributed": attributed}
        log_fields(
            logger,
            logging.WARNING,
            "storm_guard",
            {
                **who,
                "target": e.target,
                "op": e.op,
                "text": e.text,
                "deleted": e.deleted,
                "spread": e.spread,
                "max_keys": e.max_keys,
                "spread_seconds": e.spread_seconds,
            },
        )
