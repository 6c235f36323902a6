"""Assertions about what an event purges: its plan (pure), and a real purge end to end.

:func:`assert_plan` checks the keys an event's flush plan names, without any I/O.
:class:`PurgeCheck` does what production does: fills a cache entry under every op of the
plan, emits the event onto a real stream, lets a coordinator drain it, and then requires
every entry purged (gone, or marked stale by a soft purge).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import (
    Cache,
    ContractEvent,
    Coordinator,
    CoordinatorConfig,
    CoordinatorStats,
    Emitter,
)
from damestoilet_contracts.runtime.redis import _layout as layout

__tracebackhide__ = True


def assert_plan(event: ContractEvent, keys: Iterable[str]) -> None:
    """Assert that ``event``'s flush plan names exactly ``keys`` (keys, prefixes and tags,
    in any order); the message lists what is missing and what is unexpected."""
    __tracebackhide__ = True
    wanted = list(keys)
    planned = [op.key for op in event.flush_plan().ops]
    missing = [k for k in wanted if k not in planned]
    unexpected = [k for k in planned if k not in wanted]
    if missing or unexpected:
        raise AssertionError(
            f"{event.EVENT_TYPE} plans {planned}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not expected {unexpected}" if unexpected else "")
        )


@dataclass
class Drain:
    """Runs a coordinator over one stream until nothing is left to read, as often as asked."""

    redis_url: str
    stream: str
    grace: dict[str, float] = field(default_factory=dict)
    #: What every drain so far purged, summed.
    stats: CoordinatorStats = field(default_factory=CoordinatorStats)

    def __call__(self) -> CoordinatorStats:
        """Drain the stream: purge every event on it, then return. Returns the run's stats."""
        config = CoordinatorConfig(stream=self.stream, block_ms=20, claim_interval_s=3600.0)
        coordinator = Coordinator.from_url(self.redis_url, config, grace=self.grace or None)
        coordinator.stats = self.stats
        coordinator.run(stop_when_idle=True)
        return self.stats


@dataclass
class PurgeCheck:
    """``assert_purges(event, keys)``: the plan names ``keys`` and a real purge clears them."""

    client: redis.Redis
    emitter: Emitter
    drain: Drain

    def __call__(self, event: ContractEvent, keys: Iterable[str]) -> None:
        __tracebackhide__ = True
        assert_plan(event, keys)
        cache = Cache(self.client)
        seeded = [self._seed(cache, op) for op in event.flush_plan().ops]
        self.emitter.emit(event)
        self.drain()
        left = [
            f"{key} (from {op.op} {op.key!r}, target {op.target})"
            for key, op in seeded
            if not self._purged(key, op)
        ]
        if left:
            raise AssertionError(f"{event.EVENT_TYPE} left entries unpurged: {left}")

    def _seed(self, cache: Cache, op: FlushOp) -> tuple[str, FlushOp]:
        # One cache entry each op must reach: the key itself, a key under the prefix, or a
        # key filled under the tag.
        tags: tuple[str, ...] = ()
        if op.op == "key":
            key = op.key
        elif op.op == "prefix":
            key = f"{op.key}{uuid.uuid4().hex}"
        else:
            key, tags = f"damestoilet-test:{uuid.uuid4().hex}", (op.key,)
        cache.get_or_fill(key, lambda: b"seeded by assert_purges", tags=tags)
        return key, op

    def _purged(self, key: str, op: FlushOp) -> bool:
        if not self.client.exists(key):
            return True
        return op.mode == "soft" and self.client.hexists(key, layout.FIELD_STALE) == 1
