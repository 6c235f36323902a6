"""An in-process (L1) cache that flush ops invalidate: pass an :class:`L1Cache` as an agent's
``on_purge`` hook and its entries are dropped when events that concern them arrive.

Entries are keyed by the same key strings the flush plans name (``catalog:product:p1``), so a
``key`` op drops one entry, a ``prefix`` op every entry whose key starts with the prefix, and a
``tag`` op every entry stored under that tag: the cache keeps its own tag index, since the
Redis tag sets describe Redis, not this process. ``mode: soft`` drops too: an L1 entry has no
grace window to be served from.

The L1 has its own "stale set" race: a caller loads from Redis or the database, an invalidation
arrives and drops the key, then the caller stores what it loaded before. :meth:`L1Cache.
get_or_load` closes it with an invalidation counter: a load stores its value only if no
invalidation ran while it loaded (conservatively, any invalidation, since a prefix or tag op
may reach the key).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from damestoilet_contracts.model import FlushOp

V = TypeVar("V")

_MISSING = object()


class L1Cache(Generic[V]):
    """A thread-safe in-process cache with a tag index, invalidated by flush ops."""

    def __init__(self, *, maxsize: int | None = None) -> None:
        """An empty cache holding at most ``maxsize`` entries (least recently used evicted
        first; None: no bound). Raises ValueError when ``maxsize`` is below 1."""
        if maxsize is not None and maxsize < 1:
            raise ValueError(f"maxsize must be at least 1 or None, got {maxsize}")
        self.maxsize = maxsize
        self._lock = threading.RLock()
        self._values: OrderedDict[str, V] = OrderedDict()
        self._tags_of: dict[str, frozenset[str]] = {}
        self._members: dict[str, set[str]] = {}
        self._invalidations = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._values

    def get(self, key: str, default: V | None = None) -> V | None:
        """The value at ``key``, or ``default``."""
        with self._lock:
            value = self._values.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._values.move_to_end(key)
            return value  # type: ignore[return-value]

    def set(self, key: str, value: V, *, tags: Iterable[str] = ()) -> None:
        """Store ``value`` at ``key`` under ``tags`` (replacing the key's earlier tags)."""
        with self._lock:
            self._store(key, value, frozenset(tags))

    def get_or_load(self, key: str, loader: Callable[[], V], *, tags: Iterable[str] = ()) -> V:
        """The value at ``key``; on a miss, ``loader()`` (no arguments), stored under ``tags``
        unless an invalidation ran while it loaded. Raises what ``loader`` raises."""
        with self._lock:
            value = self._values.get(key, _MISSING)
            if value is not _MISSING:
                self._values.move_to_end(key)
                return value  # type: ignore[return-value]
            seen = self._invalidations
        loaded = loader()
        with self._lock:
            if self._invalidations == seen:
                self._store(key, loaded, frozenset(tags))
        return loaded

    def delete(self, key: str) -> bool:
        """Drop the entry at ``key``; True if there was one."""
        with self._lock:
            self._invalidations += 1
            return self._drop(key)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._invalidations += 1
            self._values.clear()
            self._tags_of.clear()
            self._members.clear()

    def invalidate(self, op: FlushOp) -> int:
        """Drop the entries ``op`` names (its key, every key under its prefix, or every key
        under its tag); returns how many were dropped. Raises ValueError for an unknown op."""
        with self._lock:
            self._invalidations += 1
            if op.op == "key":
                return int(self._drop(op.key))
            if op.op == "prefix":
                keys = [k for k in self._values if k.startswith(op.key)]
            elif op.op == "tag":
                keys = list(self._members.get(op.key, ()))
            else:
                raise ValueError(f"unknown flush op {op.op!r}; expected key, prefix or tag")
            return sum(self._drop(k) for k in keys)

    def __call__(self, op: FlushOp) -> int:
        """:meth:`invalidate`, so that the cache itself is an ``on_purge`` hook."""
        return self.invalidate(op)

    # -- under the lock ---------------------------------------------------------------------

    def _store(self, key: str, value: V, tags: frozenset[str]) -> None:
        self._untag(key)
        self._values[key] = value
        self._values.move_to_end(key)
        if tags:
            self._tags_of[key] = tags
            for tag in tags:
                self._members.setdefault(tag, set()).add(key)
        if self.maxsize is not None:
            while len(self._values) > self.maxsize:
                oldest = next(iter(self._values))
                self._drop(oldest)

    def _drop(self, key: str) -> bool:
        if self._values.pop(key, _MISSING) is _MISSING:
            return False
        self._untag(key)
        return True

    def _untag(self, key: str) -> None:
        for tag in self._tags_of.pop(key, ()):
            members = self._members.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._members[tag]
