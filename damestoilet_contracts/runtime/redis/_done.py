"""The done store on Redis: ``done_key(id, group)`` set with ``NX EX`` once an event's purge
succeeded (:mod:`runtime.redis._layout`). On a standalone server a batch costs one script
call to check and one to mark, each given the batch's ids as one newline-joined argument
(packing one argument costs the client far less than packing one key per event); on a
cluster one ``MGET`` split by slot and one pipeline. Redis errors leave as
:class:`BackendError`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.cluster import RedisCluster

from damestoilet_contracts._errors import BackendError
from damestoilet_contracts.runtime.redis._layout import done_key

#: The 1-based positions of the KEYS that exist: one call for a batch's dedup check on a
#: standalone server, whose reply is empty in the common case (an MGET answers a nil per key,
#: each one parsed in Python).
_SEEN_LUA = """
local seen = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then seen[#seen + 1] = i end
end
return seen
"""

#: Marks every KEYS[i] done (SET NX EX ARGV[1]) in one call on a standalone server.
_MARK_DONE_LUA = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'NX', 'EX', ARGV[1])
end
return #KEYS
"""

#: :data:`_SEEN_LUA` with the keys as ARGV[1] (their shared prefix) joined to each line of
#: ARGV[2] (the ids, newline-joined). Keys a script builds are not declared, which only a
#: standalone server allows: a cluster takes the MGET path.
_SEEN_JOINED_LUA = """
local prefix, seen, i = ARGV[1], {}, 0
for id in string.gmatch(ARGV[2], '[^\\n]+') do
  i = i + 1
  if redis.call('EXISTS', prefix .. id) == 1 then seen[#seen + 1] = i end
end
return seen
"""

#: :data:`_MARK_DONE_LUA` with the keys as in :data:`_SEEN_JOINED_LUA` and the TTL in ARGV[3].
_MARK_JOINED_LUA = """
local prefix, ttl, n = ARGV[1], ARGV[3], 0
for id in string.gmatch(ARGV[2], '[^\\n]+') do
  n = n + 1
  redis.call('SET', prefix .. id, '1', 'NX', 'EX', ttl)
end
return n
"""


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn a redis-py error inside the block into :class:`BackendError` naming ``what``."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _joined(ids: Sequence[str]) -> str | None:
    """``ids`` newline-joined, or None when that would not give them back line by line: one
    is empty or holds a newline (an envelope's id can be neither, a caller's might)."""
    text = "\n".join(ids)
    if text.count("\n") != len(ids) - 1 or not all(ids):
        return None
    return text


def _keys(group: str, ids: Sequence[str]) -> list[bytes]:
    # done_key(id, group) is this prefix + id; bytes, so that redis-py's encoder passes them
    # through at its first test
    prefix = done_key("", group)
    return [(prefix + i).encode() for i in ids]


class RedisDoneStore:
    """Done marks in a Redis server or cluster (``decode_responses=False``)."""

    def __init__(self, client: redis.Redis | RedisCluster) -> None:
        """Keep the marks in ``client``'s Redis."""
        self._client: Any = client
        self._cluster = isinstance(client, RedisCluster)
        self._seen_script: Any = None
        self._mark_script: Any = None
        self._seen_joined: Any = None
        self._mark_joined: Any = None

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False) -> RedisDoneStore:
        """A done store with its own client for ``url``; raises ValueError for a bad URL."""
        return cls(RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url))

    def seen(self, group: str, ids: Sequence[str]) -> set[int]:
        """The positions in ``ids`` already done for ``group``."""
        if not ids:
            return set()
        with translate_errors("the done store failed"):
            joined = None if self._cluster else _joined(ids)
            if joined is not None:
                if self._seen_joined is None:
                    self._seen_joined = self._client.register_script(_SEEN_JOINED_LUA)
                reply = self._seen_joined(args=[done_key("", group), joined])
                return {int(i) - 1 for i in reply}
            keys = _keys(group, ids)
            if self._cluster:
                # One MGET split by slot costs far less than a command per event.
                values = self._client.mget_nonatomic(keys)
                return {i for i, value in enumerate(values) if value is not None}
            if self._seen_script is None:
                self._seen_script = self._client.register_script(_SEEN_LUA)
            return {int(i) - 1 for i in self._seen_script(keys=keys)}

    def mark(self, group: str, ids: Sequence[str], ttl_s: int) -> None:
        """Mark ``ids`` done for ``group`` (``SET NX EX ttl_s``)."""
        if not ids:
            return
        with translate_errors("the done store failed"):
            joined = None if self._cluster else _joined(ids)
            if joined is not None:
                # One script call and one argument for the batch: a SET per event costs
                # more to send and parse.
                if self._mark_joined is None:
                    self._mark_joined = self._client.register_script(_MARK_JOINED_LUA)
                self._mark_joined(args=[done_key("", group), joined, ttl_s])
                return
            keys = _keys(group, ids)
            if self._cluster:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.set(key, b"1", nx=True, ex=ttl_s)
                pipe.execute()
                return
            if self._mark_script is None:
                self._mark_script = self._client.register_script(_MARK_DONE_LUA)
            self._mark_script(keys=keys, args=[ttl_s])


class AsyncRedisDoneStore:
    """:class:`RedisDoneStore` over ``redis.asyncio``."""

    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.RedisCluster) -> None:
        """Keep the marks in ``client``'s Redis."""
        self._client: Any = client
        self._cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        self._seen_script: Any = None
        self._mark_script: Any = None
        self._seen_joined: Any = None
        self._mark_joined: Any = None

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False) -> AsyncRedisDoneStore:
        """See :meth:`RedisDoneStore.from_url`."""
        client: Any = (
            redis.asyncio.cluster.RedisCluster.from_url(url)
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        return cls(client)

    async def seen(self, group: str, ids: Sequence[str]) -> set[int]:
        """See :meth:`RedisDoneStore.seen`."""
        if not ids:
            return set()
        with translate_errors("the done store failed"):
            joined = None if self._cluster else _joined(ids)
            if joined is not None:
                if self._seen_joined is None:
                    self._seen_joined = self._client.register_script(_SEEN_JOINED_LUA)
                reply = await self._seen_joined(args=[done_key("", group), joined])
                return {int(i) - 1 for i in reply}
            keys = _keys(group, ids)
            if self._cluster:
                values = await self._client.mget_nonatomic(keys)
                return {i for i, value in enumerate(values) if value is not None}
            if self._seen_script is None:
                self._seen_script = self._client.register_script(_SEEN_LUA)
            return {int(i) - 1 for i in await self._seen_script(keys=keys)}

    async def mark(self, group: str, ids: Sequence[str], ttl_s: int) -> None:
        """See :meth:`RedisDoneStore.mark`."""
        if not ids:
            return
        with translate_errors("the done store failed"):
            joined = None if self._cluster else _joined(ids)
            if joined is not None:
                if self._mark_joined is None:
                    self._mark_joined = self._client.register_script(_MARK_JOINED_LUA)
                await self._mark_joined(args=[done_key("", group), joined, ttl_s])
                return
            keys = _keys(group, ids)
            if self._cluster:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.set(key, b"1", nx=True, ex=ttl_s)
                await pipe.execute()
                return
            if self._mark_script is None:
                self._mark_script = self._client.register_script(_MARK_DONE_LUA)
            await self._mark_script(keys=keys, args=[ttl_s])
