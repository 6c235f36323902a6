"""The Redis purge target: executes one stage of a flush plan against standalone Redis or a
Redis Cluster.

Exact keys go out as pipelined ``UNLINK`` calls, many keys per call (on a cluster: one slot
per call, one pipeline per primary); prefixes of a target that keeps a prefix index
(``prefix_index``) are read from it with ``ZRANGEBYLEX``, those of any other target with one
``SCAN`` per stage run to cursor 0 on every primary, ``MATCH`` glob-escaped (never ``KEYS``;
see :mod:`runtime.redis._prefix_purge`); tags are read from their
set (``SSCAN``) and each chunk of members is ``SREM``-ed from the set and purged, in one
``MULTI`` on a standalone server and in that order on a cluster (see :mod:`runtime.redis._layout`
for why that keeps a racing fill from being left behind). ``mode: soft`` runs a Lua script
that marks cache entries stale for the grace window of the op's target instead of unlinking
them.

The planning (filtering by target, de-duplication, grouping by slot, chunking) does no I/O and
is shared with :class:`AsyncRedisPurgeTarget` in :mod:`runtime.redis._purge_async`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import redis
import redis.cluster
import redis.exceptions

from damestoilet_contracts._errors import PurgeError, PurgeInterruptedError
from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime._seams import StageOps
from damestoilet_contracts.runtime._storm import Engagement, StormBudget
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis import _prefix_index as pidx
from damestoilet_contracts.runtime.redis._prefix_purge import (
    IndexSweep,
    MatchBuffer,
    PrefixMatcher,
    index_page_calls,
    split_found,
    stronger,
)

Key: TypeAlias = str | bytes
AnyKey = TypeVar("AnyKey", str, bytes, str | bytes)

#: Keys per ``UNLINK`` or soft-script call. Large enough to amortise the round trip, small
#: enough that one call never blocks the server noticeably.
DEFAULT_CHUNK_SIZE = 500

#: Commands queued in one pipeline before it is sent, so a huge stage does not buffer
#: everything in memory first.
DEFAULT_PIPELINE_SIZE = 64

#: Marks cache entries stale (hash: ``stale`` = now ms unless already stale, ``lease``
#: removed, expiry shortened to the grace window) and shortens the expiry of any other key.
#: A missing key is left alone. KEYS: keys of one slot; ARGV[1]: grace in ms. Returns how
#: many keys it touched. A soft purge never lengthens a key's life.
SOFT_PURGE_LUA = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[1])
local marked = 0
for _, k in ipairs(KEYS) do
  local kind = redis.call('TYPE', k)['ok']
  if kind ~= 'none' then
    if kind == 'hash' then
      redis.call('HSETNX', k, '{layout.FIELD_STALE}', now)
      redis.call('HDEL', k, '{layout.FIELD_LEASE}')
    end
    local ttl = redis.call('PTTL', k)
    if ttl < 0 or ttl > grace then
      redis.call('PEXPIRE', k, grace)
    end
    marked = marked + 1
  end
end
return marked
"""


#: The storm guard's spread (see :mod:`runtime._storm` and :mod:`runtime.redis._layout`): each
#: KEYS[i] goes stale ARGV[i + 1] ms from now (an earlier stale moment is kept), loses its
#: ``lease``, and gets ``spread`` = that moment + ARGV[1] (the grace window, ms); its expiry is
#: shortened to the same. A key of another type only gets its expiry shortened to its moment.
#: A missing key is left alone. Returns how many keys it touched; never lengthens a key's life.
SPREAD_LUA = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[1])
local touched = 0
for i, k in ipairs(KEYS) do
  local kind = redis.call('TYPE', k)['ok']
  if kind ~= 'none' then
    local at = now + tonumber(ARGV[i + 1])
    local life = at - now
    if kind == 'hash' then
      local prior = tonumber(redis.call('HGET', k, '{layout.FIELD_STALE}'))
      if prior and prior < at then at = prior end
      redis.call('HSET', k, '{layout.FIELD_STALE}', at, '{layout.FIELD_SPREAD}', at + grace)
      redis.call('HDEL', k, '{layout.FIELD_LEASE}')
      life = math.max(at - now, 0) + grace
    end
    local ttl = redis.call('PTTL', k)
    if ttl < 0 or ttl > life then
      if life > 0 then redis.call('PEXPIRE', k, life) else redis.call('UNLINK', k) end
    end
    touched = touched + 1
  end
end
return touched
"""


@dataclass(frozen=True, slots=True)
class PurgeStats:
    """What one purge did: keys purged per op kind, and how many of them were soft-marked."""

    #: Keys purged by ``op: key`` that existed (unlinked, or marked stale when soft).
    keys: int = 0
    #: Keys matched by prefix scans and purged (unlinked or soft-marked).
    prefix_keys: int = 0
    #: Members of tag sets purged (unlinked or soft-marked); members already gone not counted.
    tag_keys: int = 0
    #: Of the keys above, those marked stale (or given the grace expiry) by ``mode: soft``.
    soft_marked: int = 0
    #: Of the keys above, those the storm guard spread over its window instead of deleting.
    spread: int = 0
    #: What the storm guard did, per op it engaged on (the coordinator logs each one).
    storm: tuple[Engagement, ...] = ()

    def __add__(self, other: PurgeStats) -> PurgeStats:
        return PurgeStats(
            self.keys + other.keys,
            self.prefix_keys + other.prefix_keys,
            self.tag_keys + other.tag_keys,
            self.soft_marked + other.soft_marked,
            self.spread + other.spread,
            self.storm + other.storm,
        )

    @property
    def total(self) -> int:
        """Every key purged, hard or soft, by any op."""
        return self.keys + self.prefix_keys + self.tag_keys

    @property
    def unlinked(self) -> int:
        """Keys removed outright (not soft-marked, not spread)."""
        return self.total - self.soft_marked - self.spread


@dataclass(frozen=True, slots=True)
class ScanOp:
    """A prefix or tag op, resolved: what to scan, whether soft, the grace in ms, and (a
    prefix) whether its target keeps a prefix index."""

    text: str
    soft: bool
    grace_ms: int
    indexed: bool = False
    #: The target's storm guard when this op may be spread (a ``delete`` of a guarded target).
    guard: StormGuard | None = None
    #: ``prefix`` or ``tag`` (a prefix and a tag of the same text are two ops).
    kind: str = ""
    #: The target whose settings (guard, grace) the op purges with, for metrics.
    target: str = ""


@dataclass(slots=True)
class StagePlan:
    """One stage, filtered and de-duplicated: what a purge target will send (no I/O)."""

    unlink: list[str] = field(default_factory=list)
    #: Exact keys to soft-purge, by grace window in ms.
    soft: dict[int, list[str]] = field(default_factory=dict)
    prefixes: list[ScanOp] = field(default_factory=list)
    tags: list[ScanOp] = field(default_factory=list)
    #: Exact keys the storm guard spreads (past ``max_keys`` of one event and target), with
    #: the guard and grace (a key-kind :class:`ScanOp`) they are spread by, and the index in
    #: :attr:`storm` of their engagement.
    spread: list[tuple[ScanOp, list[str], int]] = field(default_factory=list)
    #: What the guard did to the exact keys, one record per event and target (``spread``:
    #: the keys it means to spread; :func:`stage_stats` puts in those it did).
    storm: list[Engagement] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.unlink or self.soft or self.prefixes or self.tags or self.spread)


class PurgePlanner:
    """The no-I/O half of a Redis purge target: target filter, grace windows, grouping."""

    def __init__(
        self,
        *,
        targets: Collection[str] | None = None,
        grace: Mapping[str, float] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.targets: frozenset[str] | None = None if targets is None else frozenset(targets)
        self.grace: Mapping[str, float] = dict(grace or {})
        for target, seconds in self.grace.items():
            if seconds < 0:
                raise ValueError(f"grace of target {target!r} is negative ({seconds}s)")
        self.chunk_size = chunk_size
        #: Targets whose prefixes are read from the prefix index instead of scanned.
        self.prefix_index = frozenset(prefix_index)
        #: Storm guards by target (``storm_max_keys`` in the flush graph).
        self.storm: Mapping[str, StormGuard] = dict(storm or {})

    def serves(self, op: FlushOp) -> bool:
        """Whether this target executes ``op`` (its target is one of ``targets``, or all)."""
        return self.targets is None or op.target in self.targets

    def grace_ms(self, target: str) -> int:
        """The soft-purge window of ``target`` in ms (default :data:`DEFAULT_GRACE_S`)."""
        return round(self.grace.get(target, layout.DEFAULT_GRACE_S) * 1000)

    def plan(self, ops: Iterable[FlushOp]) -> StagePlan:
        """The ops of one stage this target serves, de-duplicated: a key, prefix or tag both
        deleted and soft-purged in one stage is deleted, and of two grace windows the shorter
        applies (the stronger purge wins). Raises :class:`PurgeError` for an unknown op or
        mode, or an empty key, prefix or tag."""
        plan = StagePlan()
        deleted: dict[str, None] = {}
        soft: dict[str, int] = {}
        scans: dict[tuple[str, str], ScanOp] = {}
        targets = self.targets
        for op in ops:
            if op.op == "key" and op.mode == "delete" and op.key:
                # the common case first, lean: this loop runs once per key of a backlog
                if targets is None or op.target in targets:
                    deleted[op.key] = None
                continue
            if targets is not None and op.target not in targets:
                continue
            is_soft = op.mode == "soft"
            if op.mode not in ("delete", "soft", "hard"):  # hard: a delete no guard spreads
                raise PurgeError(f"unknown purge mode {op.mode!r} in {op.to_dict()}")
            if op.key == "":
                # an empty prefix or tag would reach every key: refuse, never widen
                raise PurgeError(f"empty key in purge operation {op.to_dict()}")
            if op.op == "key":
                if is_soft:
                    grace_ms = self.grace_ms(op.target)
                    soft[op.key] = min(grace_ms, soft.get(op.key, grace_ms))
                else:
                    deleted[op.key] = None
            elif op.op in ("prefix", "tag"):
                indexed = op.op == "prefix" and op.target in self.prefix_index
                guard = self.storm.get(op.target) if op.mode == "delete" else None
                grace_ms = self.grace_ms(op.target)
                scan = ScanOp(op.key, is_soft, grace_ms, indexed, guard, op.op, op.target)
                prior = scans.get((op.op, op.key))
                if prior is not None:
                    # hard beats a guarded delete, delete beats soft; between two soft windows
                    # the shorter one wins; the index serves only when every target of the
                    # prefix keeps it
                    best = scan if stronger(scan, prior) else prior
                    scan = ScanOp(
                        best.text,
                        best.soft,
                        best.grace_ms,
                        indexed and prior.indexed,
                        best.guard,
                        op.op,
                        best.target,
                    )
                scans[(op.op, op.key)] = scan
            else:
                raise PurgeError(f"unknown purge op {op.op!r} in {op.to_dict()}")
        if self.storm and deleted and isinstance(ops, StageOps):
            self._guard_keys(ops, deleted, soft, plan)
        plan.unlink = list(deleted)
        for key, grace_ms in soft.items():
            if key not in deleted:
                plan.soft.setdefault(grace_ms, []).append(key)
        plan.prefixes = [s for (kind, _), s in scans.items() if kind == "prefix"]
        plan.tags = [s for (kind, _), s in scans.items() if kind == "tag"]
        return plan

    def _guard_keys(
        self, ops: StageOps, deleted: dict[str, None], soft: dict[str, int], plan: StagePlan
    ) -> None:
        """The storm guard over exact keys: of the ``delete`` keys one event of the stage has
        for one guarded target, the first ``max_keys`` stay in ``deleted`` and the rest move to
        ``plan.spread``, unless something else in the stage purges them too (a ``hard`` op, a
        delete within another event's budget, a soft purge): those stay deleted."""
        storm, firm = self.storm, set()
        wide: dict[tuple[str, str], list[str]] = {}
        for event_id, event_ops in ops.events():
            mine: dict[str, dict[str, None]] = {}
            for op in event_ops:
                if op.op != "key" or op.key not in deleted or not self.serves(op):
                    continue
                if op.mode == "delete" and op.target in storm:
                    mine.setdefault(op.target, {})[op.key] = None
                else:
                    firm.add(op.key)  # hard, or a target without a guard
            for target, keys in mine.items():
                guard = storm[target]
                listed = list(keys)
                firm.update(listed[: guard.max_keys])
                if len(listed) > guard.max_keys:
                    wide[(event_id, target)] = listed[guard.max_keys :]
        for (event_id, target), later in wide.items():
            guard = storm[target]
            spread = [k for k in later if k not in firm and k not in soft]
            for k in spread:
                deleted.pop(k, None)
            if spread:
                scan = ScanOp(spread[0], False, self.grace_ms(target), False, guard, "key", target)
                plan.spread.append((scan, spread, len(plan.storm)))
            plan.storm.append(
                Engagement(
                    "key",
                    later[0],
                    guard.max_keys,
                    len(spread),
                    guard.max_keys,
                    guard.spread_seconds,
                    event_id,
                    target,
                )
            )

    def batches(self, keys: Sequence[Key], slot_of: Callable[[Key], int] | None) -> list[list[Key]]:
        """``keys`` cut into calls of at most ``chunk_size`` keys; with ``slot_of`` (a cluster)
        every call holds keys of one slot only."""
        if slot_of is None:
            return [list(c) for c in chunks(keys, self.chunk_size)]
        by_slot: dict[int, list[Key]] = {}
        for key in keys:
            by_slot.setdefault(slot_of(key), []).append(key)
        return [list(c) for group in by_slot.values() for c in chunks(group, self.chunk_size)]


def chunks(items: Sequence[Key], size: int) -> Iterator[Sequence[Key]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prefix_pattern(prefix: str) -> str:
    """The ``SCAN MATCH`` pattern for every key that starts with ``prefix``."""
    return layout.escape_glob(prefix) + "*"


def engagements(budget: StormBudget) -> tuple[Engagement, ...]:
    """What the storm guard did in a stage, per op whose keys it spread (some)."""
    out = []
    for scan, seen in budget.engaged().items():
        assert isinstance(scan, ScanOp) and scan.guard is not None
        guard = scan.guard
        out.append(
            Engagement(
                scan.kind,
                scan.text,
                seen.deleted,
                seen.spread,
                guard.max_keys,
                guard.spread_seconds,
                target=scan.target,
            )
        )
    return tuple(out)


def stage_stats(
    plan: StagePlan,
    counts: tuple[int, int, int, int],
    budget: StormBudget,
    touched: Sequence[int],
) -> PurgeStats:
    """The :class:`PurgeStats` of ``plan``: ``counts`` are its keys (exact keys spread
    included), prefix keys, tag keys and soft-marked keys; ``touched`` the exact keys each
    entry of ``plan.spread`` spread (those that still existed), which its engagement then
    counts, so that the engagements' ``spread`` add up to the stage's; its guarded prefixes
    and tags asked ``budget``."""
    keys, prefix_keys, tag_keys, soft_marked = counts
    exact = list(plan.storm)
    for (_, planned, i), n in zip(plan.spread, touched, strict=True):
        if n != len(planned):
            exact[i] = dataclasses.replace(exact[i], spread=n)
    storm = (*exact, *engagements(budget))
    spread = sum(touched) + budget.spread
    return PurgeStats(keys, prefix_keys, tag_keys, soft_marked, spread, storm)


def purge_error(what: str, exc: Exception) -> PurgeError:
    """A :class:`PurgeError` for a failed Redis call, saying what to do about it."""
    return PurgeError(
        f"purge failed while {what}: {type(exc).__name__}: {exc}. The purge is idempotent: "
        "retry the stage once Redis answers again."
    )


class PurgeTargetBase:
    """What the sync and async Redis purge targets share: settings, target filter, and the
    commands each step sends (no I/O)."""

    #: When set (a coordinator hands it its stop event), a stage stops between two round
    #: trips and raises :class:`PurgeInterruptedError`; the event stays pending, purged again
    #: later (every op is idempotent).
    interrupt: threading.Event | None = None

    def checkpoint(self) -> None:
        """Raise :class:`PurgeInterruptedError` when :attr:`interrupt` is set."""
        if self.interrupt is not None and self.interrupt.is_set():
            raise PurgeInterruptedError("a stop interrupted the stage between round trips")

    def __init__(
        self,
        *,
        grace: Mapping[str, float] | None,
        scan_count: int,
        targets: Collection[str] | None,
        chunk_size: int,
        pipeline_size: int,
        slot_of: Callable[[Key], int] | None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> None:
        self.planner = PurgePlanner(
            targets=targets,
            grace=grace,
            chunk_size=chunk_size,
            prefix_index=prefix_index,
            storm=storm,
        )
        self.scan_count = scan_count
        self.pipeline_size = max(1, pipeline_size)
        #: The slot of a key on a cluster (every multi-key call stays in one slot), else None.
        self.slot_of = slot_of

    @property
    def targets(self) -> frozenset[str] | None:
        """The targets served, or None for all."""
        return self.planner.targets

    def serves(self, op: FlushOp) -> bool:
        """Whether ``op`` is for a target this purge target serves."""
        return self.planner.serves(op)

    @property
    def buffer_size(self) -> int:
        """Keys gathered (by a scan, from a tag set) before they are purged in one go."""
        return self.planner.chunk_size * self.pipeline_size

    @staticmethod
    def purge_call(batch: Sequence[Key], soft: bool, grace_ms: int) -> tuple[Any, ...]:
        """The one command that purges ``batch`` (keys of one slot on a cluster)."""
        if soft:
            return ("EVAL", SOFT_PURGE_LUA, len(batch), *batch, grace_ms)
        return ("UNLINK", *batch)

    @staticmethod
    def spread_call(
        batch: Sequence[Key], grace_ms: int, delays_ms: Sequence[int]
    ) -> tuple[Any, ...]:
        """The one command that spreads ``batch`` (keys of one slot on a cluster): each key
        goes stale after its delay, then stays readable for ``grace_ms``."""
        return ("EVAL", SPREAD_LUA, len(batch), *batch, grace_ms, *delays_ms)

    def spread_calls(
        self, keys: Sequence[Key], scan: ScanOp, budget: StormBudget
    ) -> list[tuple[Any, ...]]:
        """Spread-script calls for ``keys`` of the guarded op ``scan``, chunked like
        :meth:`unlink_calls`. The moments are drawn once for all of ``keys`` (a page of the
        op), not per call: a cluster's calls hold a slot's few keys each, and stratifying so
        few would leave the page's moments as bunched as independent ones."""
        assert scan.guard is not None
        moments = dict(zip(keys, budget.delays_ms(scan.guard, len(keys)), strict=True))
        return [
            self.spread_call(batch, scan.grace_ms, [moments[k] for k in batch])
            for batch in self.planner.batches(keys, self.slot_of)
        ]

    @staticmethod
    def split(
        scan: ScanOp, keys: Sequence[AnyKey], budget: StormBudget
    ) -> tuple[Sequence[AnyKey], Sequence[AnyKey]]:
        """``keys`` of ``scan`` cut into those to purge now and those its storm guard spreads
        (none when the op is not guarded)."""
        if scan.guard is None or scan.soft:
            return keys, ()
        return budget.split(scan, scan.guard, keys)

    def unlink_calls(self, keys: Sequence[Key]) -> Iterator[tuple[Any, ...]]:
        """``UNLINK`` commands for ``keys``, chunked (and, on a cluster, one slot each)."""
        for batch in self.planner.batches(keys, self.slot_of):
            yield self.purge_call(batch, False, 0)

    def soft_calls(self, keys: Sequence[Key], grace_ms: int) -> Iterator[tuple[Any, ...]]:
        """Soft-purge script calls for ``keys``, chunked like :meth:`unlink_calls`."""
        for batch in self.planner.batches(keys, self.slot_of):
            yield self.purge_call(batch, True, grace_ms)

    def purge_calls(self, keys: Sequence[Key], soft: bool, grace_ms: int) -> list[tuple[Any, ...]]:
        """The commands that purge ``keys`` found by a prefix or tag scan."""
        if soft:
            return list(self.soft_calls(keys, grace_ms))
        return list(self.unlink_calls(keys))

    def tag_calls(
        self, tag_set: str, keys: Sequence[Key], soft: bool, grace_ms: int
    ) -> list[tuple[Any, ...]]:
        """Standalone only: for each chunk, ``SREM`` of the chunk then its purge, to be sent in
        one ``MULTI`` (replies at odd positions count the keys purged)."""
        calls: list[tuple[Any, ...]] = []
        for batch in chunks(keys, self.planner.chunk_size):
            calls.append(("SREM", tag_set, *batch))
            calls.extend(self.purge_calls(batch, soft, grace_ms))
        return calls

    def index_sets(self) -> list[str]:
        """The prefix index sets this Redis has (one, or a cluster's shards)."""
        return pidx.index_keys(self.slot_of is not None)

    @property
    def page_size(self) -> int:
        """Index members read per prefix and round: one ``UNLINK`` call's worth."""
        return self.planner.chunk_size


class RedisPurgeTarget(PurgeTargetBase):
    """Purges keys, prefixes and tags from a sync redis-py client (standalone or cluster)."""

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        *,
        grace: Mapping[str, float] | None = None,
        scan_count: int = 1000,
        targets: Collection[str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        pipeline_size: int = DEFAULT_PIPELINE_SIZE,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> None:
        """Wrap ``client``. ``grace`` maps a target to its soft-purge window in seconds
        (default :data:`_layout.DEFAULT_GRACE_S`); ``scan_count`` is the ``COUNT`` hint of
        each ``SCAN``/``SSCAN``; ``targets`` restricts the ops executed to those targets
        (None: every target); ``chunk_size`` is keys per call, ``pipeline_size`` calls per
        round trip; ``prefix_index`` names the targets whose prefixes are read from the
        prefix index (``prefix_index: true`` in the flush graph) instead of scanned; ``storm``
        maps targets to their storm guard (``storm_max_keys``; see :mod:`runtime._storm`).
        Raises ValueError for a negative grace or a chunk size below 1."""
        cluster = isinstance(client, redis.cluster.RedisCluster)
        super().__init__(
            grace=grace,
            scan_count=scan_count,
            targets=targets,
            chunk_size=chunk_size,
            pipeline_size=pipeline_size,
            slot_of=client.keyslot if isinstance(client, redis.cluster.RedisCluster) else None,
            prefix_index=prefix_index,
            storm=storm,
        )
        self.client = client
        self.is_cluster = cluster

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        grace: Mapping[str, float] | None = None,
        targets: Collection[str] | None = None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> RedisPurgeTarget:
        """A target with its own client for ``url`` (``cluster``: any node of a cluster);
        ``grace``, ``targets``, ``prefix_index`` and ``storm`` as for the constructor. Raises
        ValueError for a bad URL."""
        from damestoilet_contracts.runtime.redis._bus import connect

        return cls(
            connect(url, cluster=cluster),
            grace=grace,
            targets=targets,
            prefix_index=prefix_index,
            storm=storm,
        )

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        """Execute the ops of one stage that this target serves; return what was purged.

        Raises :class:`PurgeError` when Redis fails (connection, timeout, a cluster
        redirect); every op is idempotent, so the caller retries the whole stage."""
        plan = self.planner.plan(ops)
        if not plan:
            return PurgeStats()
        keys = soft_marked = prefix_keys = tag_keys = 0
        budget = StormBudget()
        try:
            if plan.unlink:
                keys = self._purge_keys(plan.unlink, False, 0)
            for grace_ms, soft_keys in plan.soft.items():
                n = self._purge_keys(soft_keys, True, grace_ms)
                keys += n
                soft_marked += n
            touched = [self._spread_keys(k, scan, budget) for scan, k, _ in plan.spread]
            keys += sum(touched)
            for purge in (self._purge_indexed, self._purge_scanned):
                n, soft = purge(plan.prefixes, budget)
                prefix_keys += n
                soft_marked += soft
            for scan in plan.tags:
                n = self._purge_tag(scan, budget)
                tag_keys += n
                soft_marked += n if scan.soft else 0
        except redis.exceptions.RedisError as exc:
            self._after_error(exc)
            raise purge_error("executing a stage", exc) from exc
        return stage_stats(plan, (keys, prefix_keys, tag_keys, soft_marked), budget, touched)

    def _purge_keys(self, keys: Sequence[Key], soft: bool, grace_ms: int) -> int:
        """Purge ``keys``; on a cluster, one plain pipeline per primary (a cluster pipeline
        costs about twice as much Python per command), one slot per call."""
        if not isinstance(self.client, redis.cluster.RedisCluster):
            batches = self.planner.batches(keys, None)
            return self._run(self.client, (self.purge_call(b, soft, grace_ms) for b in batches))
        calls = [
            self.purge_call(b, soft, grace_ms) for b in self.planner.batches(keys, self.slot_of)
        ]
        return self._run_by_node(calls)

    def _spread_keys(self, keys: Sequence[Key], scan: ScanOp, budget: StormBudget) -> int:
        """Spread ``keys`` of the guarded op ``scan`` over its guard's window."""
        if not keys:
            return 0
        calls = self.spread_calls(keys, scan, budget)
        if not isinstance(self.client, redis.cluster.RedisCluster):
            return self._run(self.client, calls)
        return self._run_by_node(calls)

    def _run_by_node(self, calls: Sequence[tuple[Any, ...]]) -> int:
        """Cluster: send ``calls`` (each on keys of one slot) to the primaries that own them."""
        assert isinstance(self.client, redis.cluster.RedisCluster) and self.slot_of is not None
        cluster, slot_of = self.client, self.slot_of
        per_node: dict[str, tuple[Any, list[tuple[Any, ...]]]] = {}
        for call in calls:
            first_key = call[3] if call[0] == "EVAL" else call[1]
            node = cluster.nodes_manager.get_node_from_slot(slot_of(first_key))
            per_node.setdefault(node.name, (node, []))[1].append(call)
        # a slot that moved answers MOVED: purge_stage refreshes the map and the caller retries
        return sum(
            self._run(cluster.get_redis_connection(node), calls)
            for node, calls in per_node.values()
        )

    def _run(self, conn: redis.Redis, calls: Iterable[tuple[Any, ...]]) -> int:
        """Send ``calls`` (raw commands) to ``conn`` in pipelines of ``pipeline_size``; sum
        the replies."""
        total = 0
        pipe = conn.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)  # type: ignore[no-untyped-call]
            if len(pipe) >= self.pipeline_size:
                self.checkpoint()
                total += sum(int(r) for r in pipe.execute())
        if len(pipe):
            total += sum(int(r) for r in pipe.execute())
        return total

    def _scan_nodes(self) -> list[redis.Redis]:
        """One plain client per primary (cluster), or the client itself."""
        if isinstance(self.client, redis.cluster.RedisCluster):
            cluster = self.client
            primaries = cluster.get_primaries()  # type: ignore[no-untyped-call]
            return [cluster.get_redis_connection(node) for node in primaries]
        return [self.client]

    def _purge_scanned(self, scans: list[ScanOp], budget: StormBudget) -> tuple[int, int]:
        """One ``SCAN`` (per primary) for every prefix of ``scans`` not read from the index;
        returns the keys purged and how many of them were soft-marked."""
        matcher = PrefixMatcher(s for s in scans if not s.indexed)
        if not matcher:
            return 0, 0
        buffer = MatchBuffer(matcher, self.buffer_size)
        purged = soft = 0
        for node in self._scan_nodes():
            cursor = 0
            while True:
                self.checkpoint()
                cursor, found = node.scan(cursor, match=matcher.pattern, count=self.scan_count)
                buffer.add(found)
                # purge as the scan goes so a huge prefix never sits in memory at once
                if buffer.full or (cursor == 0 and buffer.size):
                    for is_soft, grace_ms, guarded, found_keys in buffer.take():
                        keys: Sequence[Key] = found_keys
                        if guarded is not None:
                            keys, later = self.split(guarded, found_keys, budget)
                            purged += self._spread_keys(later, guarded, budget)
                        n = self._purge_keys(keys, is_soft, grace_ms)
                        purged += n
                        soft += n if is_soft else 0
                if cursor == 0:
                    break
        return purged, soft

    def _purge_indexed(self, scans: list[ScanOp], budget: StormBudget) -> tuple[int, int]:
        """Every prefix of ``scans`` read from the index, all at once, a page per round;
        returns the keys purged and how many of them were soft-marked."""
        sweep = IndexSweep([s for s in scans if s.indexed], self.index_sets(), self.page_size)
        purged = soft = 0
        while sweep:
            self.checkpoint()
            found = []
            for scan, index, page in sweep.feed(self._send(sweep.calls())):
                # spread keys stay readable for a while: keep them indexed, as soft ones
                now, later = self.split(scan, page, budget)
                purged += self._spread_keys(later, scan, budget)
                if now:
                    found.append((scan, index, list(now)))
            hard, softs = split_found(found)
            if hard:
                purged += self._purge_index_pages(hard)
            for grace_ms, keys in softs.items():
                # the keys stay readable (stale): kept in the index so a later delete finds them
                n = self._purge_keys(keys, True, grace_ms)
                purged, soft = purged + n, soft + n
        return purged, soft

    def _send(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        pipe: Any = self.client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        return list(pipe.execute())

    def _purge_index_pages(self, pages: dict[str, list[bytes]]) -> int:
        if isinstance(self.client, redis.cluster.RedisCluster):
            # a shard and its keys live on different slots: ZREM first, then unlink (a fill
            # that re-joins in between is unlinked, or took its lease after the purge began)
            self._send(
                [
                    ("ZREM", index, *batch)
                    for index, keys in pages.items()
                    for batch in chunks(keys, self.planner.chunk_size)
                ]
            )
            return self._purge_keys([k for keys in pages.values() for k in keys], False, 0)
        pipe = self.client.pipeline(transaction=True)
        for index, keys in pages.items():
            for call in index_page_calls(index, keys, self.planner.chunk_size):
                pipe.execute_command(*call)  # type: ignore[no-untyped-call]
        return sum(int(r) for r in pipe.execute()[1::2])

    def _purge_tag(self, scan: ScanOp, budget: StormBudget) -> int:
        tag_set = layout.tag_key(scan.text)
        purged = 0
        # purge as SSCAN goes, so a huge tag never sits in memory at once; members SREM-ed
        # meanwhile were already seen, and the others are still returned
        buffer: dict[Key, None] = {}
        for member in self.client.sscan_iter(tag_set, count=self.scan_count):
            buffer[member] = None
            if len(buffer) >= self.buffer_size:
                self.checkpoint()
                purged += self._purge_members(tag_set, list(buffer), scan, budget)
                buffer = {}
        if buffer:
            purged += self._purge_members(tag_set, list(buffer), scan, budget)
        return purged

    def _purge_members(
        self, tag_set: str, members: list[Key], scan: ScanOp, budget: StormBudget
    ) -> int:
        # spread members stay in the set, so a later purge of the tag still finds them
        now, later = self.split(scan, members, budget)
        spread = self._spread_keys(later, scan, budget)
        members = list(now)
        if not members:
            return spread
        if isinstance(self.client, redis.cluster.RedisCluster):
            # The set and its members live on different slots, so no one step holds both:
            # SREM first, then purge. A fill that re-joins the tag after the SREM is either
            # unlinked by the purge that follows or took its lease after the purge began
            # (see _layout).
            for batch in chunks(members, self.planner.chunk_size):
                self.client.srem(tag_set, *batch)
            return spread + self._purge_keys(members, scan.soft, scan.grace_ms)
        # Standalone: membership and value go in one MULTI, so no reader ever sees a value
        # that has already left its tag set.
        pipe = self.client.pipeline(transaction=True)
        for call in self.tag_calls(tag_set, members, scan.soft, scan.grace_ms):
            pipe.execute_command(*call)  # type: ignore[no-untyped-call]
        return spread + sum(int(r) for r in pipe.execute()[1::2])

    def _after_error(self, exc: redis.exceptions.RedisError) -> None:
        # A redirect means the slot map moved: refresh it so the caller's retry goes right.
        if isinstance(self.client, redis.cluster.RedisCluster) and isinstance(
            exc, redis.exceptions.MovedError | redis.exceptions.AskError
        ):
            with contextlib.suppress(redis.exceptions.RedisError):
                self.client.nodes_manager.initialize()
