"""Redis Streams as an :class:`~runtime._seams.AsyncBus`, over ``redis.asyncio``: the same
bookkeeping as :class:`~runtime.redis._bus.RedisStreamBus` (own pending first, XAUTOCLAIM
every ``reclaim_interval_s``, retries left pending and XCLAIMed when due, NOGROUP answered by
recreating the group), awaited. redis-py errors leave as :class:`BackendError`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster

from damestoilet_contracts.runtime._seams import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    Backlog,
    ConsumePolicy,
    Delivery,
    Lost,
    Settlement,
    default_consumer,
    dlq_stream_name,
)
from damestoilet_contracts.runtime.redis._bus import (
    _entries,
    _log,
    _text,
    dead_letter_fields,
    raise_backend,
)
from damestoilet_contracts.runtime.redis._done import translate_errors
from damestoilet_contracts.runtime.redis._trust import AsyncStreamTrust


class AsyncRedisStreamBus:
    """One consumer of a consumer group on a Redis stream, for asyncio code."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
    ) -> None:
        """Bind ``client`` (``decode_responses=False``) to ``stream`` and ``group``; the
        defaults are those of :class:`RedisStreamBus`."""
        self._client: Any = client
        self._stream = stream
        self.group = group
        self.consumer = consumer or default_consumer()
        self.dlq_stream = dlq_stream or dlq_stream_name(stream)
        self.policy = ConsumePolicy()
        self._owns_client = False
        self._retries: dict[str, float] = {}
        self._reread = True
        self._pending_after = "0"
        self._queued: list[Delivery] = []
        self._next_claim = 0.0
        self._lost = 0
        self._trust = AsyncStreamTrust(self._client, stream, group, self.dlq_stream)
        self._gaps: list[Lost] = []
        self._failed: set[str] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
    ) -> AsyncRedisStreamBus:
        """A bus with its own asyncio client for ``url``; raises ValueError for a bad URL."""
        client: Any = (
            redis.asyncio.cluster.RedisCluster.from_url(url)
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        bus = cls(client, stream=stream, group=group, consumer=consumer, dlq_stream=dlq_stream)
        bus._owns_client = True
        return bus

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._stream

    @property
    def client(self) -> Any:
        """The asyncio Redis client this bus uses."""
        return self._client

    async def open(self, policy: ConsumePolicy) -> None:
        """See :meth:`RedisStreamBus.open`."""
        self.policy = policy
        # A (re)start first re-reads this consumer's own pending entries: what a crash, a
        # stop mid-stage or an error left in hand.
        self._reread, self._pending_after = True, "0"
        with translate_errors(f"cannot open stream {self._stream!r}"):
            await self._ensure_group("$" if policy.ephemeral else "0")

    async def _ensure_group(self, start: str) -> None:
        try:
            await self._client.xgroup_create(self._stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """See :meth:`RedisStreamBus.fetch`."""
        try:
            out = await self._fetch(count, wait_s)
        except redis.ResponseError as exc:
            self._reread = True
            if "NOGROUP" in str(exc):
                with translate_errors(f"cannot recreate the group of {self._stream!r}"):
                    await self.open(self.policy)
                return []
            raise_backend(f"reading {self._stream!r} failed", exc)
        except redis.RedisError as exc:
            self._reread = True
            raise_backend(f"reading {self._stream!r} failed", exc)
        if self._retries:
            for delivery in out:
                self._retries.pop(delivery.id, None)
        return out

    async def _fetch(self, count: int, wait_s: float) -> list[Delivery]:
        if self._queued:
            out, self._queued = self._queued[:count], self._queued[count:]
            return out
        while self._reread:
            reply = await self._client.xreadgroup(
                self.group, self.consumer, {self._stream: self._pending_after}, count=count
            )
            entries = await self._with_deliveries([(_text(i), f or {}) for i, f in _entries(reply)])
            if not entries:
                self._reread, self._pending_after = False, "0"
                break
            self._pending_after = entries[-1].id
            ready = [e for e in entries if e.id not in self._retries]
            if ready:
                return ready
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.policy.reclaim_interval_s
            claimed = await self._claim_idle(count)
            if claimed:
                _log("reclaimed", count=len(claimed))
                self._queued = claimed[count:]
                return claimed[:count]
        if self._retries:
            due = [i for i, at in self._retries.items() if at <= now]
            if due:
                for entry_id in due:
                    del self._retries[entry_id]
                reply = await self._client.xclaim(
                    self._stream, self.group, self.consumer, min_idle_time=0, message_ids=due
                )
                entries = await self._with_deliveries([(_text(i), f or {}) for i, f in reply])
                if entries:
                    return entries
        block_ms = int(wait_s * 1000)
        if self._retries:
            wait = min(self._retries.values()) - time.monotonic()
            block_ms = max(0, min(block_ms, int(wait * 1000)))
        new, lost = await self._trust.read(self.consumer, count, block_ms)
        if lost is not None:
            self._gaps.append(lost)
            if lost.count > 0:
                self._lost += lost.count
        return [Delivery(i, f, 1) for i, f in new]

    async def _claim_idle(self, count: int) -> list[Delivery]:
        claimed: list[tuple[str, Any]] = []
        lost: list[str] = []
        start = "0-0"
        while True:
            reply = await self._client.xautoclaim(
                self._stream,
                self.group,
                self.consumer,
                min_idle_time=self.policy.redeliver_after_ms,
                start_id=start,
                count=count,
            )
            start = _text(reply[0])
            claimed += [(_text(i), f or {}) for i, f in reply[1]]
            if len(reply) > 2:
                lost += [_text(i) for i in reply[2]]
            if start == "0-0":
                break
        if lost:
            self._lost += len(lost)
            _log("lost", level=logging.ERROR, ids=lost, reason="trimmed before acked")
        return await self._with_deliveries(claimed)

    async def _with_deliveries(self, entries: list[tuple[str, Any]]) -> list[Delivery]:
        if not entries:
            return []
        pipe = self._client.pipeline(transaction=False)
        for entry_id, _ in entries:
            pipe.xpending_range(self._stream, self.group, min=entry_id, max=entry_id, count=1)
        counts = await pipe.execute()
        return [
            Delivery(entry_id, fields, int(pending[0]["times_delivered"]) if pending else 1)
            for (entry_id, fields), pending in zip(entries, counts, strict=True)
        ]

    async def settle(self, settlement: Settlement) -> None:
        """See :meth:`RedisStreamBus.settle`."""
        now = time.monotonic()
        for retry in settlement.retry:
            self._retries[retry.delivery.id] = now + retry.delay_s
        ids = [d.id for d in settlement.done] + [d.delivery.id for d in settlement.dead]
        settled = list(settlement.done) + [d.delivery for d in settlement.dead]
        counted = [d.id for d in settled if d.deliveries > 1 or d.id in self._failed]
        with translate_errors(f"settling entries of {self._stream!r} failed"):
            if settlement.dead:
                letters = dead_letter_fields(self._stream, settlement.dead, self.group)
                await self._trust.dead_letter(
                    [(d.delivery.id, f) for d, f in zip(settlement.dead, letters, strict=True)]
                )
            if ids:
                await self._client.xack(self._stream, self.group, *ids)
            if counted:
                await self._trust.forget_failures(counted)
        self._failed.difference_update(counted)

    async def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """See :meth:`RedisStreamBus.record_failures`."""
        if not deliveries:
            return []
        ids = [d.id for d in deliveries]
        self._failed.update(ids)
        with translate_errors(f"counting attempts on {self._stream!r} failed"):
            return await self._trust.record_failures(ids)

    def take_lost(self) -> list[Lost]:
        """See :meth:`RedisStreamBus.take_lost`."""
        lost, self._gaps = self._gaps, []
        return lost

    async def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`RedisStreamBus.in_progress`."""
        if not deliveries:
            return
        with translate_errors(f"extending entries of {self._stream!r} failed"):
            await self._client.xclaim(
                self._stream,
                self.group,
                self.consumer,
                min_idle_time=0,
                message_ids=[d.id for d in deliveries],
                justid=True,
            )

    async def backlog(self) -> Backlog:
        """See :meth:`RedisStreamBus.backlog`."""
        with translate_errors(f"reading the group of {self._stream!r} failed"):
            for group in await self._client.xinfo_groups(self._stream):
                if _text(group["name"]) == self.group:
                    lag = group.get("lag")
                    return Backlog(
                        None if lag is None else int(lag), int(group["pending"]), self._lost
                    )
        return Backlog(None, 0, self._lost)

    def retries_waiting(self) -> bool:
        """Whether retries are scheduled and not yet taken again."""
        return bool(self._retries)

    async def aclose(self) -> None:
        """Delete an ephemeral group; close the client if :meth:`from_url` made it."""
        if self.policy.ephemeral:
            with translate_errors(f"deleting group {self.group!r} failed"):
                await self._client.xgroup_destroy(self._stream, self.group)
        if self._owns_client:
            await self._client.aclose()
