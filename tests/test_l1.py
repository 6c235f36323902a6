"""The in-process L1 cache: what key, prefix and tag ops drop, its tag index, its bound, and
the guard that keeps a load which raced an invalidation out of the cache (pure logic)."""

from __future__ import annotations

import threading

import pytest

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import L1Cache


def op(kind: str, key: str, mode: str = "delete") -> FlushOp:
    return FlushOp(kind, "default", key, mode)


def test_key_op_drops_exactly_that_key() -> None:
    l1: L1Cache[int] = L1Cache()
    l1.set("a:1", 1)
    l1.set("a:10", 10)
    assert l1.invalidate(op("key", "a:1")) == 1
    assert "a:1" not in l1
    assert l1.get("a:10") == 10
    assert l1.invalidate(op("key", "a:1")) == 0


def test_prefix_op_drops_every_key_that_starts_with_it_and_nothing_else() -> None:
    l1: L1Cache[int] = L1Cache()
    for key in ("list:c1:1", "list:c1:2", "list:c10:1", "list:c2:1"):
        l1.set(key, 1)
    assert l1.invalidate(op("prefix", "list:c1:")) == 2
    assert sorted(k for k in ("list:c1:1", "list:c1:2", "list:c10:1", "list:c2:1") if k in l1) == [
        "list:c10:1",
        "list:c2:1",
    ]


def test_prefix_glob_characters_are_literal() -> None:
    l1: L1Cache[int] = L1Cache()
    l1.set("p:[a]*:1", 1)
    l1.set("p:a:1", 1)
    assert l1.invalidate(op("prefix", "p:[a]*:")) == 1
    assert "p:a:1" in l1


def test_tag_op_drops_the_keys_stored_under_the_tag() -> None:
    l1: L1Cache[str] = L1Cache()
    l1.set("search:1", "s", tags=["category:c1", "brand:b"])
    l1.set("search:2", "s", tags=["category:c2"])
    l1.set("category:c1", "a key named like the tag")
    assert l1.invalidate(op("tag", "category:c1", "soft")) == 1
    assert "search:1" not in l1
    assert "search:2" in l1
    assert "category:c1" in l1
    # the dropped key left every tag of its own, so a later purge of them finds nothing
    assert l1.invalidate(op("tag", "brand:b")) == 0


def test_restoring_a_key_replaces_its_tags() -> None:
    l1: L1Cache[str] = L1Cache()
    l1.set("k", "v1", tags=["old"])
    l1.set("k", "v2", tags=["new"])
    assert l1.invalidate(op("tag", "old")) == 0
    assert l1.get("k") == "v2"
    assert l1.invalidate(op("tag", "new")) == 1


def test_bounded_cache_evicts_least_recently_used_with_its_tags() -> None:
    l1: L1Cache[int] = L1Cache(maxsize=2)
    l1.set("a", 1, tags=["t"])
    l1.set("b", 2)
    assert l1.get("a") == 1  # a is now the most recently used
    l1.set("c", 3)
    assert "b" not in l1
    assert len(l1) == 2
    l1.set("b", 2)  # evicts a, with its membership of t
    assert l1.invalidate(op("tag", "t")) == 0
    assert sorted(k for k in "abc" if k in l1) == ["b", "c"]


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        L1Cache(maxsize=0)


def test_unknown_op_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown flush op"):
        L1Cache[int]().invalidate(op("glob", "x"))


def test_the_cache_is_itself_an_on_purge_hook() -> None:
    l1: L1Cache[int] = L1Cache()
    l1.set("k", 1)
    assert l1(op("key", "k")) == 1
    assert len(l1) == 0


def test_get_or_load_loads_once_then_hits() -> None:
    l1: L1Cache[str] = L1Cache()
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        return "v"

    assert l1.get_or_load("k", load, tags=["t"]) == "v"
    assert l1.get_or_load("k", load) == "v"
    assert calls == [1]
    assert l1.invalidate(op("tag", "t")) == 1


def test_a_load_that_raced_an_invalidation_is_returned_but_not_kept() -> None:
    l1: L1Cache[str] = L1Cache()
    started, release = threading.Event(), threading.Event()

    def slow_old_load() -> str:
        started.set()
        release.wait(5)
        return "old"

    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(l1.get_or_load("k", slow_old_load)))
    reader.start()
    assert started.wait(5)
    l1.invalidate(op("key", "k"))
    release.set()
    reader.join(5)
    assert result == ["old"]
    assert "k" not in l1
    assert l1.get_or_load("k", lambda: "new") == "new"
    assert l1.get("k") == "new"
