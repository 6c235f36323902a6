"""How damestoilet lays its own data out in Redis. Every runtime module takes its key names and
encodings from here, so the coordinator, the purge targets and the read-through cache agree.

Cache entries
    A key written by the read-through cache (:mod:`runtime.cache`) is a Redis **hash** at the
    cache key itself, so that the value, its staleness and its fill lease live in one key (one
    slot in a cluster, one ``UNLINK`` voids them all):

    ``v``      the value (bytes)
    ``lease``  the token of the outstanding fill lease, if any
    ``stale``  present when soft-purged: the unix time in ms at which it was marked stale

    A miss with no value takes the lease by creating the hash with only ``lease`` and a short
    expiry (:data:`LEASE_TTL_MS`). A fill is written only if ``lease`` still holds its token.

    Keys written by anyone else (plain ``SET``) are purged too: ``delete`` unlinks whatever
    type the key is; ``soft`` on a non-hash key only shortens its expiry to the grace window.

Tags
    The members of tag ``T`` are in the Redis **set** ``tag_key(T)``. A fill adds its key to
    the sets of its tags before (cluster) or with (standalone, same script) its value, so a
    value is never visible without its memberships. A tag purge reads the set, purges the
    members, then removes those members from the set (``SREM``, not ``DEL``: a fill that
    joined meanwhile keeps its membership).

Dedup of event ids
    ``done_key(id)`` is set with ``NX`` and an expiry (default 300 s) only after the event's
    purge succeeded; the coordinator skips an event whose id is already done.
"""

from __future__ import annotations

#: Prefix of every key damestoilet writes for its own bookkeeping.
NAMESPACE = "damestoilet:"

#: Hash fields of a cache entry.
FIELD_VALUE = "v"
FIELD_LEASE = "lease"
FIELD_STALE = "stale"

#: How long a fill lease lives when its holder never fills (ms).
LEASE_TTL_MS = 10_000

#: How long an event id stays marked done (s).
DEFAULT_DONE_TTL_S = 300

#: Default grace window of a soft purge (s), when the flush graph names none for the target.
DEFAULT_GRACE_S = 30.0


def tag_key(tag: str) -> str:
    """The Redis set holding the keys filled under ``tag``."""
    return f"{NAMESPACE}tag:{tag}"


def done_key(event_id: str) -> str:
    """The marker that event ``event_id`` was purged."""
    return f"{NAMESPACE}done:{event_id}"


def escape_glob(text: str) -> str:
    """``text`` with Redis glob characters (``* ? [ ] \\``) escaped, for ``SCAN MATCH``."""
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)
