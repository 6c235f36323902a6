"""The async twin of :class:`RedisPurgeTarget`, over ``redis.asyncio`` (standalone or
cluster). The planning and the commands come from :class:`PurgeTargetBase`; only the I/O
differs."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions

from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime._storm import StormBudget
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._prefix_purge import (
    IndexSweep,
    MatchBuffer,
    PrefixMatcher,
    index_page_calls,
    split_found,
)
from damestoilet_contracts.runtime.redis._purge import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PIPELINE_SIZE,
    Key,
    PurgeStats,
    PurgeTargetBase,
    ScanOp,
    chunks,
    purge_error,
    stage_stats,
)


class AsyncRedisPurgeTarget(PurgeTargetBase):
    """Purges keys, prefixes and tags from a redis.asyncio client (standalone or cluster)."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        grace: Mapping[str, float] | None = None,
        scan_count: int = 1000,
        targets: Collection[str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        pipeline_size: int = DEFAULT_PIPELINE_SIZE,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> None:
        """Wrap ``client``; the settings are those of :class:`RedisPurgeTarget`."""
        cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        super().__init__(
            grace=grace,
            scan_count=scan_count,
            targets=targets,
            chunk_size=chunk_size,
            pipeline_size=pipeline_size,
            slot_of=client.keyslot
            if isinstance(client, redis.asyncio.cluster.RedisCluster)
            else None,
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
    ) -> AsyncRedisPurgeTarget:
        """See :meth:`RedisPurgeTarget.from_url`."""
        client: Any = (
            redis.asyncio.cluster.RedisCluster.from_url(url)
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        return cls(client, grace=grace, targets=targets, prefix_index=prefix_index, storm=storm)

    async def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        """The async :meth:`RedisPurgeTarget.purge_stage`; raises :class:`PurgeError`."""
        plan = self.planner.plan(ops)
        if not plan:
            return PurgeStats()
        keys = soft_marked = prefix_keys = tag_keys = 0
        budget = StormBudget()
        try:
            if plan.unlink:
                keys = await self._run(self.unlink_calls(plan.unlink))
            for grace_ms, soft_keys in plan.soft.items():
                n = await self._run(self.soft_calls(soft_keys, grace_ms))
                keys += n
                soft_marked += n
            touched = [await self._spread_keys(k, scan, budget) for scan, k, _ in plan.spread]
            keys += sum(touched)
            for purge in (self._purge_indexed, self._purge_scanned):
                n, soft = await purge(plan.prefixes, budget)
                prefix_keys += n
                soft_marked += soft
            for scan in plan.tags:
                n = await self._purge_tag(scan, budget)
                tag_keys += n
                soft_marked += n if scan.soft else 0
        except redis.exceptions.RedisError as exc:
            await self._after_error(exc)
            raise purge_error("executing a stage", exc) from exc
        return stage_stats(plan, (keys, prefix_keys, tag_keys, soft_marked), budget, touched)

    async def _run(self, calls: Iterable[tuple[Any, ...]]) -> int:
        total = 0
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        for call in calls:
            pipe.execute_command(*call)
            queued += 1
            if queued >= self.pipeline_size:
                total += sum(int(r) for r in await pipe.execute())
                pipe = self.client.pipeline(transaction=False)
                queued = 0
        if queued:
            total += sum(int(r) for r in await pipe.execute())
        return total

    async def _spread_keys(self, keys: Sequence[Key], scan: ScanOp, budget: StormBudget) -> int:
        return await self._run(self.spread_calls(keys, scan, budget)) if keys else 0

    async def _purge_scanned(self, scans: list[ScanOp], budget: StormBudget) -> tuple[int, int]:
        # one scan_iter (SCAN to cursor 0; on a cluster, on every primary) for all prefixes
        matcher = PrefixMatcher(s for s in scans if not s.indexed)
        if not matcher:
            return 0, 0
        buffer = MatchBuffer(matcher, self.buffer_size)
        purged = soft = 0
        async for found in self.client.scan_iter(match=matcher.pattern, count=self.scan_count):
            buffer.add((found,))
            if buffer.full:
                n, m = await self._flush_matches(buffer, budget)
                purged, soft = purged + n, soft + m
        n, m = await self._flush_matches(buffer, budget)
        return purged + n, soft + m

    async def _flush_matches(self, buffer: MatchBuffer, budget: StormBudget) -> tuple[int, int]:
        purged = soft = 0
        for is_soft, grace_ms, guarded, found in buffer.take():
            keys: Sequence[Key] = found
            if guarded is not None:
                keys, later = self.split(guarded, found, budget)
                purged += await self._spread_keys(later, guarded, budget)
            n = await self._run(self.purge_calls(keys, is_soft, grace_ms))
            purged += n
            soft += n if is_soft else 0
        return purged, soft

    async def _purge_indexed(self, scans: list[ScanOp], budget: StormBudget) -> tuple[int, int]:
        # see RedisPurgeTarget._purge_indexed
        sweep = IndexSweep([s for s in scans if s.indexed], self.index_sets(), self.page_size)
        purged = soft = 0
        while sweep:
            found = []
            for scan, index, page in sweep.feed(await self._send(sweep.calls())):
                now, later = self.split(scan, page, budget)  # spread keys stay indexed
                purged += await self._spread_keys(later, scan, budget)
                if now:
                    found.append((scan, index, list(now)))
            hard, softs = split_found(found)
            if hard:
                purged += await self._purge_index_pages(hard)
            for grace_ms, keys in softs.items():
                n = await self._run(self.purge_calls(keys, True, grace_ms))
                purged, soft = purged + n, soft + n
        return purged, soft

    async def _send(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        return list(await pipe.execute())

    async def _purge_index_pages(self, pages: dict[str, list[bytes]]) -> int:
        if isinstance(self.client, redis.asyncio.cluster.RedisCluster):
            await self._send(
                [
                    ("ZREM", index, *batch)
                    for index, keys in pages.items()
                    for batch in chunks(keys, self.planner.chunk_size)
                ]
            )
            everything = [k for keys in pages.values() for k in keys]
            return await self._run(self.purge_calls(everything, False, 0))
        pipe = self.client.pipeline(transaction=True)
        for index, keys in pages.items():
            for call in index_page_calls(index, keys, self.planner.chunk_size):
                pipe.execute_command(*call)
        return sum(int(r) for r in (await pipe.execute())[1::2])

    async def _purge_tag(self, scan: ScanOp, budget: StormBudget) -> int:
        tag_set = layout.tag_key(scan.text)
        purged = 0
        buffer: dict[Key, None] = {}
        async for member in self.client.sscan_iter(tag_set, count=self.scan_count):
            buffer[member] = None
            if len(buffer) >= self.buffer_size:
                purged += await self._purge_members(tag_set, list(buffer), scan, budget)
                buffer = {}
        if buffer:
            purged += await self._purge_members(tag_set, list(buffer), scan, budget)
        return purged

    async def _purge_members(
        self, tag_set: str, members: list[Key], scan: ScanOp, budget: StormBudget
    ) -> int:
        now, later = self.split(scan, members, budget)  # spread members stay in the set
        spread = await self._spread_keys(later, scan, budget)
        members = list(now)
        if not members:
            return spread
        if isinstance(self.client, redis.asyncio.cluster.RedisCluster):
            # SREM first, then purge: see RedisPurgeTarget._purge_members and _layout.
            for batch in chunks(members, self.planner.chunk_size):
                await self.client.srem(tag_set, *batch)
            return spread + await self._run(self.purge_calls(members, scan.soft, scan.grace_ms))
        pipe = self.client.pipeline(transaction=True)
        for call in self.tag_calls(tag_set, members, scan.soft, scan.grace_ms):
            pipe.execute_command(*call)
        return spread + sum(int(r) for r in (await pipe.execute())[1::2])

    async def _after_error(self, exc: redis.exceptions.RedisError) -> None:
        if isinstance(self.client, redis.asyncio.cluster.RedisCluster) and isinstance(
            exc, redis.exceptions.MovedError | redis.exceptions.AskError
        ):
            with contextlib.suppress(redis.exceptions.RedisError):
                await self.client.nodes_manager.initialize()
