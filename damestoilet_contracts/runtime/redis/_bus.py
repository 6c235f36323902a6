"""Redis Streams as the bus: ``XADD`` with approximate ``MAXLEN``, consumer groups,
``XREADGROUP``, ``XAUTOCLAIM``, ``XACK`` and a dead-letter stream. Works on a standalone
server and on a cluster (every command of one bus names one stream key).

:class:`RedisStreamBus` speaks the neutral :class:`~runtime._seams.Bus` verbs (``open``,
``fetch``, ``settle``, ``in_progress``, ``backlog``) and keeps the Redis bookkeeping to
itself: its own pending entries are re-read first (after a start or an error), entries idle
too long in any consumer are taken with ``XAUTOCLAIM`` every ``reclaim_interval_s``, and a
retry is an entry left pending and taken again with ``XCLAIM`` (which counts a delivery) once
its delay passed. A deleted stream (``NOGROUP``) gets its group back. redis-py errors leave
the neutral verbs as :class:`BackendError`; the lower-level methods (``read_new``,
``claim_idle``, ...) are Redis's own and raise redis-py errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeAlias

import redis
from redis.cluster import RedisCluster

from damestoilet_contracts._errors import BackendError
from damestoilet_contracts.runtime._logging import log_fields
from damestoilet_contracts.runtime._seams import (
    DEFAULT_GROUP,
    DEFAULT_MAXLEN,
    DEFAULT_STREAM,
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_REASON,
    DLQ_STREAM,
    DLQ_TIME,
    Backlog,
    ConsumePolicy,
    Dead,
    Delivery,
    Lost,
    Settlement,
    default_consumer,
    dlq_stream_name,
)
from damestoilet_contracts.runtime.redis._done import translate_errors
from damestoilet_contracts.runtime.redis._trust import LostTotal, StreamTrust

logger = logging.getLogger("damestoilet.coordinator")

#: A sync client the runtime accepts: standalone or cluster, ``decode_responses=False``.
SyncRedis: TypeAlias = "redis.Redis | RedisCluster"


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a reclaim returned: entries now owned by this consumer, and ids the stream lost."""

    entries: list[Delivery] = field(default_factory=list)
    # Ids that were pending but whose entries were trimmed away (MAXLEN) before anyone acked.
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """The consumer group's backlog: entries not yet delivered (None if unknown) and pending."""

    lag: int | None
    pending: int


def connect(url: str, *, cluster: bool = False) -> SyncRedis:
    """A sync client for ``url``: a :class:`RedisCluster` discovering the cluster from that
    node when ``cluster``, else a plain client. Raises ValueError for a malformed URL."""
    if cluster:
        return RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


def xadd_options(maxlen: int | None) -> dict[str, Any]:
    """The keyword arguments of ``XADD`` for an approximate cap of ``maxlen`` (None: no cap)."""
    if maxlen is None:
        return {}
    return {"maxlen": maxlen, "approximate": True}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamBus:
    """One consumer of a consumer group on a Redis stream, with its dead-letter stream."""

    def __init__(
        self,
        client: SyncRedis,
        *,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dlq_stream: str | None = None,
        maxlen: int | None = DEFAULT_MAXLEN,
    ) -> None:
        """Bind ``client`` (``decode_responses=False``) to ``stream`` and ``group``.

        ``consumer`` defaults to ``<hostname>-<pid>``; ``dlq_stream`` to ``<stream>:dlq``;
        ``maxlen`` caps the stream (approximately) when this bus adds entries.
        """
        self._client: Any = client
        self._stream = stream
        self.group = group
        self.consumer = consumer or default_consumer()
        self.dlq_stream = dlq_stream or dlq_stream_name(stream)
        self.maxlen = maxlen
        self.policy = ConsumePolicy()
        self._owns_client = False
        # Entry id -> when (time.monotonic) its retry is due; the entry stays pending meanwhile.
        self._retries: dict[str, float] = {}
        # Own pending entries are re-read first after a start or an error, from this cursor.
        self._reread = True
        self._pending_after = "0"
        self._queued: list[Delivery] = []
        self._next_claim = 0.0
        self._lost = 0
        self._trust = StreamTrust(self._client, stream, group, self.dlq_stream)
        self._gaps: list[Lost] = []
        # Ids whose failed attempts were counted by this process (settle forgets them).
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
        maxlen: int | None = DEFAULT_MAXLEN,
    ) -> RedisStreamBus:
        """A bus with its own client for ``url`` (with ``cluster``: any node of a cluster);
        the other arguments are those of the constructor. Raises ValueError for a bad URL."""
        bus = cls(
            connect(url, cluster=cluster),
            stream=stream,
            group=group,
            consumer=consumer,
            dlq_stream=dlq_stream,
            maxlen=maxlen,
        )
        bus._owns_client = True
        return bus

    @property
    def stream(self) -> str:
        """The stream's name."""
        return self._stream

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._stream

    @property
    def client(self) -> SyncRedis:
        """The Redis client this bus uses."""
        client: SyncRedis = self._client
        return client

    # -- the neutral bus verbs ------------------------------------------------------------------

    def open(self, policy: ConsumePolicy) -> None:
        """Create the stream and the group (an ephemeral group at the end of the stream)."""
        self.policy = policy
        # A (re)start first re-reads this consumer's own pending entries: what a crash, a
        # stop mid-stage or an error left in hand.
        self._reread, self._pending_after = True, "0"
        with translate_errors(f"cannot open stream {self._stream!r}"):
            if policy.ephemeral:
                self.ensure_group(start="$")
            else:
                self.ensure_group()

    def fetch(self, count: int, wait_s: float) -> list[Delivery]:
        """Own pending entries first, then reclaimed ones (when due), due retries, and new
        entries, waiting up to ``wait_s`` (less when a retry falls due sooner)."""
        try:
            out = self._fetch(count, wait_s)
        except redis.ResponseError as exc:
            self._reread = True
            if "NOGROUP" in str(exc):
                # The stream was deleted (or Redis restarted empty): start over.
                with translate_errors(f"cannot recreate the group of {self._stream!r}"):
                    self.open(self.policy)
                return []
            raise_backend(f"reading {self._stream!r} failed", exc)
        except redis.RedisError as exc:
            # What was in hand is still pending: read it again once Redis answers.
            self._reread = True
            raise_backend(f"reading {self._stream!r} failed", exc)
        if self._retries:
            for delivery in out:
                self._retries.pop(delivery.id, None)
        return out

    def _fetch(self, count: int, wait_s: float) -> list[Delivery]:
        if self._queued:
            out, self._queued = self._queued[:count], self._queued[count:]
            return out
        while self._reread:
            entries = self.read_pending(self._pending_after, count)
            if not entries:
                self._reread, self._pending_after = False, "0"
                break
            self._pending_after = entries[-1].id
            # Entries waiting for their backoff are left to the retry schedule.
            ready = [e for e in entries if e.id not in self._retries]
            if ready:
                return ready
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.policy.reclaim_interval_s
            claimed = self.claim_idle(self.policy.redeliver_after_ms, count)
            if claimed.lost:
                self._lost += len(claimed.lost)
                _log("lost", level=logging.ERROR, ids=claimed.lost, reason="trimmed before acked")
            if claimed.entries:
                _log("reclaimed", count=len(claimed.entries))
                self._queued = claimed.entries[count:]
                return claimed.entries[:count]
        if self._retries:
            due = [i for i, at in self._retries.items() if at <= now]
            if due:
                for entry_id in due:
                    # Claimed or not (acked elsewhere, trimmed), it leaves the schedule.
                    del self._retries[entry_id]
                entries = self.claim(due)
                if entries:
                    return entries
        return self.read_new(count, self._block_ms(wait_s))

    def _block_ms(self, wait_s: float) -> int:
        block_ms = int(wait_s * 1000)
        if not self._retries:
            return block_ms
        wait = min(self._retries.values()) - time.monotonic()
        return max(0, min(block_ms, int(wait * 1000)))

    def settle(self, settlement: Settlement) -> None:
        """Dead-letter the dead, then ``XACK`` them with the done; retries stay pending and
        are ``XCLAIM``ed again when due."""
        now = time.monotonic()
        for retry in settlement.retry:
            self._retries[retry.delivery.id] = now + retry.delay_s
        ids = [d.id for d in settlement.done] + [d.delivery.id for d in settlement.dead]
        settled = list(settlement.done) + [d.delivery for d in settlement.dead]
        # Only a redelivered entry, or one that failed here, can have an attempt count.
        counted = [d.id for d in settled if d.deliveries > 1 or d.id in self._failed]
        with translate_errors(f"settling entries of {self._stream!r} failed"):
            if settlement.dead:
                # Written before the ack, once per entry and group (a kill in between finds
                # the letter already written).
                self.dead_letter([(d.delivery, d.reason) for d in settlement.dead])
            self.ack(ids)
            if counted:
                self.forget_failures(counted)
        self._failed.difference_update(counted)

    def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """Reset the idle time of ``deliveries`` (``XCLAIM ... JUSTID``, no delivery counted),
        so no other consumer reclaims them while a long batch is purged."""
        if not deliveries:
            return
        with translate_errors(f"extending entries of {self._stream!r} failed"):
            self._client.xclaim(
                self._stream,
                self.group,
                self.consumer,
                min_idle_time=0,
                message_ids=[d.id for d in deliveries],
                justid=True,
            )

    def backlog(self) -> Backlog:
        """The group's lag and pending (``XINFO GROUPS``), and entries lost since open."""
        with translate_errors(f"reading the group of {self._stream!r} failed"):
            info = self.group_info()
        return Backlog(info.lag, info.pending, self._lost)

    def retries_waiting(self) -> bool:
        """Whether retries are scheduled and not yet taken again."""
        return bool(self._retries)

    def close(self) -> None:
        """Delete an ephemeral group; close the client if :meth:`from_url` made it."""
        if self.policy.ephemeral:
            with translate_errors(f"deleting group {self.group!r} failed"):
                self._client.xgroup_destroy(self._stream, self.group)
        if self._owns_client:
            self._client.close()

    # -- producing ------------------------------------------------------------------------------

    def add(self, fields: Mapping[str, bytes]) -> str:
        """Append one entry; returns its stream id."""
        return _text(self._client.xadd(self._stream, dict(fields), **xadd_options(self.maxlen)))

    def add_many(self, entries: Sequence[Mapping[str, bytes]]) -> list[str]:
        """Append entries in one pipeline, in order; returns their stream ids."""
        pipe = self._client.pipeline(transaction=False)
        options = xadd_options(self.maxlen)
        for fields in entries:
            pipe.xadd(self._stream, dict(fields), **options)
        return [_text(i) for i in pipe.execute()]

    # -- consuming ------------------------------------------------------------------------------

    def ensure_group(self, start: str = "0") -> None:
        """Create the stream (``MKSTREAM``) and the group reading it from ``start`` (the first
        entry; ``$``: the end)."""
        try:
            self._client.xgroup_create(self._stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_new(self, count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` undelivered entries (``XREADGROUP >``), blocking up to ``block_ms``.

        Entries trimmed from the stream before the group read them are counted as the read
        passes them (see :meth:`take_lost`), checked in one MULTI with the read.
        """
        entries, lost = self._trust.read(self.consumer, count, block_ms)
        if lost is not None:
            self._gaps.append(lost)
            if lost.count > 0:
                self._lost += lost.count
        return [Delivery(i, f, 1) for i, f in entries]

    def take_lost(self) -> list[Lost]:
        """What reads found trimmed before delivery since the last call (and forget it)."""
        lost, self._gaps = self._gaps, []
        return lost

    def lost_total(self) -> LostTotal:
        """Every loss to trimming this group has counted, from Redis (all its consumers)."""
        return self._trust.lost_total()

    def record_failures(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Count one failed purge attempt for each of ``deliveries`` (a hash kept beside the
        stream, so a restart keeps the count); returns their counts so far."""
        if not deliveries:
            return []
        ids = [d.id for d in deliveries]
        self._failed.update(ids)
        with translate_errors(f"counting attempts on {self._stream!r} failed"):
            return self._trust.record_failures(ids)

    def forget_failures(self, ids: Sequence[str]) -> None:
        """Drop the failed-attempt counts of settled ``ids``."""
        self._trust.forget_failures(ids)

    def read_pending(self, after: str, count: int) -> list[Delivery]:
        """Up to ``count`` own pending entries after id ``after`` (``XREADGROUP`` from an id).

        An entry trimmed from the stream meanwhile comes back with no fields.
        """
        reply = self._client.xreadgroup(
            self.group, self.consumer, {self._stream: after}, count=count
        )
        return self._with_deliveries([(_text(i), f or {}) for i, f in _entries(reply)])

    def claim(self, ids: Sequence[str]) -> list[Delivery]:
        """``XCLAIM`` ``ids`` for this consumer with no idle minimum; counts one delivery each."""
        if not ids:
            return []
        reply = self._client.xclaim(
            self._stream, self.group, self.consumer, min_idle_time=0, message_ids=list(ids)
        )
        return self._with_deliveries([(_text(i), f or {}) for i, f in reply])

    def claim_idle(self, min_idle_ms: int, count: int) -> Claimed:
        """``XAUTOCLAIM`` every entry idle ``min_idle_ms`` or more, ``count`` per call."""
        claimed: list[tuple[str, Mapping[bytes, bytes]]] = []
        lost: list[str] = []
        start = "0-0"
        while True:
            reply = self._client.xautoclaim(
                self._stream,
                self.group,
                self.consumer,
                min_idle_time=min_idle_ms,
                start_id=start,
                count=count,
            )
            start = _text(reply[0])
            claimed += [(_text(i), f or {}) for i, f in reply[1]]
            if len(reply) > 2:
                lost += [_text(i) for i in reply[2]]
            if start == "0-0":
                break
        return Claimed(self._with_deliveries(claimed), lost)

    def ack(self, ids: Sequence[str]) -> None:
        """``XACK`` ``ids`` in one call."""
        if ids:
            self._client.xack(self._stream, self.group, *ids)

    def dead_letter(self, entries: Sequence[tuple[Delivery, str]]) -> None:
        """Append each entry to the dead-letter stream (uncapped): original fields plus
        ``dlq_reason``, ``dlq_stream``, ``dlq_id``, ``dlq_group``, ``dlq_deliveries`` and
        ``dlq_time``; once per entry and group, even when a kill came before the ack."""
        if not entries:
            return
        dead = [Dead(entry, reason) for entry, reason in entries]
        self._trust.dead_letter(
            [
                (d.delivery.id, fields)
                for d, fields in zip(
                    dead, dead_letter_fields(self._stream, dead, self.group), strict=True
                )
            ]
        )

    def group_info(self) -> GroupInfo:
        """The group's ``lag`` and ``pending`` from ``XINFO GROUPS``."""
        for group in self._client.xinfo_groups(self._stream):
            if _text(group["name"]) == self.group:
                lag = group.get("lag")
                return GroupInfo(None if lag is None else int(lag), int(group["pending"]))
        return GroupInfo(None, 0)

    def _with_deliveries(self, entries: list[tuple[str, Mapping[bytes, bytes]]]) -> list[Delivery]:
        # The delivery count is only in the pending list: one XPENDING per id, pipelined.
        if not entries:
            return []
        pipe = self._client.pipeline(transaction=False)
        for entry_id, _ in entries:
            pipe.xpending_range(self._stream, self.group, min=entry_id, max=entry_id, count=1)
        counts = pipe.execute()
        out = []
        for (entry_id, fields), pending in zip(entries, counts, strict=True):
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            out.append(Delivery(entry_id, fields, deliveries))
        return out


def _entries(reply: Any) -> list[tuple[bytes, Mapping[bytes, bytes] | None]]:
    # XREADGROUP answers [[stream, [(id, fields), ...]]] (RESP2) or {stream: [[...]]} (RESP3).
    if not reply:
        return []
    if isinstance(reply, dict):
        out: list[tuple[bytes, Mapping[bytes, bytes] | None]] = []
        for batches in reply.values():
            for batch in batches:
                out += list(batch)
        return out
    return [entry for _, batch in reply for entry in batch]


def dead_letter_fields(stream: str, dead: Sequence[Dead], group: str) -> list[dict[Any, bytes]]:
    """The dead-letter entry of each of ``dead``: its fields plus ``dlq_reason``,
    ``dlq_stream``, ``dlq_id``, ``dlq_group``, ``dlq_deliveries`` and ``dlq_time`` (ms)."""
    now = str(int(time.time() * 1000)).encode()
    out = []
    for d in dead:
        fields: dict[Any, bytes] = dict(d.delivery.fields)
        fields[DLQ_REASON] = d.reason.encode(errors="replace")
        fields[DLQ_STREAM] = stream.encode()
        fields[DLQ_ID] = d.delivery.id.encode()
        fields[DLQ_GROUP] = group.encode()
        fields[DLQ_DELIVERIES] = str(d.delivery.deliveries).encode()
        fields[DLQ_TIME] = now
        out.append(fields)
    return out


def raise_backend(what: str, exc: redis.RedisError) -> NoReturn:
    """Raise :class:`BackendError` for ``exc``, the redis-py error behind ``what``."""
    raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _log(msg: str, *, level: int = logging.INFO, **fields: Any) -> None:
    log_fields(logger, level, msg, fields)
