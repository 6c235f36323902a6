"""How damestoilet lays its own data out in Redis. Every runtime module takes its key names and
encodings from here, so the coordinator, the purge targets and the read-through cache agree.

Cache entries
    A key written by the read-through cache (:mod:`runtime.redis._cache`) is a Redis **hash** at the
    cache key itself, so that the value, its staleness and its fill lease live in one key (one
    slot in a cluster, one ``UNLINK`` voids them all):

    ``v``      the value (bytes)
    ``lease``  the token of the outstanding fill lease, if any
    ``stale``  present when soft-purged: the unix time in ms at which it was marked stale
               (a time still to come when the storm guard spread it: fresh until then)
    ``t``      the unix time in ms (the server's clock) at which ``v`` was filled; what
               ``damestoilet verify`` compares with an event's time
    ``spread`` set by the storm guard: the time (ms) until which the entry, though filled
               before the event, is within the guard's window (``damestoilet verify``)

    A miss with no value takes the lease by creating the hash with only ``lease`` and a short
    expiry (:data:`LEASE_TTL_MS`). A fill is written only if ``lease`` still holds its token;
    it sets ``v``, removes ``lease``, ``stale`` and ``spread``, and sets the entry's TTL (a
    backstop).
    ``UNLINK`` of the key voids every outstanding lease; so does a soft purge (it removes
    ``lease``). A lease whose holder dies expires with the lease-only hash; on a stale entry it
    lasts at most the grace window, during which the other readers are served the stale value.
    A caller whose load fails gives its lease back (and drops a hash left with no value).

    Soft purge (``mode: soft``): a hash entry gets ``stale`` = now ms (kept if already stale),
    loses ``lease``, and its expiry is shortened to the target's grace window; the first reader
    within the window takes the lease and refills, the others get the stale value. A soft purge
    never lengthens a key's life.

    Spread purge (the storm guard, :mod:`runtime._storm`): like a soft purge, but ``stale`` is a
    moment drawn over the guard's window (an earlier one already there is kept), ``spread`` is
    that moment plus the grace window, and the expiry is at most the same; until ``stale`` the
    entry reads as fresh. A key of another type only gets its expiry shortened to its moment.

    Keys written by anyone else (plain ``SET``) are purged too: ``delete`` unlinks whatever
    type the key is; ``soft`` on a non-hash key only shortens its expiry to the grace window.
    The read-through cache treats such a key as foreign: it loads and never fills over it.

Tags
    The members of tag ``T`` are in the Redis **set** ``tag_key(T)``. A reader adds the key to
    the sets of its tags when it takes the lease, before its loader runs, and again with the
    fill (standalone: inside the same scripts; cluster, where the sets live on other slots:
    just after the lease and just before the fill). So a value is never visible without its
    memberships, and a tag purge that starts after a load began always finds that key and
    voids its lease. Each tag set's expiry is kept at least as long as the TTL of the last
    fill that joined it, so a set never expires before a member's value.

    A tag purge reads the set (``SSCAN`` to cursor 0), and for each chunk of members removes
    them from the set (``SREM``, not ``DEL``: a fill that joined meanwhile keeps its
    membership) and purges them. Standalone, the two go in one ``MULTI``, so no reader sees a
    value that has left its set. In a cluster the set and its members live on different
    slots, so ``SREM`` goes first and the purge after: a member removed from the set is
    always purged afterwards, and a reader that re-joins the set after the ``SREM`` either
    has its lease voided by the purge that follows or took its lease after the purge began
    (and so loads fresh data). A member whose key is already gone is a harmless no-op.

Prefixes
    For a target declared ``prefix_index: true``: the prefix index, sorted sets of the keys the
    cache filled (``damestoilet:pidx``; on a cluster 16 shards), read with ``ZRANGEBYLEX``; see
    :mod:`runtime.redis._prefix_index`. For any other target: one ``SCAN`` per stage with ``MATCH``
    the glob-escaped common prefix of its prefixes plus ``*``, to cursor 0, on every primary of
    a cluster; never ``KEYS``.

Dedup of event ids
    ``done_key(id, group)`` is set with ``NX`` and an expiry (default 300 s) only after the
    event's purge succeeded; the coordinator skips an event whose id is already done. The key
    is per consumer group: every group (the coordinator, each flush agent) purges its own
    targets, so one group's done mark must never make another skip the event.
"""

from __future__ import annotations

from damestoilet_contracts.runtime._seams import DEFAULT_DONE_TTL_S as _DEFAULT_DONE_TTL_S

#: Prefix of every key damestoilet writes for its own bookkeeping.
NAMESPACE = "damestoilet:"

#: Hash fields of a cache entry.
FIELD_VALUE = "v"
FIELD_LEASE = "lease"
FIELD_STALE = "stale"
FIELD_FILLED = "t"
#: Set by the storm guard (runtime._storm): until when (ms) the entry counts as consistent
#: although it still holds a value filled before the event; a fill removes it.
FIELD_SPREAD = "spread"

#: How long a fill lease lives when its holder never fills (ms).
LEASE_TTL_MS = 10_000

#: How long an event id stays marked done (s): the default of every done store.
DEFAULT_DONE_TTL_S = _DEFAULT_DONE_TTL_S

#: Default grace window of a soft purge (s), when the flush graph names none for the target.
DEFAULT_GRACE_S = 30.0


def tag_key(tag: str) -> str:
    """The Redis set holding the keys filled under ``tag``."""
    return f"{NAMESPACE}tag:{tag}"


def done_key(event_id: str, group: str = "") -> str:
    """The marker that consumer group ``group`` purged event ``event_id`` (no group: the
    group-less form, kept for callers that dedup outside any group)."""
    if group:
        return f"{NAMESPACE}done:{group}:{event_id}"
    return f"{NAMESPACE}done:{event_id}"


def escape_glob(text: str) -> str:
    """``text`` with Redis glob characters (``* ? [ ] \\``) escaped, for ``SCAN MATCH``."""
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)
