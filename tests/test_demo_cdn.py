"""The demo's CDN story on a real varnishd: the old image served from Varnish before the
AssetReplaced event, the Redis key then the CDN objects purged in stage order, the new image
after; a purge that does not reach Varnish fails the run."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.demo import _cdn as cdn_story
from damestoilet_contracts.demo import run_demo
from damestoilet_contracts.runtime.varnish import VarnishPurgeTarget
from tests.conftest import SCHEMAS

pytestmark = [pytest.mark.redis, pytest.mark.varnish]


def test_demo_shows_the_old_image_from_varnish_before_the_event_and_the_new_one_after(
    redis_client, redis_url
):
    lines: list[str] = []
    result = run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lines.append, varnish=True)

    assert result.ok
    cdn = result.cdn
    assert cdn is not None and cdn.ok
    assert cdn.before[cdn_story.IMAGE] == cdn_story.OLD_IMAGE
    assert cdn.after[cdn_story.IMAGE] == cdn_story.NEW_IMAGE
    assert cdn.calls == [
        (1, "default", ["assets:asset:demo-a1"]),
        (1, "cdn", ["/assets/demo-a1/large"]),
        (2, "cdn", ["/products/demo-p1"]),
    ]
    text = "\n".join(lines)
    assert "old photo (sha1" in text and "a Varnish hit: the article's stale image" in text
    assert "cdn result: new image everywhere; Redis key assets:asset:demo-a1 flushed" in text
    assert sorted(redis_client.keys("*")) == []  # the story cleans up after itself


def test_demo_fails_when_the_cdn_purge_does_not_reach_varnish(redis_client, redis_url, monkeypatch):
    """A Varnish target that serves no target name leaves the old image: the run fails."""

    def serving_nothing(nodes, **options):
        return VarnishPurgeTarget(nodes, targets=set(), **options)

    monkeypatch.setattr(cdn_story, "VarnishPurgeTarget", serving_nothing)
    lines: list[str] = []
    result = run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lines.append, varnish=True)
    assert result.cdn is not None and not result.cdn.ok
    assert result.cdn.after[cdn_story.IMAGE] == cdn_story.OLD_IMAGE
    assert not result.ok
    assert any("cdn result: STILL STALE" in line for line in lines)


def test_demo_without_varnish_skips_the_story(redis_client, redis_url):
    result = run_demo(schemas=SCHEMAS, redis_url=redis_url, echo=lambda _: None, varnish=False)
    assert result.cdn is None and result.ok


def test_demo_command_runs_the_cdn_story_by_default_when_varnish_is_installed(redis_url):
    result = CliRunner().invoke(main, ["demo", "--redis", redis_url, "--schemas", str(SCHEMAS)])
    assert result.exit_code == 0, result.output
    assert "[cdn 4/4]" in result.output
    skipped = CliRunner().invoke(
        main, ["demo", "--redis", redis_url, "--schemas", str(SCHEMAS), "--no-varnish"]
    )
    assert skipped.exit_code == 0 and "[cdn" not in skipped.output
