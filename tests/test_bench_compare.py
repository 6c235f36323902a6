"""``damestoilet bench compare``: the figures computed from a run's records, and short runs of
the four strategies against the real Redis of the test session (structure and the orderings
that must hold, never timings)."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from damestoilet_contracts.bench import (
    CompareSettings,
    Workload,
    format_table,
    local_redis,
    run_compare,
    to_json,
)
from damestoilet_contracts.bench._workload import Recorder, measure, percentile
from damestoilet_contracts.cli import main
from tests.conftest import SCHEMAS

NAMES = ["ttl-only", "manual", "keyspace", "damestoilet"]


# -- the bookkeeping (no Redis) ---------------------------------------------------------------


def test_read_of_an_older_version_is_stale_only_beyond_the_tolerance():
    rec = Recorder()
    rec.commit(7, version=1, before=10.0, after=10.001)
    rec.read(10.05, 7, 0, True)  # 49 ms after the write: within 100 ms
    rec.read(10.2, 7, 0, True)  # 199 ms after: stale
    rec.read(10.3, 7, 1, True)  # the new version: fresh
    rec.read(10.4, 8, 0, True)  # another entity, never written
    m = measure(rec, 0.0, 100.0, 0.1, purges_expected=True)
    assert (m.reads, m.stale, m.hits) == (4, 1, 4)


def test_reads_and_writes_outside_the_window_are_not_counted():
    rec = Recorder()
    rec.commit(1, 1, 1.0, 1.001)
    rec.read(1.5, 1, 0, False)  # stale, but in the warm-up
    rec.read(5.5, 1, 0, False)
    m = measure(rec, 5.0, 6.0, 0.1, purges_expected=True)
    assert (m.reads, m.stale, m.hits, m.writes) == (1, 1, 0, 0)


def test_flush_latency_runs_from_the_write_to_the_first_purge_after_it():
    rec = Recorder()
    rec.purged(3, 0.5, 0.6)  # before the write: does not flush it
    rec.commit(3, 1, 1.0, 1.001)
    rec.purged(3, 1.002, 1.004)
    rec.commit(3, 2, 2.0, 2.001)  # never purged
    m = measure(rec, 0.0, 10.0, 0.1, purges_expected=True)
    assert m.writes == 2
    assert m.latency.count == 1 and m.latency.unflushed == 1
    assert m.latency.p50_ms == pytest.approx(4.0)


def test_ttl_only_reports_no_flush_latency():
    rec = Recorder()
    rec.commit(3, 1, 1.0, 1.001)
    m = measure(rec, 0.0, 10.0, 0.1, purges_expected=False)
    assert m.latency.p50_ms is None and m.latency.p99_ms is None


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


def test_workload_is_skewed_and_the_same_for_the_same_seed():
    settings = CompareSettings(duration_s=2, read_rate=5000, write_rate=50, keys=100)
    a, b = Workload.build(settings), Workload.build(settings)
    assert a == b
    assert len(a.reads) == int(settings.total_s * 5000)
    top = a.reads.count(0) / len(a.reads)
    tail = a.reads.count(99) / len(a.reads)
    assert top > 10 * tail  # Zipf 1: rank 1 is read 100 times as often as rank 100
    assert set(a.writes) <= set(range(100))


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="read_rate"):
        CompareSettings(read_rate=0)
    with pytest.raises(ValueError, match="tolerance_ms"):
        CompareSettings(tolerance_ms=-1)


def test_local_redis_is_gone_after_the_block():
    with local_redis() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        socket.create_connection(("127.0.0.1", port), 1).close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        pass


# -- short runs on a real Redis -----------------------------------------------------------------

#: Write-heavy and short: every key is written about once a second, TTL-only keeps values
#: for 3 s, and the tolerance is wide (1 s) so that only a strategy that does not purge, or
#: purges late, can read stale.
WRITE_HEAVY = CompareSettings(
    duration_s=2.0,
    warmup_s=0.5,
    read_rate=400,
    write_rate=40,
    keys=40,
    ttl_s=3.0,
    backstop_ttl_s=60.0,
    manual_delay_s=1.5,
    tolerance_ms=1000.0,
    db_latency_ms=1.0,
    readers=4,
)


@pytest.fixture(scope="module")
def report(redis_url):
    return run_compare(WRITE_HEAVY, redis_url=redis_url, schemas=SCHEMAS)


@pytest.mark.redis
def test_every_strategy_runs_in_order_on_the_same_workload(report):
    assert [r.name for r in report.results] == NAMES
    for r in report.results:
        assert r.errors == 0
        assert r.measures.reads > 0.5 * WRITE_HEAVY.read_rate * WRITE_HEAVY.duration_s
        assert r.measures.writes > 0
        assert 0.0 <= r.measures.hit_ratio <= 1.0
        assert r.redis_cpu_s >= 0.0


@pytest.mark.redis
def test_damestoilet_reads_nothing_stale_where_ttl_only_does(report):
    by_name = {r.name: r.measures for r in report.results}
    assert by_name["ttl-only"].stale > 0
    assert by_name["damestoilet"].stale == 0
    assert by_name["damestoilet"].latency.count > 0


@pytest.mark.redis
def test_only_the_purging_strategies_have_a_flush_latency(report):
    by_name = {r.name: r.measures.latency for r in report.results}
    assert by_name["ttl-only"].p50_ms is None
    for name in ("manual", "keyspace", "damestoilet"):
        assert by_name[name].p50_ms is not None
        assert by_name[name].p99_ms >= by_name[name].p50_ms
    # a write whose key has no earlier purge pending waits for the whole operator delay
    # (one that has may be flushed sooner, by the purge of the earlier write)
    assert by_name["manual"].p99_ms >= WRITE_HEAVY.manual_delay_s * 1000


@pytest.mark.redis
def test_json_and_table_carry_every_strategy_and_the_article(report):
    data = json.loads(to_json(report))
    assert [s["name"] for s in data["strategies"]] == NAMES
    assert data["settings"]["time_scale"] == 30.0
    assert data["strategies"][0]["redis_cpu_vs_ttl_only"] == 0.0
    assert {a["name"] for a in data["article"]} == set(NAMES)
    table = format_table(report)
    for label in ("TTL-only", "Manual purge", "Keyspace notifications", "damestoilet"):
        assert label in table


@pytest.mark.redis
def test_keyspace_run_restores_the_notification_setting(report, redis_client):
    assert redis_client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""


@pytest.mark.redis
def test_compare_command_writes_table_json_and_chart(tmp_path, redis_url):
    pytest.importorskip("matplotlib")
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    args = ["bench", "compare", "--redis", redis_url, "--duration", "1", "--warmup", "0.2"]
    args += ["--read-rate", "200", "--write-rate", "20", "--keys", "20", "--readers", "2"]
    args += ["--schemas", str(SCHEMAS), "--json", str(out_json), "--chart", str(out_png)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Keyspace notifications" in result.output
    assert [s["name"] for s in json.loads(out_json.read_text())["strategies"]] == NAMES
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_command_exits_1_when_redis_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["bench", "compare", "--redis", f"redis://127.0.0.1:{port}/0", "--duration", "0.5"],
        )
    assert result.exit_code == 1
    assert "bench compare failed" in result.output


def test_compare_command_exits_1_for_a_malformed_url():
    result = CliRunner().invoke(main, ["bench", "compare", "--redis", "127.0.0.1:6379"])
    assert result.exit_code == 1
    assert "not a Redis URL" in result.output
