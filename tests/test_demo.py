"""``damestoilet demo`` end to end: a real Redis, generated code, a coordinator thread, a price
change, and the check that every stale entry went and every unrelated one stayed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.demo import Entry, entries, run_demo
from damestoilet_contracts.demo import _scenario as scenario
from tests.conftest import SCHEMAS

pytestmark = pytest.mark.redis


def test_demo_flushes_every_stale_entry_and_keeps_the_others(redis_client, redis_url):
    lines: list[str] = []
    result = run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lines.append)

    stale = [e for e in entries() if e.stale]
    assert result.ok
    assert result.stale_flushed == len(stale)
    assert result.stale_soft == 1  # the category menu, under the soft tag rule
    assert result.unrelated_kept == len(entries()) - len(stale)
    assert [len(stage) for stage in result.plan.stages] == [5, 1, 1]
    text = "\n".join(lines)
    assert result.event_id in text
    assert "stage 3:  1 key (1 exact, 0 by prefix, 0 by tag)" in text
    assert "9/9 stale entries flushed (8 deleted, 1 kept as stale" in text
    assert "price_cents 1299" in text


def test_demo_leaves_no_key_behind_on_a_given_redis(redis_client, redis_url):
    redis_client.set("not:the:demos", b"1")
    run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lambda _line: None)
    assert sorted(redis_client.keys("*")) == [b"not:the:demos"]


def test_demo_keep_leaves_keys_and_generated_code(redis_client, redis_url):
    lines: list[str] = []
    run_demo(schemas=SCHEMAS, redis_url=redis_url, keep=True, echo=lines.append)
    folder = Path(lines[-2].rsplit(" ", 1)[-1])
    try:
        assert (folder / "catalog_v1.py").is_file()
        assert redis_client.exists("catalog:product:demo-p2")
    finally:
        import shutil

        shutil.rmtree(folder.parent, ignore_errors=True)


def test_demo_reports_a_stale_entry_that_survives(redis_client, redis_url, monkeypatch):
    """An entry the plan does not reach but that the demo expects flushed fails the run."""
    extra = Entry("catalog:product:demo-p3", "a product the event does not name")
    monkeypatch.setattr(scenario, "entries", lambda: (*entries(), extra))
    lines: list[str] = []
    result = run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lines.append)
    assert not result.ok
    assert result.stale_left == ["catalog:product:demo-p3"]
    assert any("STILL STALE: catalog:product:demo-p3" in line for line in lines)


def test_demo_reports_an_unrelated_entry_that_was_purged(redis_client, redis_url, monkeypatch):
    extra = Entry("catalog:listing:demo-c9:page:9", "claimed unrelated", stale=False)
    monkeypatch.setattr(scenario, "entries", lambda: (*entries(), extra))
    result = run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lambda _line: None)
    assert result.unrelated_lost == ["catalog:listing:demo-c9:page:9"]
    assert not result.ok


def test_demo_command_starts_and_stops_its_own_redis():
    result = CliRunner().invoke(main, ["demo", "--schemas", str(SCHEMAS)])
    assert result.exit_code == 0, result.output
    url = result.output.split(" at ", 1)[1].split()[0]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert "9/9 stale entries flushed" in result.output
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        pass  # the server it started is gone


def test_demo_command_exits_1_when_a_stale_entry_survives(redis_client, redis_url, monkeypatch):
    extra = Entry("catalog:product:demo-p3", "a product the event does not name")
    monkeypatch.setattr(scenario, "entries", lambda: (*entries(), extra))
    result = CliRunner().invoke(main, ["demo", "--redis", redis_url, "--schemas", str(SCHEMAS)])
    assert result.exit_code == 1
    assert "STILL STALE" in result.output


def test_demo_command_exits_1_when_redis_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = CliRunner().invoke(
            main, ["demo", "--redis", f"redis://127.0.0.1:{port}/0", "--schemas", str(SCHEMAS)]
        )
    assert result.exit_code == 1
    assert "cannot reach Redis" in result.output
