"""The prefix index: which keys the read-through cache filled, in lexicographic order, so that a
prefix purge costs O(log N + M) (N keys in Redis, M under the prefix) instead of a ``SCAN`` of
the whole keyspace.

Layout
    Sorted sets whose members are cache keys, every score 0, so that ``ZRANGEBYLEX`` lists the
    members between two strings in byte order. Standalone: one set, :data:`INDEX_KEY`. Redis
    Cluster: :data:`CLUSTER_SHARDS` sets ``damestoilet:pidx:{0}`` .. ``{15}`` (hash tags spread
    them over the slots, so over the primaries); a key lives in the shard of
    ``crc32(key) % CLUSTER_SHARDS``, and a prefix purge reads every shard (a constant factor).

Who writes it
    :class:`~damestoilet_contracts.runtime.Cache` (and ``AsyncCache``), on every fill, with no
    argument from the caller: it adds the key when it takes the fill lease, before the loader
    runs, and again with the fill. Standalone, both happen inside the read and fill scripts,
    the same atomic steps that write the lease, the value and the tag memberships. On a
    cluster the shard lives on another slot, so the adds are separate calls just after the
    lease and just before the fill, like the tag memberships (see :mod:`runtime.redis._layout`).
    Either way a prefix purge that starts after a load began finds the key and voids its lease.

Who reads it
    The purge target, for a target that declares ``prefix_index: true`` in ``flush-graph.yaml``:
    ``ZRANGEBYLEX shard [prefix (successor`` in pages, then, per page, ``ZREM`` of the page and
    ``UNLINK`` of its keys (standalone: in one ``MULTI``; cluster: in that order). A soft purge
    leaves the members in (the keys are still there, readable as stale), so a later delete of
    the same prefix still finds them.

What it cannot see
    Keys written by anyone but the cache (a plain ``SET``) are not in the index, and a prefix
    purge of an indexed target does not reach them. :func:`audit` (``damestoilet index-audit``)
    scans the keyspace under given prefixes and reports the keys the index misses, and the
    members whose key is gone (expired by TTL; harmless, removed by the next purge of their
    prefix or by ``--prune``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.cluster

from damestoilet_contracts.model import ContractSet, Op
from damestoilet_contracts.runtime.redis import _layout as layout

#: The one index set of a standalone Redis.
INDEX_KEY = f"{layout.NAMESPACE}pidx"

#: How many index sets a cluster has; fixed, since readers and purgers must agree.
CLUSTER_SHARDS = 16


def index_keys(cluster: bool) -> list[str]:
    """Every index set: one on a standalone Redis, :data:`CLUSTER_SHARDS` on a cluster."""
    if not cluster:
        return [INDEX_KEY]
    return [f"{INDEX_KEY}:{{{n}}}" for n in range(CLUSTER_SHARDS)]


def index_key(key: str | bytes, cluster: bool) -> str:
    """The index set that holds ``key``."""
    if not cluster:
        return INDEX_KEY
    data = key.encode() if isinstance(key, str) else key
    return f"{INDEX_KEY}:{{{zlib.crc32(data) % CLUSTER_SHARDS}}}"


def to_bytes(text: str | bytes) -> bytes:
    """``text`` as Redis stores it (UTF-8 for a str)."""
    return text.encode() if isinstance(text, str) else text


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``, or
    None when there is none (``prefix`` is empty or all ``0xff``)."""
    data = bytearray(prefix)
    while data and data[-1] == 0xFF:
        data.pop()
    if not data:
        return None
    data[-1] += 1
    return bytes(data)


def lex_range(prefix: str | bytes) -> tuple[bytes, bytes]:
    """The ``ZRANGEBYLEX`` bounds of every member starting with ``prefix``."""
    start = to_bytes(prefix)
    end = successor(start)
    return b"[" + start, b"+" if end is None else b"(" + end


def members(
    client: redis.Redis | redis.cluster.RedisCluster, index: str, prefix: str | bytes, page: int
) -> Iterator[list[bytes]]:
    """Pages of at most ``page`` members of ``index`` starting with ``prefix``, in order.

    Each page starts after the last member of the one before, so members removed meanwhile
    never make it skip one, and members added meanwhile are seen if they sort later."""
    low, high = lex_range(prefix)
    while True:
        found = client.zrangebylex(index, low, high, start=0, num=page)
        batch = [to_bytes(m) for m in found]
        if batch:
            yield batch
        if len(batch) < page:
            return
        low = b"(" + batch[-1]


def indexed_prefixes(contracts: ContractSet) -> tuple[list[str], list[str]]:
    """What an audit of ``contracts`` covers: the literal lead of every prefix rule and cache
    node of a ``prefix_index: true`` target (``page:category:`` for
    ``page:category:{category_id}:``), and, apart, the rules and nodes whose template starts
    with a field (no lead to scan by; audit them with an explicit prefix)."""
    indexed = contracts.graph.prefix_index
    leads: dict[str, None] = {}
    unbounded: list[str] = []
    templates = [
        (f"{node.name} in {contracts.graph.path}", node.template)
        for node in contracts.graph.nodes.values()
        if node.op is Op.PREFIX and node.target in indexed
    ]
    for event in contracts.events.values():
        for rule in event.rules:
            if rule.op is Op.PREFIX and rule.template is not None and rule.target in indexed:
                templates.append((f"{event.full_name} at {rule.location}", rule.template))
    for where, template in templates:
        lead = template.parts[0] if template.parts else ""
        if isinstance(lead, str) and lead:
            leads[lead] = None
        else:
            unbounded.append(f"{template.source} ({where})")
    return sorted(leads), unbounded


@dataclass(slots=True)
class IndexAudit:
    """What :func:`audit` found under the prefixes it was given."""

    prefixes: list[str]
    #: Keys in Redis under the prefixes.
    scanned: int = 0
    #: Of those, keys the index does not hold: a prefix purge of an indexed target misses them.
    missing: int = 0
    #: Members of the index under the prefixes whose key no longer exists.
    orphans: int = 0
    #: Orphans removed (with ``prune``).
    pruned: int = 0
    #: Up to ``sample`` missing keys, for the report.
    missing_sample: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The audit as plain JSON values."""
        return {
            "prefixes": self.prefixes,
            "scanned": self.scanned,
            "missing": self.missing,
            "orphans": self.orphans,
            "pruned": self.pruned,
            "missing_sample": self.missing_sample,
        }


def _nodes(client: redis.Redis | redis.cluster.RedisCluster) -> list[redis.Redis]:
    if isinstance(client, redis.cluster.RedisCluster):
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        return [client.get_redis_connection(node) for node in primaries]
    return [client]


def audit(
    client: redis.Redis | redis.cluster.RedisCluster,
    prefixes: Iterable[str],
    *,
    scan_count: int = 1000,
    prune: bool = False,
    sample: int = 20,
) -> IndexAudit:
    """Compare the keyspace under ``prefixes`` with the prefix index.

    Scans each prefix (``SCAN MATCH``, every primary of a cluster) and asks the index about
    the keys found (``ZMSCORE``, pipelined); then lists the index's members under the prefixes
    and checks they exist. Counts keys the index misses (listing up to ``sample``) and members
    whose key is gone; ``prune`` (standalone only: ValueError on a cluster) removes the latter,
    each only if its key is still gone, atomically. Its cost is a ``SCAN`` per prefix: a
    maintenance check, never run on the purge path. Raises redis-py errors."""
    report = IndexAudit(sorted(dict.fromkeys(prefixes)))
    cluster = isinstance(client, redis.cluster.RedisCluster)
    if prune and cluster:
        # a member and its key live on different slots, so no one step can check the key is
        # gone and remove the member; a reader taking its lease in between would lose its
        # membership and a purge during its load would miss it
        raise ValueError(
            "prune works on a standalone Redis only; on a cluster orphans are removed by the "
            "next purge of their prefix"
        )
    if any(p == "" for p in report.prefixes):
        raise ValueError("an empty prefix would audit every key; give a non-empty prefix")
    for prefix in report.prefixes:
        pattern = layout.escape_glob(prefix) + "*"
        for node in _nodes(client):
            for batch in _scan_pages(node, pattern, scan_count):
                _check_held(client, cluster, batch, report, sample)
        for index in index_keys(cluster):
            for page in members(client, index, prefix, scan_count):
                _check_orphans(client, index, page, report, prune)
    return report


def _scan_pages(node: redis.Redis, pattern: str, count: int) -> Iterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, found = node.scan(cursor, match=pattern, count=count)
        if found:
            yield [to_bytes(k) for k in found]
        if cursor == 0:
            return


def _check_held(
    client: redis.Redis | redis.cluster.RedisCluster,
    cluster: bool,
    keys: Sequence[bytes],
    report: IndexAudit,
    sample: int,
) -> None:
    keys = [k for k in keys if not k.startswith(INDEX_KEY.encode())]
    by_index: dict[str, list[bytes]] = {}
    for key in keys:
        by_index.setdefault(index_key(key, cluster), []).append(key)
    for index, group in by_index.items():
        scores = client.zmscore(index, group)  # type: ignore[arg-type]
        report.scanned += len(group)
        for key, score in zip(group, scores, strict=True):
            if score is None:
                report.missing += 1
                if len(report.missing_sample) < sample:
                    report.missing_sample.append(key.decode(errors="backslashreplace"))


#: KEYS[1] the index, KEYS[2..] members; removes each member whose key does not exist, in one
#: atomic step, so a reader that takes a lease meanwhile (and so creates its key) keeps its
#: membership. Standalone only. Returns how many it removed.
PRUNE_LUA = """
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], KEYS[i])
  end
end
return removed
"""


def _check_orphans(
    client: redis.Redis | redis.cluster.RedisCluster,
    index: str,
    page: Sequence[bytes],
    report: IndexAudit,
    prune: bool,
) -> None:
    # on a cluster the members live on other slots: the cluster pipeline routes each EXISTS
    if isinstance(client, redis.cluster.RedisCluster):
        pipe: Any = client.pipeline()  # type: ignore[no-untyped-call]
    else:
        pipe = client.pipeline(transaction=False)
    for key in page:
        pipe.exists(key)
    alive = pipe.execute()
    gone = [key for key, n in zip(page, alive, strict=True) if not n]
    report.orphans += len(gone)
    if prune and gone:
        report.pruned += int(client.eval(PRUNE_LUA, 1 + len(gone), index, *gone))
