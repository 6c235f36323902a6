"""What the Redis stream bus does so that nothing is lost or doubled silently (docs/trust.md):

- **trim detection**: every read of new entries runs in one script that first compares the
  group's ``entries-read`` with the stream's ``entries-added`` and ``length`` (from
  ``XINFO``); entries trimmed from the stream before the group ever read them are counted
  (in :func:`lost_key`'s hash, kept with the stream) and reported, and only then does the
  same script read (``XREADGROUP``). Being one script, no trim can slip in between;
- **failed attempts**: a purge that failed is counted in :func:`attempts_key`'s hash, by
  entry id (a restart or a kill re-reads an entry and bumps Redis's delivery count, but it
  is no attempt); the field goes when the entry is acknowledged;
- **dead letters once**: a letter is written by a script that first looks the entry up in
  :func:`dlq_index_key`'s hash, so a kill between the letter and the ack never gives two.

Every key here shares the hash slot of its stream (a ``{stream}`` hash tag), so the scripts
also run on a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from damestoilet_contracts.runtime._seams import Lost
from damestoilet_contracts.runtime.redis._layout import NAMESPACE

#: Counts, for group ARGV[1] of stream KEYS[1], the entries trimmed before the group read
#: them into hash KEYS[2], and returns ``{lost, last-delivered-id, first id}`` (lost -1: some
#: were, how many is unknown). The group's ``entries-read`` is its position as a count; the
#: entries before the stream's first one number ``entries-added - length``; so a group behind
#: the first entry lost the difference. Redis keeps ``entries-read`` counting reads one by one
#: across a trim, so the script then sets it to that number (``XGROUP SETID ... ENTRIESREAD``):
#: the count stays a position, and Redis's own ``lag`` comes out right again. Sent in one
#: MULTI with the read that follows, so no trim slips in between.
_CHECK_LUA = """
local stream, group = KEYS[1], ARGV[1]
local function older(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local added, length, first = 0, 0, '0-0'
local s = redis.call('XINFO', 'STREAM', stream)
for i = 1, #s, 2 do
  local k = s[i]
  if k == 'entries-added' then added = s[i + 1]
  elseif k == 'length' then length = s[i + 1]
  elseif k == 'recorded-first-entry-id' then first = s[i + 1] end
end
local last, read = nil, false
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, r, l = nil, false, '0-0'
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'entries-read' then r = g[i + 1]
    elseif g[i] == 'last-delivered-id' then l = g[i + 1] end
  end
  if name == group then last, read = l, r end
end
if not last then return {0, '0-0', first} end
if not read and last == '0-0' then read = 0 end
local removed = added - length
local lost = 0
if removed > 0 and (length == 0 or older(last, first)) then
  if not read then lost = -1 elseif removed > read then lost = removed - read end
  if lost ~= 0 then
    redis.call('XGROUP', 'SETID', stream, group, last, 'ENTRIESREAD', removed)
  end
end
if lost > 0 then redis.call('HINCRBY', KEYS[2], 'total', lost)
elseif lost < 0 then redis.call('HINCRBY', KEYS[2], 'unknown', 1) end
if lost ~= 0 then redis.call('HSET', KEYS[2], 'after', last, 'before', first) end
return {lost, last, first}
"""

#: Appends ARGV[2..] (field, value, ...) to dead-letter stream KEYS[1] unless index hash
#: KEYS[2] already has ARGV[1] (group:entry id); returns the letter's id either way.
_DEAD_LETTER_LUA = """
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return known end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], id)
return id
"""


def _tagged(stream: str, what: str, group: str = "") -> str:
    # A name without braces hashes whole, so `{stream}` puts the key in the stream's slot; a
    # name with its own hash tag keeps it by being the key's start.
    base = f"{stream}:{what}" if "{" in stream else f"{NAMESPACE}{what}:{{{stream}}}"
    return f"{base}:{group}" if group else base


def lost_key(stream: str, group: str) -> str:
    """The hash counting entries of ``stream`` that ``group`` lost to trimming: ``total``,
    ``unknown`` (times a loss was seen with no count), ``after`` and ``before`` (the ids
    around the last gap). It exists only once something was lost."""
    return _tagged(stream, "lost", group)


def attempts_key(stream: str, group: str) -> str:
    """The hash of ``group``'s failed purge attempts, by entry id of ``stream``."""
    return _tagged(stream, "attempts", group)


def dlq_index_key(dlq_stream: str) -> str:
    """The hash from ``<group>:<entry id>`` to the id of its letter in ``dlq_stream``."""
    return _tagged(dlq_stream, "dlq-index")


def bookkeeping_keys(stream: str, group: str, dlq_stream: str) -> list[str]:
    """The keys this module keeps for ``group`` on ``stream``: drop them with the stream."""
    return [lost_key(stream, group), attempts_key(stream, group), dlq_index_key(dlq_stream)]


def dlq_index_field(group: str, entry_id: str) -> str:
    """The field of :func:`dlq_index_key` for one entry of one group."""
    return f"{group}:{entry_id}"


@dataclass(frozen=True, slots=True)
class LostTotal:
    """What :func:`lost_key` holds: the group's losses to trimming since it was made."""

    total: int = 0
    unknown: int = 0
    after: str = ""
    before: str = ""


def _id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def acknowledged_floor(client: Any, stream: str) -> str | None:
    """The id below which every group of ``stream`` has read and acknowledged every entry:
    the smallest of each group's oldest pending id or, with nothing pending, its
    last-delivered id. None when the stream has no group (nothing is known to be read)."""
    floor: tuple[int, int] | None = None
    for group in client.xinfo_groups(stream):
        summary = client.xpending(stream, group["name"])
        mark = summary["min"] if summary["pending"] else group["last-delivered-id"]
        value = _id(_text(mark))
        floor = value if floor is None or value < floor else floor
    return None if floor is None else f"{floor[0]}-{floor[1]}"


def trim_acknowledged(client: Any, stream: str) -> int:
    """Remove the entries of ``stream`` that every group has read and acknowledged
    (``XTRIM MINID`` at :func:`acknowledged_floor`): a stream emitted without a cap then
    holds what some group still needs, and nothing is trimmed unread. Returns how many
    entries were removed (0 when the stream has no group)."""
    floor = acknowledged_floor(client, stream)
    if floor is None:
        return 0
    return int(client.xtrim(stream, minid=floor, approximate=False))


def lost_by_group(client: Any, stream: str) -> dict[str, LostTotal]:
    """Every group of ``stream`` with what it lost to trimming (groups that lost nothing
    included); empty when the stream does not exist."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream: nothing was consumed, nothing lost
        if not client.exists(stream):
            return {}
        raise
    out = {}
    for group in groups:
        name = _text(group["name"])
        out[name] = StreamTrust(client, stream, name, "").lost_total()
    return out


class StreamTrust:
    """The scripts and bookkeeping above for one group on one stream."""

    def __init__(self, client: Any, stream: str, group: str, dlq_stream: str) -> None:
        self._client = client
        self.stream, self.group, self.dlq_stream = stream, group, dlq_stream
        self.lost_key = lost_key(stream, group)
        self.attempts_key = attempts_key(stream, group)
        self.index_key = dlq_index_key(dlq_stream)
        self._check: Any = None
        self._dead: Any = None

    def read(
        self, consumer: str, count: int, block_ms: int
    ) -> tuple[list[tuple[str, Mapping[bytes, bytes]]], Lost | None]:
        """Up to ``count`` new entries for ``consumer`` (waiting up to ``block_ms`` when
        there are none), and what was lost to trimming before them (None: nothing)."""
        if self._check is None:
            self._check = self._client.register_script(_CHECK_LUA)
        keys, args = [self.stream, self.lost_key], [self.group]
        streams: dict[Any, Any] = {self.stream: ">"}
        if isinstance(self._client, RedisCluster):
            # a cluster pipeline takes no script: check, then read (a trim in between is
            # counted at the next check that finds the group behind)
            checked = self._check(keys=keys, args=args)
            reply = self._client.xreadgroup(self.group, consumer, streams, count=count)
        else:
            pipe = self._client.pipeline(transaction=True)
            self._check(keys=keys, args=args, client=pipe)
            pipe.xreadgroup(self.group, consumer, streams, count=count)
            checked, reply = pipe.execute()
        if not reply and block_ms:
            # Blocked, a read is served by the XADD that wakes it: no trim comes between.
            reply = self._client.xreadgroup(
                self.group, consumer, streams, count=count, block=block_ms
            )
        lost, last, first = checked
        gone = Lost(int(lost), _text(last), _text(first)) if int(lost) else None
        return _entries(reply), gone

    def lost_total(self) -> LostTotal:
        """The group's losses to trimming, as counted so far."""
        raw = {_text(k): _text(v) for k, v in self._client.hgetall(self.lost_key).items()}
        return LostTotal(
            int(raw.get("total", 0)),
            int(raw.get("unknown", 0)),
            raw.get("after", ""),
            raw.get("before", ""),
        )

    def record_failures(self, ids: Sequence[str]) -> list[int]:
        """Count one failed attempt for each of ``ids``; returns each one's count so far."""
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hincrby(self.attempts_key, entry_id, 1)
        return [int(n) for n in pipe.execute()]

    def forget_failures(self, ids: Sequence[str]) -> None:
        """Drop the failed-attempt counts of ``ids`` (acknowledged: they are settled)."""
        if ids:
            self._client.hdel(self.attempts_key, *ids)

    def dead_letter(self, letters: Sequence[tuple[str, Mapping[Any, bytes]]]) -> list[str]:
        """Write each ``(entry id, letter fields)`` to the dead-letter stream unless this
        group already did (a kill between letter and ack); returns the letters' ids."""
        if self._dead is None:
            self._dead = self._client.register_script(_DEAD_LETTER_LUA)
        ids = []
        # One call each (a cluster pipeline refuses scripts): letters are rare.
        for entry_id, fields in letters:
            flat: list[Any] = [dlq_index_field(self.group, entry_id)]
            for name, value in fields.items():
                flat += [name, value]
            ids.append(_text(self._dead(keys=[self.dlq_stream, self.index_key], args=flat)))
        return ids


class AsyncStreamTrust:
    """:class:`StreamTrust` over a ``redis.asyncio`` client: the same scripts and keys."""

    def __init__(self, client: Any, stream: str, group: str, dlq_stream: str) -> None:
        self._client = client
        self.stream, self.group, self.dlq_stream = stream, group, dlq_stream
        self.lost_key = lost_key(stream, group)
        self.attempts_key = attempts_key(stream, group)
        self.index_key = dlq_index_key(dlq_stream)
        self._check: Any = None
        self._dead: Any = None

    async def read(
        self, consumer: str, count: int, block_ms: int
    ) -> tuple[list[tuple[str, Mapping[bytes, bytes]]], Lost | None]:
        """See :meth:`StreamTrust.read`."""
        import redis.asyncio.cluster

        if self._check is None:
            self._check = self._client.register_script(_CHECK_LUA)
        keys, args = [self.stream, self.lost_key], [self.group]
        streams: dict[Any, Any] = {self.stream: ">"}
        if isinstance(self._client, redis.asyncio.cluster.RedisCluster):
            checked = await self._check(keys=keys, args=args)
            reply = await self._client.xreadgroup(self.group, consumer, streams, count=count)
        else:
            pipe = self._client.pipeline(transaction=True)
            await self._check(keys=keys, args=args, client=pipe)
            pipe.xreadgroup(self.group, consumer, streams, count=count)
            checked, reply = await pipe.execute()
        if not reply and block_ms:
            reply = await self._client.xreadgroup(
                self.group, consumer, streams, count=count, block=block_ms
            )
        lost, last, first = checked
        gone = Lost(int(lost), _text(last), _text(first)) if int(lost) else None
        return _entries(reply), gone

    async def record_failures(self, ids: Sequence[str]) -> list[int]:
        """See :meth:`StreamTrust.record_failures`."""
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hincrby(self.attempts_key, entry_id, 1)
        return [int(n) for n in await pipe.execute()]

    async def forget_failures(self, ids: Sequence[str]) -> None:
        """See :meth:`StreamTrust.forget_failures`."""
        if ids:
            await self._client.hdel(self.attempts_key, *ids)

    async def dead_letter(self, letters: Sequence[tuple[str, Mapping[Any, bytes]]]) -> list[str]:
        """See :meth:`StreamTrust.dead_letter`."""
        if self._dead is None:
            self._dead = self._client.register_script(_DEAD_LETTER_LUA)
        ids = []
        for entry_id, fields in letters:
            flat: list[Any] = [dlq_index_field(self.group, entry_id)]
            for name, value in fields.items():
                flat += [name, value]
            letter = await self._dead(keys=[self.dlq_stream, self.index_key], args=flat)
            ids.append(_text(letter))
        return ids


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[tuple[str, Mapping[bytes, bytes]]]:
    # XREADGROUP answers [[stream, [(id, fields), ...]]] (RESP2) or {stream: [[...]]} (RESP3).
    if not reply:
        return []
    if isinstance(reply, dict):
        batches = [batch for value in reply.values() for batch in value]
    else:
        batches = [batch for _, batch in reply]
    return [(_text(i), f or {}) for batch in batches for i, f in batch]
