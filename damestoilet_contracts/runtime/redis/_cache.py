"""The read-through cache with fill leases: :class:`Cache` (sync) and :class:`AsyncCache`.

``get_or_fill`` reads a fresh value with a plain ``HMGET``; otherwise one Lua script reads the
entry hash (see :mod:`runtime.redis._layout`) and either returns a value or hands the caller a fill
lease, atomically. The loader's value is
written back by a second script only if the lease still holds the caller's token; a purge
(``UNLINK``, or a soft purge, which drops ``lease``) in between voids it, so a reader that
loaded a row before it changed can never write the old value back after the invalidation
(the "stale set" race). Concurrent misses wait for the lease holder and re-read; on a
soft-purged entry one reader refills while the others get the stale value (single-flight).

The scripts, the decoding of their replies and the polling schedule do no I/O and live in
:class:`CacheCore`, shared by both twins.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis import _prefix_index as pidx

T = TypeVar("T")

#: Default time to live of a filled entry (s): a backstop, purges do the real work.
DEFAULT_TTL_S = 3600.0

#: How long a miss waits for another caller's fill before loading without filling (s).
DEFAULT_LEASE_WAIT_S = 1.0

_V, _L, _S, _T = (
    layout.FIELD_VALUE,
    layout.FIELD_LEASE,
    layout.FIELD_STALE,
    layout.FIELD_FILLED,
)

# Adds ``member`` to every tag set in KEYS[first..] and keeps each set alive at least
# ``ttl`` ms, so a tag set never expires before a value that joined it.
_ADD_TAGS_LUA = """
local function add_tags(member, ttl, first)
  for i = first, #KEYS do
    redis.call('SADD', KEYS[i], member)
    if redis.call('PTTL', KEYS[i]) < ttl then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  end
end
"""

# Standalone: ARGV[4] is 1 when KEYS[2] is the prefix index (see runtime.redis._prefix_index), which
# then gets the entry's key; the tag sets follow it. Returns where the tag sets start.
_ADD_INDEX_LUA = """
local function add_index(nidx)
  if nidx == 1 then redis.call('ZADD', KEYS[2], 0, KEYS[1]) end
  return 2 + nidx
end
"""

#: KEYS[1] the entry, then (standalone only) the prefix index if ARGV[4] is 1, then its tag
#: sets; ARGV token, lease ttl ms, value ttl ms, 1/0 (index), and ARGV[5] '0' when the
#: caller's refill budget is spent (a stale value is then served, no lease taken; a miss
#: still takes one). Returns {status} or {status, value}; see :class:`Status`.
READ_LUA = (
    _ADD_TAGS_LUA
    + _ADD_INDEX_LUA
    + f"""
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then return {{6}} end
local h = redis.call('HMGET', KEYS[1], '{_V}', '{_L}', '{_S}')
local value, lease, stale = h[1], h[2], h[3]
if value then
  if stale then
    -- a storm-guard spread sets a stale moment still to come: fresh until then
    local t = redis.call('TIME')
    if tonumber(stale) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
      stale = false
    end
  end
  if not stale then return {{1, value}} end
  if lease then return {{2, value}} end
  if ARGV[5] == '0' then return {{7, value}} end
  redis.call('HSET', KEYS[1], '{_L}', ARGV[1])
  add_tags(KEYS[1], tonumber(ARGV[3]), add_index(tonumber(ARGV[4])))
  return {{3, value}}
end
if lease then return {{5}} end
redis.call('HSET', KEYS[1], '{_L}', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
add_tags(KEYS[1], tonumber(ARGV[3]), add_index(tonumber(ARGV[4])))
return {{4}}
"""
)

#: KEYS as for :data:`READ_LUA`; ARGV token, value, ttl ms, 1/0 (index).
#: Writes the value (and its fill time ``t``, the server's clock in ms) only while ``lease``
#: holds the token; returns 1 if written, else 0.
FILL_LUA = (
    _ADD_TAGS_LUA
    + _ADD_INDEX_LUA
    + f"""
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], '{_L}') ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], '{_V}', ARGV[2], '{_T}', now)
redis.call('HDEL', KEYS[1], '{_L}', '{_S}', '{layout.FIELD_SPREAD}')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
add_tags(KEYS[1], tonumber(ARGV[3]), add_index(tonumber(ARGV[4])))
return 1
"""
)

#: KEYS[1] the entry; ARGV[1] token. Gives a lease back after a failed load, so waiting
#: readers need not sit out :data:`LEASE_TTL_MS`; drops the hash if it holds no value.
RELEASE_LUA = f"""
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], '{_L}') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], '{_L}')
if redis.call('HEXISTS', KEYS[1], '{_V}') == 0 then redis.call('DEL', KEYS[1]) end
return 1
"""

#: KEYS: tag sets of one slot; ARGV member, ttl ms. Cluster only: the tags of an entry may
#: live on other nodes, so they are added once the lease is taken (before the loader runs)
#: and again just before the fill.
TAGS_LUA = _ADD_TAGS_LUA + "add_tags(ARGV[1], tonumber(ARGV[2]), 1)\nreturn 1\n"


class Status(IntEnum):
    """What the read script found."""

    HIT = 1  # a fresh value
    STALE = 2  # a stale value; another caller refills
    REFILL = 3  # a stale value; the caller holds the lease and refills
    FILL = 4  # no value; the caller holds the lease and fills
    WAIT = 5  # no value; another caller holds the lease
    FOREIGN = 6  # the key is not a cache entry (another type): load, never fill
    DEFERRED = 7  # a stale value, no lease held: this caller's refill budget is spent


@dataclass(frozen=True, slots=True)
class Read:
    """A decoded reply of the read script."""

    status: Status
    value: bytes | None = None


class Serializer(Protocol[T]):
    """Turns values into bytes and back, for :meth:`Cache.get_or_fill_value`."""

    def dumps(self, value: T) -> bytes:
        """The bytes of ``value``."""
        ...

    def loads(self, data: bytes) -> T:
        """The value of ``data``."""
        ...


class JsonSerializer:
    """JSON (compact, UTF-8) for values made of dicts, lists, strings, numbers and None."""

    def dumps(self, value: Any) -> bytes:
        """Compact JSON bytes of ``value``; raises TypeError for what JSON cannot hold."""
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        """The value of JSON ``data``; raises ValueError when it is not JSON."""
        return json.loads(data)


class RefillBudget:
    """A token bucket over the refills of stale values one cache object starts: at most
    ``rate`` a second on average, ``burst`` at once (default: one second's worth, at least
    one). Thread-safe; it counts only this process's refills (docs/cache.md, "Refill
    budget")."""

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises ValueError for a ``rate`` or ``burst`` that is not positive."""
        if not rate > 0 or math.isinf(rate):
            raise ValueError(
                f"refill_rate must be a positive number of refills a second, got {rate}"
            )
        size = max(1, math.ceil(rate)) if burst is None else burst
        if size < 1:
            raise ValueError(f"refill_burst must be at least 1, got {burst}")
        self.rate = float(rate)
        self.burst = size
        self._clock = clock
        self._tokens = float(size)
        self._at = clock()
        self._lock = threading.Lock()
        #: Reads of a stale value served without a refill because the budget was spent.
        self.deferred = 0

    def take(self) -> bool:
        """Take one refill if the budget has one (True), else False."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def give_back(self) -> None:
        """Return a refill taken for a read that did not refill."""
        with self._lock:
            self._tokens = min(float(self.burst), self._tokens + 1.0)

    def count_deferred(self) -> None:
        """Count one stale value served because the budget was spent."""
        with self._lock:
            self.deferred += 1


class CacheCore:
    """The no-I/O half of the cache: settings, script arguments, reply decoding, polling."""

    def __init__(
        self,
        *,
        cluster: bool,
        ttl: float = DEFAULT_TTL_S,
        lease_wait: float = DEFAULT_LEASE_WAIT_S,
        lease_ttl_ms: int = layout.LEASE_TTL_MS,
        poll_interval: float = 0.005,
        indexed: bool = True,
        refill_rate: float | None = None,
        refill_burst: int | None = None,
    ) -> None:
        if ttl <= 0 or lease_wait < 0 or lease_ttl_ms <= 0 or poll_interval <= 0:
            raise ValueError("ttl, lease_ttl_ms and poll_interval must be > 0, lease_wait >= 0")
        if refill_rate is None and refill_burst is not None:
            raise ValueError("refill_burst needs a refill_rate")
        #: The budget of refills of stale values (None: every stale read may refill).
        self.refill = None if refill_rate is None else RefillBudget(refill_rate, refill_burst)
        self.cluster = cluster
        self.ttl = ttl
        self.lease_wait = lease_wait
        self.lease_ttl_ms = lease_ttl_ms
        self.poll_interval = poll_interval
        #: Whether fills add their key to the prefix index (:mod:`runtime.redis._prefix_index`).
        self.indexed = indexed
        #: The last script argument: 1 when the scripts add the key to the index themselves.
        self.index_arg = 1 if indexed and not cluster else 0

    def read_args(self, token: str, ttl_ms: int) -> tuple[list[Any], bool]:
        """ARGV of the read script, and whether a refill was taken from the budget for it
        (give it back with :meth:`settle_refill` when the read did not refill)."""
        took = self.refill is None or self.refill.take()
        args = [token, self.lease_ttl_ms, ttl_ms, self.index_arg, 1 if took else 0]
        return args, took and self.refill is not None

    def settle_refill(self, read: Read, took: bool) -> None:
        """Give back a refill taken for a read that did not refill; count a deferred one."""
        if self.refill is None:
            return
        if took and read.status is not Status.REFILL:
            self.refill.give_back()
        if read.status is Status.DEFERRED:
            self.refill.count_deferred()

    @staticmethod
    def token() -> str:
        """A fresh lease token, unique across processes."""
        return secrets.token_hex(12)

    def ttl_ms(self, ttl: float | None) -> int:
        """``ttl`` (s, default the cache's) in ms; raises ValueError when not positive."""
        seconds = self.ttl if ttl is None else ttl
        if seconds <= 0:
            raise ValueError(f"ttl must be positive, got {seconds}")
        return max(1, round(seconds * 1000))

    def script_keys(self, key: str, tags: Sequence[str]) -> list[str]:
        """KEYS of the read and fill scripts: the entry, then (standalone) the prefix index
        when the cache keeps it, then the tag sets."""
        if self.cluster:
            return [key]
        index = [pidx.INDEX_KEY] if self.indexed else []
        return [key, *index, *(layout.tag_key(t) for t in tags)]

    def needs_side_calls(self, tags: Sequence[str]) -> bool:
        """Whether a fill on a cluster must add memberships in calls of their own (the tag
        sets and the index shard live on other slots than the entry)."""
        return self.cluster and (self.indexed or bool(tags))

    def tag_groups(self, tags: Sequence[str], slot_of: Callable[[str], int]) -> list[list[str]]:
        """The tag sets of ``tags`` grouped by cluster slot (one script call per group)."""
        groups: dict[int, list[str]] = {}
        for tag in dict.fromkeys(tags):
            tag_set = layout.tag_key(tag)
            groups.setdefault(slot_of(tag_set), []).append(tag_set)
        return list(groups.values())

    @staticmethod
    def fresh(reply: Any) -> bytes | None:
        """The value of an ``HMGET key v stale`` reply when it is a fresh hit, else None.

        Hits are most reads; a plain ``HMGET`` costs the server a tenth of the read script,
        and a hit needs no atomicity, so only misses and stale entries run the script."""
        value, stale = reply
        if value is None or stale is not None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    @staticmethod
    def decode(reply: Any) -> Read:
        """The read script's reply as a :class:`Read`."""
        status = Status(int(reply[0]))
        value = reply[1] if len(reply) > 1 else None
        if isinstance(value, str):  # a client built with decode_responses=True
            value = value.encode()
        return Read(status, value)

    def pauses(self) -> Iterable[float]:
        """Sleeps between re-reads while another caller fills: short first, growing,
        summing to about ``lease_wait``."""
        left = self.lease_wait
        pause = self.poll_interval
        while left > 0:
            step = min(pause, left)
            yield step
            left -= step
            pause = min(pause * 1.5, 0.05)


def _check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    out = tuple(tags)
    if any(t == "" for t in out):
        raise ValueError("a tag may not be empty: its purge would reach unrelated keys")
    return out


class Cache:
    """Read-through cache over a sync redis-py client, with fill leases and soft purges."""

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        *,
        ttl: float = DEFAULT_TTL_S,
        lease_wait: float = DEFAULT_LEASE_WAIT_S,
        lease_ttl_ms: int = layout.LEASE_TTL_MS,
        poll_interval: float = 0.005,
        prefix_index: bool = True,
        refill_rate: float | None = None,
        refill_burst: int | None = None,
    ) -> None:
        """Wrap ``client`` (standalone or cluster). ``ttl`` is the default backstop expiry
        of a fill (s); a miss waits up to ``lease_wait`` s for another caller's fill, polling
        from ``poll_interval`` s, before it loads without filling; ``lease_ttl_ms`` bounds a
        lease whose holder never fills; ``prefix_index`` (default on) adds every filled key
        to the prefix index that purges of ``prefix_index: true`` targets read.
        ``refill_rate`` caps the refills of stale (soft-purged or spread) values this object
        starts, a second, ``refill_burst`` at once: past it a stale value is served as it
        is until the budget has room or the entry's grace window ends (a miss always
        fills). Raises ValueError for non-positive settings."""
        self.client = client
        cluster = isinstance(client, redis.cluster.RedisCluster)
        self.core = CacheCore(
            cluster=cluster,
            ttl=ttl,
            lease_wait=lease_wait,
            lease_ttl_ms=lease_ttl_ms,
            poll_interval=poll_interval,
            indexed=prefix_index,
            refill_rate=refill_rate,
            refill_burst=refill_burst,
        )
        self._read = client.register_script(READ_LUA)
        self._fill = client.register_script(FILL_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._tags = client.register_script(TAGS_LUA)

    @property
    def refill_budget(self) -> RefillBudget | None:
        """The budget of refills of stale values (None without ``refill_rate``): its
        ``deferred`` counts the stale values served because it was spent."""
        return self.core.refill

    def get_or_fill(
        self,
        key: str,
        loader: Callable[[], bytes],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> bytes:
        """The value at ``key``, calling ``loader`` (no arguments, returns bytes) on a miss.

        A fresh hit returns the cached bytes. On a miss this caller takes the fill lease,
        loads, and writes the value with its ``tags`` and ``ttl`` (s) unless a purge voided
        the lease meanwhile; either way it returns what it loaded. If another caller holds
        the lease, it returns the stale value when there is one, else waits for that fill
        and re-reads, loading without filling after ``lease_wait``. Raises what ``loader``
        raises (the lease is given back first) and redis-py errors."""
        tag_list = _check_tags(tags)
        ttl_ms = self.core.ttl_ms(ttl)
        try:
            hit = self.core.fresh(self.client.hmget(key, [_V, _S]))
        except redis.ResponseError:  # WRONGTYPE: not a cache entry; the script says so
            hit = None
        if hit is not None:
            return hit
        token = self.core.token()
        keys = self.core.script_keys(key, tag_list)
        pauses = iter(self.core.pauses())
        while True:
            args, took = self.core.read_args(token, ttl_ms)
            try:
                read = self.core.decode(self._read(keys=keys, args=args))
            except BaseException:
                if took:
                    self.core.settle_refill(Read(Status.WAIT), took)
                raise
            self.core.settle_refill(read, took)
            if read.status in (Status.HIT, Status.STALE, Status.DEFERRED):
                assert read.value is not None
                return read.value
            if read.status is Status.FOREIGN:
                return loader()
            if read.status in (Status.FILL, Status.REFILL):
                return self._load_and_fill(key, keys, token, loader, ttl_ms, tag_list)
            pause = next(pauses, None)
            if pause is None:
                return loader()
            time.sleep(pause)

    def get_or_fill_value(
        self,
        key: str,
        loader: Callable[[], T],
        serializer: Serializer[T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> T:
        """Like :meth:`get_or_fill` for a typed value: ``serializer`` turns what ``loader``
        returns into bytes for the cache and the cached bytes back into a value."""
        return serializer.loads(
            self.get_or_fill(key, lambda: serializer.dumps(loader()), ttl=ttl, tags=tags)
        )

    def invalidate(self, key: str) -> bool:
        """Unlink the entry at ``key``, voiding any outstanding fill lease; True if it
        existed."""
        return bool(self.client.unlink(key))

    def _load_and_fill(
        self,
        key: str,
        keys: list[str],
        token: str,
        loader: Callable[[], bytes],
        ttl_ms: int,
        tags: Sequence[str],
    ) -> bytes:
        try:
            if self.core.needs_side_calls(tags):
                # the membership must be visible before the loader reads: a tag purge
                # after this point finds the key and voids the lease
                self._add_tags(key, tags, ttl_ms)
            value = loader()
        except BaseException:
            self._release(keys=[key], args=[token])
            raise
        if self.core.needs_side_calls(tags):
            self._add_tags(key, tags, ttl_ms)
        self._fill(keys=keys, args=[token, value, ttl_ms, self.core.index_arg])
        return value

    def _add_tags(self, key: str, tags: Sequence[str], ttl_ms: int) -> None:
        assert isinstance(self.client, redis.cluster.RedisCluster)
        if self.core.indexed:
            self.client.zadd(pidx.index_key(key, True), {key: 0})
        for group in self.core.tag_groups(tags, self.client.keyslot):
            self._tags(keys=group, args=[key, ttl_ms])


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class AsyncCache:
    """Read-through cache over a redis.asyncio client, the async twin of :class:`Cache`."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        ttl: float = DEFAULT_TTL_S,
        lease_wait: float = DEFAULT_LEASE_WAIT_S,
        lease_ttl_ms: int = layout.LEASE_TTL_MS,
        poll_interval: float = 0.005,
        prefix_index: bool = True,
        refill_rate: float | None = None,
        refill_burst: int | None = None,
    ) -> None:
        """Wrap ``client``; the settings are those of :class:`Cache`. On a cluster, await
        ``client.initialize()`` before tasks share it: concurrent first use of a
        redis.asyncio cluster client can fail inside redis-py 8.1 (seen as
        ``AttributeError: 'NoneType' object has no attribute 'writelines'``)."""
        self.client = client
        self.core = CacheCore(
            cluster=isinstance(client, redis.asyncio.cluster.RedisCluster),
            ttl=ttl,
            lease_wait=lease_wait,
            lease_ttl_ms=lease_ttl_ms,
            poll_interval=poll_interval,
            indexed=prefix_index,
            refill_rate=refill_rate,
            refill_burst=refill_burst,
        )
        self._read = client.register_script(READ_LUA)
        self._fill = client.register_script(FILL_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._tags = client.register_script(TAGS_LUA)

    @property
    def refill_budget(self) -> RefillBudget | None:
        """The budget of refills of stale values (None without ``refill_rate``): its
        ``deferred`` counts the stale values served because it was spent."""
        return self.core.refill

    async def get_or_fill(
        self,
        key: str,
        loader: Callable[[], Awaitable[bytes]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> bytes:
        """The async :meth:`Cache.get_or_fill`: ``loader`` is an async callable."""
        tag_list = _check_tags(tags)
        ttl_ms = self.core.ttl_ms(ttl)
        try:
            hit = self.core.fresh(await self.client.hmget(key, [_V, _S]))
        except redis.ResponseError:  # WRONGTYPE: not a cache entry; the script says so
            hit = None
        if hit is not None:
            return hit
        token = self.core.token()
        keys = self.core.script_keys(key, tag_list)
        pauses = iter(self.core.pauses())
        while True:
            args, took = self.core.read_args(token, ttl_ms)
            try:
                read = self.core.decode(await self._read(keys=keys, args=args))
            except BaseException:
                if took:
                    self.core.settle_refill(Read(Status.WAIT), took)
                raise
            self.core.settle_refill(read, took)
            if _cancelling():
                # a cancellation that reached us inside the client (which may absorb it)
                # must not go on to load and fill; give back a lease just taken
                if read.status in (Status.FILL, Status.REFILL):
                    await self._release(keys=[key], args=[token])
                raise asyncio.CancelledError
            if read.status in (Status.HIT, Status.STALE, Status.DEFERRED):
                assert read.value is not None
                return read.value
            if read.status is Status.FOREIGN:
                return await loader()
            if read.status in (Status.FILL, Status.REFILL):
                return await self._load_and_fill(key, keys, token, loader, ttl_ms, tag_list)
            pause = next(pauses, None)
            if pause is None:
                return await loader()
            await asyncio.sleep(pause)

    async def get_or_fill_value(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        serializer: Serializer[T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> T:
        """The async :meth:`Cache.get_or_fill_value`."""

        async def load() -> bytes:
            return serializer.dumps(await loader())

        return serializer.loads(await self.get_or_fill(key, load, ttl=ttl, tags=tags))

    async def invalidate(self, key: str) -> bool:
        """Unlink the entry at ``key``, voiding any outstanding fill lease."""
        return bool(await self.client.unlink(key))

    async def _load_and_fill(
        self,
        key: str,
        keys: list[str],
        token: str,
        loader: Callable[[], Awaitable[bytes]],
        ttl_ms: int,
        tags: Sequence[str],
    ) -> bytes:
        try:
            if self.core.needs_side_calls(tags):
                # the membership must be visible before the loader reads: a tag purge
                # after this point finds the key and voids the lease
                await self._add_tags(key, tags, ttl_ms)
            value = await loader()
        except BaseException:
            await self._release(keys=[key], args=[token])
            raise
        if self.core.needs_side_calls(tags):
            await self._add_tags(key, tags, ttl_ms)
        await self._fill(keys=keys, args=[token, value, ttl_ms, self.core.index_arg])
        return value

    async def _add_tags(self, key: str, tags: Sequence[str], ttl_ms: int) -> None:
        assert isinstance(self.client, redis.asyncio.cluster.RedisCluster)
        if self.core.indexed:
            await self.client.zadd(pidx.index_key(key, True), {key: 0})
        for group in self.core.tag_groups(tags, self.client.keyslot):
            await self._tags(keys=group, args=[key, ttl_ms])
