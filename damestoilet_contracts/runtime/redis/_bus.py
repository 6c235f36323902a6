"""Redis Streams as the bus: ``XADD`` with approximate ``MAXLEN``, consumer groups,
``XREADGROUP``, ``XAUTOCLAIM``, ``XACK`` and a dead-letter stream. Works on a standalone
server and on a cluster (every command of one bus names one stream key)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster

from damestoilet_contracts.runtime._seams import (
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_REASON,
    DLQ_STREAM,
    DLQ_TIME,
    BusEntry,
    Claimed,
    GroupInfo,
    Lost,
    dlq_stream_name,
)
from damestoilet_contracts.runtime.redis._trust import LostTotal, StreamTrust

#: A sync client the runtime accepts: standalone or cluster, ``decode_responses=False``.
SyncRedis: TypeAlias = "redis.Redis | RedisCluster"

#: The default stream and group.
DEFAULT_STREAM = "damestoilet:events"
DEFAULT_GROUP = "damestoilet-coordinator"

#: Default approximate cap of the stream's length; older entries are trimmed by XADD.
DEFAULT_MAXLEN = 1_000_000


def connect(url: str, *, cluster: bool = False) -> SyncRedis:
    """A sync client for ``url``: a :class:`RedisCluster` discovering the cluster from that
    node when ``cluster``, else a plain client. Raises ValueError for a malformed URL."""
    if cluster:
        return RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


def default_consumer() -> str:
    """A consumer name unique to this process on this host: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


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
        self._trust = StreamTrust(self._client, stream, group, self.dlq_stream)
        self._lost: list[Lost] = []

    @property
    def stream(self) -> str:
        """The stream's name."""
        return self._stream

    @property
    def client(self) -> SyncRedis:
        """The Redis client this bus uses."""
        client: SyncRedis = self._client
        return client

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

    def ensure_group(self) -> None:
        """Create the stream (``MKSTREAM``) and the group reading it from the first entry."""
        try:
            self._client.xgroup_create(self._stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_new(self, count: int, block_ms: int) -> list[BusEntry]:
        """Up to ``count`` undelivered entries (``XREADGROUP >``), blocking up to ``block_ms``.

        Entries trimmed from the stream before the group read them are counted as the read
        passes them (see :meth:`take_lost`), checked in one MULTI with the read.
        """
        entries, lost = self._trust.read(self.consumer, count, block_ms)
        if lost is not None:
            self._lost.append(lost)
        return [BusEntry(i, f, 1) for i, f in entries]

    def take_lost(self) -> list[Lost]:
        """What reads found trimmed before delivery since the last call (and forget it)."""
        lost, self._lost = self._lost, []
        return lost

    def lost_total(self) -> LostTotal:
        """Every loss to trimming this group has counted, from Redis (all its consumers)."""
        return self._trust.lost_total()

    def record_failures(self, ids: Sequence[str]) -> list[int]:
        """Count one failed purge attempt for each of ``ids``; returns their counts so far."""
        return self._trust.record_failures(ids) if ids else []

    def forget_failures(self, ids: Sequence[str]) -> None:
        """Drop the failed-attempt counts of settled ``ids``."""
        self._trust.forget_failures(ids)

    def read_pending(self, after: str, count: int) -> list[BusEntry]:
        """Up to ``count`` own pending entries after id ``after`` (``XREADGROUP`` from an id).

        An entry trimmed from the stream meanwhile comes back with no fields.
        """
        reply = self._client.xreadgroup(
            self.group, self.consumer, {self._stream: after}, count=count
        )
        return self._with_deliveries([(_text(i), f or {}) for i, f in _entries(reply)])

    def claim(self, ids: Sequence[str]) -> list[BusEntry]:
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

    def dead_letter(self, entries: Sequence[tuple[BusEntry, str]]) -> None:
        """Append each entry to the dead-letter stream (uncapped): original fields plus
        ``dlq_reason``, ``dlq_stream``, ``dlq_id``, ``dlq_group``, ``dlq_deliveries`` and
        ``dlq_time``; once per entry and group, even when a kill came before the ack."""
        if not entries:
            return
        now = str(int(time.time() * 1000)).encode()
        letters = []
        for entry, reason in entries:
            fields: dict[Any, bytes] = dict(entry.fields)
            fields[DLQ_REASON] = reason.encode(errors="replace")
            fields[DLQ_STREAM] = self._stream.encode()
            fields[DLQ_ID] = entry.id.encode()
            fields[DLQ_GROUP] = self.group.encode()
            fields[DLQ_DELIVERIES] = str(entry.deliveries).encode()
            fields[DLQ_TIME] = now
            letters.append((entry.id, fields))
        self._trust.dead_letter(letters)

    def group_info(self) -> GroupInfo:
        """The group's ``lag`` and ``pending`` from ``XINFO GROUPS``."""
        for group in self._client.xinfo_groups(self._stream):
            if _text(group["name"]) == self.group:
                lag = group.get("lag")
                return GroupInfo(None if lag is None else int(lag), int(group["pending"]))
        return GroupInfo(None, 0)

    def _with_deliveries(self, entries: list[tuple[str, Mapping[bytes, bytes]]]) -> list[BusEntry]:
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
            out.append(BusEntry(entry_id, fields, deliveries))
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
