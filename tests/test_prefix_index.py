"""The prefix index (standalone Redis): kept by the read-through cache in the same step as the
fill, read by the purge target for ``prefix_index: true`` targets, audited against the
keyspace; and one SCAN per stage for every other target's prefixes."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import pytest
import redis
import redis.asyncio
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from damestoilet_contracts.cli import main
from damestoilet_contracts.cli._worker import resolve_prefix_index
from damestoilet_contracts.loaders import load_graph
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import AsyncCache, AsyncRedisPurgeTarget, Cache, Coordinator
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._prefix_index import (
    INDEX_KEY,
    audit,
    lex_range,
    successor,
)
from damestoilet_contracts.runtime.redis._prefix_purge import PrefixMatcher
from damestoilet_contracts.runtime.redis._purge import (
    PurgePlanner,
    PurgeStats,
    RedisPurgeTarget,
    ScanOp,
)

REPO = Path(__file__).resolve().parent.parent


def _in_range(key: bytes, prefix: bytes) -> bool:
    low, high = lex_range(prefix)
    above = key >= low[1:]
    below = high == b"+" or key < high[1:]
    return above and below


@given(st.binary(max_size=6), st.binary(max_size=8))
def test_lex_range_holds_exactly_the_keys_with_the_prefix(prefix: bytes, key: bytes) -> None:
    assert _in_range(key, prefix) == key.startswith(prefix)
    assert _in_range(prefix + key, prefix)


def test_successor_carries_over_0xff_and_has_none_for_all_0xff() -> None:
    assert successor(b"ab") == b"ac"
    assert successor(b"a\xff\xff") == b"b"
    assert successor(b"\xff") is None
    assert lex_range("page:") == (b"[page:", b"(page;")


def test_matcher_scans_by_the_common_prefix_and_the_strongest_op_wins() -> None:
    matcher = PrefixMatcher(
        [
            ScanOp("page:c1:", True, 5000),
            ScanOp("page:c1:a", False, 0),
            ScanOp("page:c*2:", True, 9000),
        ]
    )
    assert matcher.pattern == "page:c*"
    assert matcher.match(b"page:c1:ab") == ScanOp("page:c1:a", False, 0)
    assert matcher.match("page:c1:b") == ScanOp("page:c1:", True, 5000)
    assert matcher.match(b"page:c*2:x") == ScanOp("page:c*2:", True, 9000)
    assert matcher.match(b"page:c3:x") is None
    assert matcher.match(b"page") is None
    odd = PrefixMatcher([ScanOp("a*", False, 0), ScanOp("b?", False, 0)])
    assert odd.pattern == "*"  # no common prefix: every key, matched here


def test_planner_marks_only_indexed_targets_prefixes_and_a_shared_prefix_scans() -> None:
    planner = PurgePlanner(prefix_index={"cdn"})
    plan = planner.plan(
        [
            FlushOp("prefix", "cdn", "page:a:"),
            FlushOp("prefix", "default", "page:b:"),
            FlushOp("prefix", "cdn", "page:c:"),
            FlushOp("prefix", "default", "page:c:", "soft"),
            FlushOp("tag", "cdn", "t1"),
        ]
    )
    by_text = {s.text: s for s in plan.prefixes}
    assert by_text["page:a:"].indexed
    assert not by_text["page:b:"].indexed
    # a prefix of an indexed and a scanned target is scanned (the index sees only fills),
    # and the delete wins over the soft purge
    assert by_text["page:c:"] == ScanOp("page:c:", False, 30000, False, kind="prefix", target="cdn")
    assert not plan.tags[0].indexed


def _fill(cache: Cache, key: str, value: bytes = b"v") -> None:
    cache.get_or_fill(key, lambda: value)


def test_a_fill_indexes_its_key_in_the_same_step_and_no_argument_is_needed(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client)
    seen_during_load: list[float | None] = []

    def load() -> bytes:
        seen_during_load.append(redis_client.zscore(INDEX_KEY, "page:c1:1"))
        return b"v"

    cache.get_or_fill("page:c1:1", load, tags=["t"])
    assert seen_during_load == [0.0]  # indexed with the lease, before the loader ran
    assert redis_client.zrange(INDEX_KEY, 0, -1) == [b"page:c1:1"]
    assert redis_client.smembers(layout.tag_key("t")) == {b"page:c1:1"}
    assert redis_client.hget("page:c1:1", layout.FIELD_VALUE) == b"v"


def test_a_cache_built_without_the_index_leaves_it_alone(redis_client: redis.Redis) -> None:
    _fill(Cache(redis_client, prefix_index=False), "page:c1:1")
    assert redis_client.exists(INDEX_KEY) == 0
    assert redis_client.exists("page:c1:1") == 1


def test_indexed_prefix_purge_unlinks_filled_keys_and_leaves_the_rest(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client)
    hot = [f"page:c1:{i}" for i in range(1200)]
    for key in [*hot, "page:c10:1", "page:c2:1", "page:c1"]:
        _fill(cache, key)
    target = RedisPurgeTarget(redis_client, prefix_index={"cdn"}, chunk_size=50, pipeline_size=4)
    stats = target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")])
    assert stats == PurgeStats(prefix_keys=1200)
    assert redis_client.exists(*hot) == 0
    assert redis_client.exists("page:c10:1", "page:c2:1", "page:c1") == 3
    # the purged keys left the index; the others are still in it
    assert sorted(redis_client.zrange(INDEX_KEY, 0, -1)) == [
        b"page:c1",
        b"page:c10:1",
        b"page:c2:1",
    ]


def test_indexed_prefix_purge_never_scans(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client)
    for i in range(50):
        _fill(cache, f"page:c1:{i}")
    redis_client.config_resetstat()
    RedisPurgeTarget(redis_client, prefix_index={"cdn"}).purge_stage(
        [FlushOp("prefix", "cdn", f"page:c{i}:") for i in range(20)]
    )
    stats = redis_client.info("commandstats")
    assert "cmdstat_scan" not in stats
    assert stats["cmdstat_zrangebylex"]["calls"] == 20
    assert redis_client.exists(*[f"page:c1:{i}" for i in range(50)]) == 0


def test_indexed_prefix_purge_misses_keys_not_written_through_the_cache(
    redis_client: redis.Redis,
) -> None:
    """The documented limit: an indexed target trusts the index; a scanned one sees all."""
    _fill(Cache(redis_client), "page:c1:cached")
    redis_client.set("page:c1:plain", "x")
    indexed = RedisPurgeTarget(redis_client, prefix_index={"cdn"})
    assert indexed.purge_stage([FlushOp("prefix", "cdn", "page:c1:")]).prefix_keys == 1
    assert redis_client.exists("page:c1:plain") == 1
    scanned = RedisPurgeTarget(redis_client)
    assert scanned.purge_stage([FlushOp("prefix", "cdn", "page:c1:")]).prefix_keys == 1
    assert redis_client.exists("page:c1:plain") == 0


def test_soft_indexed_purge_marks_stale_and_keeps_members_for_a_later_delete(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client)
    for i in range(3):
        _fill(cache, f"page:c1:{i}")
    target = RedisPurgeTarget(redis_client, prefix_index={"cdn"}, grace={"cdn": 60})
    stats = target.purge_stage([FlushOp("prefix", "cdn", "page:c1:", "soft")])
    assert stats == PurgeStats(prefix_keys=3, soft_marked=3)
    assert redis_client.hexists("page:c1:0", layout.FIELD_STALE)
    assert 0 < redis_client.pttl("page:c1:0") <= 60_000
    assert redis_client.zcard(INDEX_KEY) == 3
    assert target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")]).prefix_keys == 3
    assert redis_client.zcard(INDEX_KEY) == 0


def test_indexed_purge_during_a_load_voids_the_fill(redis_client: redis.Redis) -> None:
    """The stale-set race, through the index: the purge finds the key by its lease-time
    membership, so the loader's old value is never written back."""
    cache = Cache(redis_client)
    target = RedisPurgeTarget(redis_client, prefix_index={"cdn"})
    loading, purged = threading.Event(), threading.Event()

    def slow_load() -> bytes:
        loading.set()
        assert purged.wait(5)
        return b"old"

    reader = threading.Thread(target=lambda: cache.get_or_fill("page:c1:1", slow_load))
    reader.start()
    assert loading.wait(5)
    assert target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")]).prefix_keys == 1
    purged.set()
    reader.join(5)
    assert redis_client.hget("page:c1:1", layout.FIELD_VALUE) is None
    assert cache.get_or_fill("page:c1:1", lambda: b"new") == b"new"


def test_scanned_prefixes_of_a_stage_share_one_scan(redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"page:c{i % 10}:{i}", "x")
    pipe.set("other:1", "x")
    pipe.execute()
    target = RedisPurgeTarget(redis_client, scan_count=500)
    # what one pass over this keyspace costs, measured on a prefix that matches nothing
    redis_client.config_resetstat()
    target.purge_stage([FlushOp("prefix", "default", "nothing:")])
    one_pass = redis_client.info("commandstats")["cmdstat_scan"]["calls"]
    redis_client.config_resetstat()
    stats = target.purge_stage(
        [FlushOp("prefix", "default", f"page:c{i}:") for i in range(5)]
        + [FlushOp("prefix", "default", "page:c9:", "soft")]
    )
    calls = redis_client.info("commandstats")["cmdstat_scan"]["calls"]
    assert stats.prefix_keys == 1800
    assert stats.soft_marked == 300
    assert redis_client.dbsize() == 3001 - 1500
    # six prefixes, one pass (SCAN's cursor may return a few more or fewer per call)
    assert one_pass >= 4
    assert calls <= one_pass + 2


def test_async_twin_reads_the_index_and_shares_one_scan(redis_url: str) -> None:
    async def run() -> tuple[PurgeStats, PurgeStats, int]:
        client = redis.asyncio.Redis.from_url(redis_url)
        await client.flushall()
        cache = AsyncCache(client)

        async def load() -> bytes:
            return b"v"

        for i in range(700):
            await cache.get_or_fill(f"page:c1:{i}", load)
        await client.set("page:c2:plain", "x")
        await client.set("page:c3:plain", "x")
        target = AsyncRedisPurgeTarget(client, prefix_index={"cdn"}, chunk_size=40)
        indexed = await target.purge_stage([FlushOp("prefix", "cdn", "page:c1:")])
        scanned = await target.purge_stage(
            [FlushOp("prefix", "default", "page:c2:"), FlushOp("prefix", "default", "page:c3:")]
        )
        left = int(await client.dbsize())
        await client.aclose()
        return indexed, scanned, left

    indexed, scanned, left = asyncio.run(run())
    assert indexed == PurgeStats(prefix_keys=700)
    assert scanned == PurgeStats(prefix_keys=2)
    assert left == 0  # the index emptied itself as it was purged


def test_audit_reports_keys_the_index_misses_and_prunes_only_gone_members(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client)
    for i in range(5):
        _fill(cache, f"page:c1:{i}")
    redis_client.set("page:c1:plain", "x")
    redis_client.unlink("page:c1:0", "page:c1:1")  # gone, as if expired: orphans
    report = audit(redis_client, ["page:c1:"])
    assert (report.scanned, report.missing, report.orphans, report.pruned) == (4, 1, 2, 0)
    assert report.missing_sample == ["page:c1:plain"]
    pruned = audit(redis_client, ["page:c1:"], prune=True)
    assert pruned.pruned == 2
    assert sorted(redis_client.zrange(INDEX_KEY, 0, -1)) == [
        b"page:c1:2",
        b"page:c1:3",
        b"page:c1:4",
    ]
    with pytest.raises(ValueError, match="empty prefix"):
        audit(redis_client, [""])


def _graph_dir(tmp_path: Path, indexed: bool) -> Path:
    """A copy of the reference schemas; ``indexed``: the ``default`` target (whose prefix rules
    purge ``catalog:listing:{category_id}:``) declares ``prefix_index: true``."""
    root = tmp_path / "schemas"
    shutil.copytree(REPO / "schemas", root)
    graph = root / "flush-graph.yaml"
    text = graph.read_text()
    if indexed:
        old = "default: {grace_seconds: 30}"
        assert old in text
        text = text.replace(old, "default: {grace_seconds: 30, prefix_index: true}")
    graph.write_text(text)
    return root


def test_index_audit_command_exits_1_on_a_missing_key_and_2_without_prefixes(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    schemas = _graph_dir(tmp_path, indexed=True)
    _fill(Cache(redis_client), "catalog:listing:c1:1")
    clean = CliRunner().invoke(
        main, ["index-audit", "--redis", redis_url, "--schemas", str(schemas)]
    )
    assert clean.exit_code == 0, clean.output
    assert "audited 1 prefix(es): catalog:listing:" in clean.output
    assert "keys: 1; missing from the index: 0" in clean.output
    redis_client.set("catalog:listing:c1:plain", "x")
    dirty = CliRunner().invoke(
        main, ["index-audit", "--redis", redis_url, "--prefix", "catalog:listing:", "--json"]
    )
    assert dirty.exit_code == 1
    assert json.loads(dirty.output)["missing_sample"] == ["catalog:listing:c1:plain"]
    usage = CliRunner().invoke(main, ["index-audit", "--redis", redis_url])
    assert usage.exit_code == 2
    assert "Examples" in CliRunner().invoke(main, ["index-audit", "--help"]).output


def test_flush_graph_prefix_index_is_read_per_target_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "flush-graph.yaml"
    path.write_text(
        "targets:\n"
        "  default: {grace_seconds: 30}\n"
        "  cdn: {grace_seconds: 60, prefix_index: true}\n"
        "  pricing: {grace_seconds: 5, prefix_index: false}\n"
    )
    graph, problems = load_graph(path)
    assert problems == []
    assert graph.prefix_index == {"cdn"}
    assert resolve_prefix_index(path) == {"cdn"}
    assert resolve_prefix_index(None) == frozenset()
    path.write_text("targets:\n  default: {grace_seconds: 30, prefix_index: yes please}\n")
    _, problems = load_graph(path)
    assert [(p.location.line, p.message.split(";")[0]) for p in problems] == [
        (2, "prefix_index of target default must be true or false")
    ]
    path.write_text("targets:\n  default: {grace_seconds: 30, prefix_idx: true}\n")
    _, problems = load_graph(path)
    assert "did you mean 'prefix_index'" in problems[0].message


def test_lint_reports_a_wrong_prefix_index_with_file_and_line(tmp_path: Path) -> None:
    schemas = _graph_dir(tmp_path, indexed=False)
    graph = schemas / "flush-graph.yaml"
    graph.write_text(
        graph.read_text().replace("{grace_seconds: 60}", "{grace_seconds: 60, prefix_index: 1}")
    )
    result = CliRunner().invoke(main, ["lint", str(schemas)])
    assert result.exit_code == 1
    assert f"{graph}:4:" in result.output
    assert "prefix_index of target cdn must be true or false" in result.output


def test_coordinator_from_the_graph_reads_indexed_targets_from_the_index(redis_url: str) -> None:
    worker = Coordinator.from_url(redis_url, prefix_index={"cdn"})
    assert isinstance(worker.target, RedisPurgeTarget)
    assert worker.target.planner.prefix_index == {"cdn"}


def test_indexed_stage_pages_every_prefix_and_a_nested_delete_wins_over_soft(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client)
    for c in range(30):
        for i in range(7):
            _fill(cache, f"page:c{c}:{i}")
    for i in range(3):
        _fill(cache, f"page:c0:a{i}")
    target = RedisPurgeTarget(redis_client, prefix_index={"cdn"}, grace={"cdn": 60}, chunk_size=5)
    redis_client.config_resetstat()
    stats = target.purge_stage(
        [FlushOp("prefix", "cdn", f"page:c{c}:") for c in range(1, 30)]
        + [FlushOp("prefix", "cdn", "page:c0:", "soft"), FlushOp("prefix", "cdn", "page:c0:a")]
    )
    # 29 prefixes of 7 keys deleted, page:c0:a* deleted (not also soft-counted), the other 7
    # of page:c0: soft-marked
    assert stats == PurgeStats(prefix_keys=29 * 7 + 3 + 7, soft_marked=7)
    assert redis_client.exists(*[f"page:c0:a{i}" for i in range(3)]) == 0
    assert redis_client.hexists("page:c0:1", layout.FIELD_STALE)
    assert redis_client.dbsize() == 1 + 7  # the index and the soft-marked keys
    # pages of 5: two pages for each prefix of 7 keys, one for page:c0:a (3 keys)
    calls = redis_client.info("commandstats")["cmdstat_zrangebylex"]["calls"]
    assert calls == 30 * 2 + 1
