"""How a Redis purge target finds the keys of a stage's prefix ops, without I/O: the calls that
empty a page of the prefix index, and the matcher that lets one ``SCAN`` serve every prefix of
a stage that is not indexed.

Indexed targets (``prefix_index: true`` in ``flush-graph.yaml``)
    The keys come from the prefix index (:mod:`runtime.redis._prefix_index`), a page at a time,
    every prefix of the stage in one pipeline per round (:class:`IndexSweep`); a delete removes
    the pages from the index and unlinks them (standalone: in one ``MULTI``), a soft purge
    marks the keys stale and leaves them in the index.

Every other target
    One ``SCAN`` per stage (on every primary of a cluster), not one per prefix: ``MATCH`` is
    the longest common prefix of the stage's prefixes, glob-escaped, and each key found is
    matched here against every prefix; of several matching ones, the strongest op wins
    (delete over soft, then the shorter grace), as in the planner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._prefix_index import lex_range, to_bytes

if TYPE_CHECKING:  # _purge imports this module
    from damestoilet_contracts.runtime.redis._purge import ScanOp

Key: TypeAlias = str | bytes


def stronger(new: ScanOp, old: ScanOp) -> bool:
    """Whether ``new`` wins over ``old`` on the same keys: delete beats soft, a delete no storm
    guard may spread beats one it may, and between two soft windows the shorter one wins."""
    if new.soft != old.soft:
        return not new.soft
    if not new.soft and (new.guard is None) != (old.guard is None):
        return new.guard is None
    return new.grace_ms < old.grace_ms


def index_page_calls(index: str, keys: Sequence[Key], chunk_size: int) -> list[tuple[Any, ...]]:
    """Standalone: for each chunk of ``keys``, ``ZREM`` from ``index`` then ``UNLINK``, to be
    sent in one ``MULTI`` (replies at odd positions count the keys unlinked)."""
    calls: list[tuple[Any, ...]] = []
    for start in range(0, len(keys), chunk_size):
        batch = keys[start : start + chunk_size]
        calls.append(("ZREM", index, *batch))
        calls.append(("UNLINK", *batch))
    return calls


class IndexSweep:
    """Reads the index pages of every indexed prefix of a stage, all prefixes at once: each
    round is one pipeline of ``ZRANGEBYLEX`` (one per prefix and index set), and a prefix
    whose page came back full is read on from its last member in the next round."""

    def __init__(self, scans: Iterable[ScanOp], indexes: Sequence[str], page: int) -> None:
        self.page = page
        self._pending: list[tuple[ScanOp, str, bytes, bytes]] = [
            (scan, index, *lex_range(scan.text)) for scan in scans for index in indexes
        ]

    def __bool__(self) -> bool:
        return bool(self._pending)

    def calls(self) -> list[tuple[Any, ...]]:
        """The ``ZRANGEBYLEX`` commands of this round."""
        return [
            ("ZRANGEBYLEX", index, low, high, "LIMIT", 0, self.page)
            for _, index, low, high in self._pending
        ]

    def feed(self, replies: Sequence[Sequence[Key]]) -> list[tuple[ScanOp, str, list[bytes]]]:
        """The keys each (op, index set) of this round found; plans the next round."""
        found: list[tuple[ScanOp, str, list[bytes]]] = []
        pending: list[tuple[ScanOp, str, bytes, bytes]] = []
        for (scan, index, _, high), reply in zip(self._pending, replies, strict=True):
            keys = [to_bytes(k) for k in reply]
            if keys:
                found.append((scan, index, keys))
            if len(keys) >= self.page:
                # read on after the last member: members removed meanwhile shift nothing
                pending.append((scan, index, b"(" + keys[-1], high))
        self._pending = pending
        return found


def split_found(
    found: Sequence[tuple[ScanOp, str, list[bytes]]],
) -> tuple[dict[str, list[bytes]], dict[int, list[bytes]]]:
    """What a round of :class:`IndexSweep` found, as the keys to delete by index set and the
    keys to soft-purge by grace window; a key found by a delete and a soft op (nested
    prefixes) is deleted, and of two soft windows the shorter applies."""
    hard: dict[str, dict[bytes, None]] = {}
    soft: dict[bytes, int] = {}
    for scan, index, keys in found:
        if scan.soft:
            for key in keys:
                soft[key] = min(scan.grace_ms, soft.get(key, scan.grace_ms))
        else:
            hard.setdefault(index, {}).update(dict.fromkeys(keys))
    deleted = {key for keys in hard.values() for key in keys}
    by_grace: dict[int, list[bytes]] = {}
    for key, grace_ms in soft.items():
        if key not in deleted:
            by_grace.setdefault(grace_ms, []).append(key)
    return {index: list(keys) for index, keys in hard.items()}, by_grace


class PrefixMatcher:
    """Which op of a stage, if any, a key found by the stage's one ``SCAN`` belongs to."""

    def __init__(self, scans: Iterable[ScanOp]) -> None:
        self._ops: dict[bytes, ScanOp] = {}
        for scan in scans:
            text = scan.text.encode()
            prior = self._ops.get(text)
            if prior is None or stronger(scan, prior):
                self._ops[text] = scan
        self._lengths = sorted({len(p) for p in self._ops})
        common = _common_prefix([s.text for s in self._ops.values()])
        #: The ``SCAN MATCH`` pattern that covers every prefix.
        self.pattern = layout.escape_glob(common) + "*"

    def __bool__(self) -> bool:
        return bool(self._ops)

    def match(self, key: Key) -> ScanOp | None:
        """The strongest op whose prefix ``key`` starts with, or None."""
        data = key.encode() if isinstance(key, str) else key
        best: ScanOp | None = None
        ops = self._ops
        for length in self._lengths:
            if len(data) < length:
                break
            op = ops.get(data[:length])
            if op is not None and (best is None or stronger(op, best)):
                best = op
        return best


class MatchBuffer:
    """Keys found by a scan, grouped by how they are purged (soft or not, grace), flushed by
    the caller when :attr:`full`."""

    def __init__(self, matcher: PrefixMatcher, limit: int) -> None:
        self.matcher = matcher
        self.limit = limit
        self.groups: dict[tuple[bool, int, ScanOp | None], list[Key]] = {}
        self.size = 0

    def add(self, found: Iterable[Key]) -> None:
        """Keep the keys of ``found`` that some prefix matches."""
        match = self.matcher.match
        for key in found:
            op = match(key)
            if op is not None:
                # a guarded op keeps its keys apart: the guard counts per op
                group = (op.soft, op.grace_ms, op if op.guard is not None else None)
                self.groups.setdefault(group, []).append(key)
                self.size += 1

    @property
    def full(self) -> bool:
        """Whether the buffer holds enough keys to purge them now."""
        return self.size >= self.limit

    def take(self) -> list[tuple[bool, int, ScanOp | None, list[Key]]]:
        """The buffered groups as (soft, grace ms, the op if storm-guarded, keys), emptying
        the buffer."""
        out = [(soft, grace, op, keys) for (soft, grace, op), keys in self.groups.items()]
        self.groups = {}
        self.size = 0
        return out


def _common_prefix(texts: Sequence[str]) -> str:
    """The longest string every one of ``texts`` starts with (character by character)."""
    if not texts:
        return ""
    low, high = min(texts), max(texts)
    size = 0
    while size < len(low) and low[size] == high[size]:
        size += 1
    return low[:size]
