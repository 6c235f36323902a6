"""RedisPurgeTarget against a real standalone redis-server: exact keys, prefixes, tags, soft
mode, target filtering and errors."""

from __future__ import annotations

import time

import pytest
import redis

from damestoilet_contracts._errors import PurgeError
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._purge import PurgeStats, RedisPurgeTarget, prefix_pattern

pytestmark = pytest.mark.redis


def key(k: str, mode: str = "delete", target: str = "default") -> FlushOp:
    return FlushOp("key", target, k, mode)


def prefix(p: str, mode: str = "delete", target: str = "default") -> FlushOp:
    return FlushOp("prefix", target, p, mode)


def tag(t: str, mode: str = "delete", target: str = "default") -> FlushOp:
    return FlushOp("tag", target, t, mode)


def test_exact_keys_are_unlinked_and_others_kept(redis_client: redis.Redis) -> None:
    redis_client.mset({f"k:{i}": "v" for i in range(1200)} | {"other": "x"})
    stats = RedisPurgeTarget(redis_client, chunk_size=100, pipeline_size=3).purge_stage(
        [key(f"k:{i}") for i in range(1200)] + [key("missing")]
    )
    assert stats == PurgeStats(keys=1200)
    assert redis_client.dbsize() == 1
    assert redis_client.get("other") == b"x"


def test_exact_key_purge_unlinks_any_type(redis_client: redis.Redis) -> None:
    redis_client.hset("h", "v", "1")
    redis_client.sadd("s", "a")
    redis_client.rpush("l", "a")
    stats = RedisPurgeTarget(redis_client).purge_stage([key("h"), key("s"), key("l")])
    assert stats.keys == 3
    assert redis_client.dbsize() == 0


def test_prefix_purge_scans_to_the_end(redis_client: redis.Redis) -> None:
    redis_client.mset({f"catalog:listing:c1:{i}": "v" for i in range(5000)})
    redis_client.mset({f"catalog:listing:c10:{i}": "v" for i in range(50)})
    redis_client.mset({f"catalog:listing:c2:{i}": "v" for i in range(50)})
    target = RedisPurgeTarget(redis_client, scan_count=100, chunk_size=64, pipeline_size=4)
    stats = target.purge_stage([prefix("catalog:listing:c1:")])
    assert stats == PurgeStats(prefix_keys=5000)
    assert redis_client.dbsize() == 100
    assert not list(redis_client.scan_iter("catalog:listing:c1:*"))


def test_prefix_purge_escapes_glob_chars(redis_client: redis.Redis) -> None:
    redis_client.mset({"a*b:1": "v", "ab:1": "v", "a?:1": "v", "ax:1": "v", "a[b]:1": "v"})
    redis_client.mset({"ab]:1": "v", "a\\b:1": "v", "a\\xb:1": "v"})
    target = RedisPurgeTarget(redis_client)
    assert target.purge_stage([prefix("a*")]).prefix_keys == 1
    assert target.purge_stage([prefix("a?")]).prefix_keys == 1
    assert target.purge_stage([prefix("a[b]")]).prefix_keys == 1
    assert target.purge_stage([prefix("a\\b")]).prefix_keys == 1
    assert sorted(redis_client.keys()) == [b"a\\xb:1", b"ab:1", b"ab]:1", b"ax:1"]


def test_prefix_pattern_is_the_escaped_prefix_and_a_star() -> None:
    assert prefix_pattern("a*b?[c]\\:") == "a\\*b\\?\\[c\\]\\\\:*"


def test_prefix_scan_finds_every_match_among_many_resident_keys(
    redis_client: redis.Redis,
) -> None:
    """The 1,000,000-resident case at 1/10 scale: 1,000 matches among 100,000 keys."""
    pipe = redis_client.pipeline(transaction=False)
    for start in range(0, 100_000, 10_000):
        pipe.mset({f"resident:{i}": "x" for i in range(start, start + 10_000)})
    pipe.mset({f"hot:{i}": "x" for i in range(1000)})
    pipe.execute()
    stats = RedisPurgeTarget(redis_client, scan_count=1000).purge_stage([prefix("hot:")])
    assert stats.prefix_keys == 1000
    assert redis_client.dbsize() == 100_000
    assert not list(redis_client.scan_iter("hot:*"))


def test_tag_purge_unlinks_members_and_removes_them_from_the_set(
    redis_client: redis.Redis,
) -> None:
    members = [f"p:{i}" for i in range(2500)]
    redis_client.mset(dict.fromkeys(members, "v"))
    redis_client.sadd(layout.tag_key("category:c1"), *members, "gone:already")
    redis_client.sadd(layout.tag_key("category:c2"), "p:0", "q:1")
    redis_client.set("q:1", "v")
    target = RedisPurgeTarget(redis_client, scan_count=100, chunk_size=100, pipeline_size=5)
    stats = target.purge_stage([tag("category:c1")])
    assert stats == PurgeStats(tag_keys=2500)
    assert redis_client.exists(layout.tag_key("category:c1")) == 0
    assert redis_client.get("q:1") == b"v"
    # other tags keep their (now dangling) memberships; purging them is harmless
    assert redis_client.smembers(layout.tag_key("category:c2")) == {b"p:0", b"q:1"}


def test_tag_purge_of_unknown_tag_is_a_no_op(redis_client: redis.Redis) -> None:
    redis_client.set("x", "v")
    assert RedisPurgeTarget(redis_client).purge_stage([tag("nothing")]) == PurgeStats()
    assert redis_client.get("x") == b"v"


def test_soft_purge_of_cache_entry_marks_stale_drops_lease_and_sets_grace(
    redis_client: redis.Redis,
) -> None:
    redis_client.hset("e", mapping={layout.FIELD_VALUE: "old", layout.FIELD_LEASE: "tok"})
    redis_client.expire("e", 3600)
    before_ms = int(time.time() * 1000)
    target = RedisPurgeTarget(redis_client, grace={"default": 5.0})
    stats = target.purge_stage([key("e", "soft")])
    assert stats == PurgeStats(keys=1, soft_marked=1)
    entry = redis_client.hgetall("e")
    assert entry[layout.FIELD_VALUE.encode()] == b"old"
    assert layout.FIELD_LEASE.encode() not in entry
    assert int(entry[layout.FIELD_STALE.encode()]) >= before_ms - 1000
    assert 4000 < redis_client.pttl("e") <= 5000


def test_soft_purge_never_lengthens_a_key_and_keeps_first_stale_time(
    redis_client: redis.Redis,
) -> None:
    redis_client.hset("e", mapping={layout.FIELD_VALUE: "old", layout.FIELD_STALE: "1"})
    redis_client.pexpire("e", 1000)
    RedisPurgeTarget(redis_client, grace={"default": 60}).purge_stage([key("e", "soft")])
    assert redis_client.pttl("e") <= 1000
    assert redis_client.hget("e", layout.FIELD_STALE) == b"1"


def test_soft_purge_of_plain_key_only_shortens_expiry(redis_client: redis.Redis) -> None:
    redis_client.set("plain", "v")
    redis_client.set("plain-ttl", "v", ex=3600)
    target = RedisPurgeTarget(redis_client, grace={"default": 2.0})
    stats = target.purge_stage([key("plain", "soft"), key("plain-ttl", "soft"), key("no", "soft")])
    assert stats == PurgeStats(keys=2, soft_marked=2)
    assert redis_client.get("plain") == b"v"
    assert 0 < redis_client.pttl("plain") <= 2000
    assert 0 < redis_client.pttl("plain-ttl") <= 2000
    assert redis_client.exists("no") == 0


def test_soft_purge_window_ends_with_the_key_gone(redis_client: redis.Redis) -> None:
    redis_client.hset("e", layout.FIELD_VALUE, "old")
    RedisPurgeTarget(redis_client, grace={"default": 0.2}).purge_stage([key("e", "soft")])
    assert redis_client.hget("e", layout.FIELD_VALUE) == b"old"
    time.sleep(0.35)
    assert redis_client.exists("e") == 0


def test_soft_grace_comes_from_the_op_target(redis_client: redis.Redis) -> None:
    redis_client.set("a", "v")
    redis_client.set("b", "v")
    redis_client.set("c", "v")
    target = RedisPurgeTarget(redis_client, grace={"pricing": 3.0, "default": 7.0})
    target.purge_stage(
        [key("a", "soft", "pricing"), key("b", "soft"), key("c", "soft", "elsewhere")]
    )
    assert 2000 < redis_client.pttl("a") <= 3000
    assert 6000 < redis_client.pttl("b") <= 7000
    grace_ms = layout.DEFAULT_GRACE_S * 1000
    assert grace_ms - 1000 < redis_client.pttl("c") <= grace_ms


def test_soft_prefix_and_tag_purges_mark_instead_of_unlinking(redis_client: redis.Redis) -> None:
    redis_client.hset("l:1", layout.FIELD_VALUE, "v")
    redis_client.hset("t:1", layout.FIELD_VALUE, "v")
    redis_client.sadd(layout.tag_key("T"), "t:1")
    stats = RedisPurgeTarget(redis_client, grace={"default": 9}).purge_stage(
        [prefix("l:", "soft"), tag("T", "soft")]
    )
    assert stats == PurgeStats(prefix_keys=1, tag_keys=1, soft_marked=2)
    assert redis_client.hexists("l:1", layout.FIELD_STALE)
    assert redis_client.hexists("t:1", layout.FIELD_STALE)
    assert redis_client.exists(layout.tag_key("T")) == 0


def test_delete_beats_soft_for_the_same_key_in_one_stage(redis_client: redis.Redis) -> None:
    redis_client.set("k", "v")
    stats = RedisPurgeTarget(redis_client).purge_stage([key("k", "soft"), key("k")])
    assert stats == PurgeStats(keys=1)
    assert redis_client.exists("k") == 0


def test_only_ops_of_served_targets_are_executed(redis_client: redis.Redis) -> None:
    redis_client.mset({"a": "1", "b": "2", "c": "3", "p:1": "4"})
    target = RedisPurgeTarget(redis_client, targets={"catalog", "pricing"})
    assert target.serves(key("a", target="catalog"))
    assert not target.serves(key("a"))
    stats = target.purge_stage(
        [
            key("a", target="catalog"),
            key("b", target="pricing"),
            key("c"),
            prefix("p:", target="search"),
        ]
    )
    assert stats == PurgeStats(keys=2)
    assert sorted(redis_client.keys()) == [b"c", b"p:1"]


def test_purge_is_idempotent(redis_client: redis.Redis) -> None:
    redis_client.set("k", "v")
    target = RedisPurgeTarget(redis_client)
    ops = [key("k"), prefix("k"), tag("k")]
    assert target.purge_stage(ops).total == 1
    assert target.purge_stage(ops) == PurgeStats()


def test_empty_stage_sends_nothing(redis_client: redis.Redis) -> None:
    assert RedisPurgeTarget(redis_client).purge_stage([]) == PurgeStats()


def test_redis_failure_raises_purge_error() -> None:
    from tests.servers import free_port

    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    with pytest.raises(PurgeError, match="retry"):
        RedisPurgeTarget(client).purge_stage([key("k")])


def test_unknown_mode_is_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(PurgeError, match="mode"):
        RedisPurgeTarget(redis_client).purge_stage([key("k", "vaporise")])


def test_stats_add_up() -> None:
    total = PurgeStats(1, 2, 3, 4) + PurgeStats(10, 20, 30, 1)
    assert total == PurgeStats(11, 22, 33, 5)
    assert total.total == 66
    assert total.unlinked == 61


def test_planner_merges_a_stage_the_stronger_purge_winning() -> None:
    from damestoilet_contracts.runtime.redis._purge import PurgePlanner, ScanOp

    planner = PurgePlanner(grace={"fast": 1, "slow": 60})
    plan = planner.plan(
        [
            key("a"),
            key("a"),
            key("b", "soft", "slow"),
            key("b", "soft", "fast"),
            key("c", "soft"),
            key("c"),
            prefix("p:", "soft"),
            prefix("p:"),
            tag("t", "soft", "slow"),
            tag("t", "soft", "fast"),
        ]
    )
    assert plan.unlink == ["a", "c"]
    assert plan.soft == {1000: ["b"]}
    assert plan.prefixes == [
        ScanOp("p:", soft=False, grace_ms=30_000, kind="prefix", target="default")
    ]
    # the winning op's target, whose settings the merged scan uses
    assert plan.tags == [ScanOp("t", soft=True, grace_ms=1000, kind="tag", target="fast")]


def test_planner_refuses_an_empty_prefix_that_would_reach_every_key() -> None:
    from damestoilet_contracts.runtime.redis._purge import PurgePlanner

    with pytest.raises(PurgeError, match="empty"):
        PurgePlanner().plan([prefix("")])


def test_planner_batches_one_slot_per_call_on_a_cluster() -> None:
    from damestoilet_contracts.runtime.redis._purge import PurgePlanner

    planner = PurgePlanner(chunk_size=2)
    keys = ["a1", "b1", "a2", "a3", "b2"]
    assert planner.batches(keys, None) == [["a1", "b1"], ["a2", "a3"], ["b2"]]
    batches = planner.batches(keys, lambda k: ord(str(k)[0]))
    assert batches == [["a1", "a2"], ["a3"], ["b1", "b2"]]


def test_negative_grace_is_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="grace"):
        RedisPurgeTarget(redis_client, grace={"default": -1})
