"""The demo's CDN story, the article's: users saw an old product image for hours because a
Redis was flushed but the CDN in front was not.

An origin on loopback serves an asset image and the product page that shows it, through a
local varnishd (the VCL of ``damestoilet varnish vcl``); Redis holds the asset's metadata.
The asset is replaced at the origin: Varnish still serves the old image. An
``assets.v1.AssetReplaced`` goes through the stream; a coordinator routing target ``default``
to Redis and target ``cdn`` to Varnish purges stage 1 (the Redis key, the image URL), then
stage 2 (the product page, derived from the asset); Varnish now serves the new image.

Runs only when varnishd and the xkey vmod are installed (``varnish_available``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from damestoilet_contracts.bench import Origin, local_varnish
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    PurgeTarget,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
    TargetRouter,
)
from damestoilet_contracts.runtime.varnish import VarnishPurgeTarget, render_vcl

CDN_STREAM = "damestoilet:demo:cdn-events"
CDN_GROUP = "damestoilet-demo-cdn"
ASSET, VARIANT, PRODUCT = "demo-a1", "large", "demo-p1"
IMAGE = f"/assets/{ASSET}/{VARIANT}"
PAGE = f"/products/{PRODUCT}"
OLD_IMAGE, NEW_IMAGE = b"PNG... the lamp, old photo", b"PNG... the lamp, new photo"


@dataclass(slots=True)
class CdnResult:
    """What the CDN story found."""

    #: (path, what Varnish served) before the event, after the origin changed.
    before: dict[str, bytes] = field(default_factory=dict)
    after: dict[str, bytes] = field(default_factory=dict)
    #: The purge calls in order: (stage, target name, keys).
    calls: list[tuple[int, str, list[str]]] = field(default_factory=list)
    redis_key_left: bool = True

    @property
    def ok(self) -> bool:
        """The old image was served before, the new one after, Redis flushed, in stage order."""
        return (
            self.before.get(IMAGE) == OLD_IMAGE
            and self.after.get(IMAGE) == NEW_IMAGE
            and NEW_IMAGE.decode() in self.after.get(PAGE, b"").decode()
            and not self.redis_key_left
            and [name for _, name, _ in self.calls] == ["default", "cdn", "cdn"]
        )


class _Recorded:
    """A backend of the router, recording each call: (stage, target name, keys)."""

    def __init__(self, name: str, inner: PurgeTarget, result: CdnResult, stage: list[int]):
        self.name, self.inner, self.result, self.stage = name, inner, result, stage

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        stats = self.inner.purge_stage(ops)
        self.result.calls.append((self.stage[0], self.name, [op.key for op in ops]))
        return stats


class _Staged:
    """The router, counting the stages it is given."""

    def __init__(self, router: TargetRouter, stage: list[int]) -> None:
        self.router, self.stage = router, stage

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        self.stage[0] += 1
        return self.router.purge_stage(ops)


def _page(image: bytes) -> bytes:
    return b"<html><h1>Lamp</h1><img src='" + IMAGE.encode() + b"' alt='" + image + b"'></html>"


def _describe(body: bytes) -> str:
    text = body.decode(errors="replace")
    if text.startswith("<html>"):
        return "page showing " + text.split("alt='", 1)[1].split("'", 1)[0]
    return f"{text} (sha1 {hashlib.sha1(body).hexdigest()[:8]})"


def _hit(response: httpx.Response) -> str:
    # Varnish answers a hit with two ids in x-varnish: this request's and the object's
    return "a Varnish hit" if len(response.headers.get("x-varnish", "").split()) == 2 else "a miss"


def run_cdn_story(
    client: redis.Redis,
    events: Any,
    grace: Mapping[str, float],
    echo: Callable[[str], None],
) -> CdnResult:
    """Run the story against ``client`` (the demo's Redis) with the generated ``events``
    module; ``echo`` each step. Raises DamestoiletError when varnishd does not start."""
    result = CdnResult()
    with contextlib.ExitStack() as stack:
        origin = stack.enter_context(Origin())
        url = stack.enter_context(local_varnish(render_vcl(origin.address)))
        http = stack.enter_context(httpx.Client(base_url=url, timeout=10))
        varnish = stack.enter_context(VarnishPurgeTarget([url]))
        stack.callback(_clean, client)
        _clean(client)
        echo(f"[cdn 1/4] varnish: started a local varnishd at {url} in front of an origin at "
             f"{origin.address}")  # fmt: skip

        origin.put(IMAGE, OLD_IMAGE, content_type="image/png")
        origin.put(PAGE, _page(OLD_IMAGE), content_type="text/html")
        client.set(f"assets:asset:{ASSET}", b'{"asset_id": "demo-a1", "version": 1}', ex=3600)
        for path in (IMAGE, PAGE, IMAGE, PAGE):
            http.get(path)
        origin.put(IMAGE, NEW_IMAGE, content_type="image/png")
        origin.put(PAGE, _page(NEW_IMAGE), content_type="text/html")
        echo("[cdn 2/4] the asset is replaced at the origin; what Varnish serves now:")
        for path in (IMAGE, PAGE):
            response = http.get(path)
            result.before[path] = response.content
            echo(f"          {path:<24} {_describe(response.content)}  ({_hit(response)}: "
                 "the article's stale image)")  # fmt: skip

        counter = [0]
        redis_target = RedisPurgeTarget(client, grace=grace)
        router = _Staged(
            TargetRouter(
                {
                    "default": _Recorded("default", redis_target, result, counter),
                    "cdn": _Recorded("cdn", varnish, result, counter),
                }
            ),
            counter,
        )
        bus = RedisStreamBus(client, stream=CDN_STREAM, group=CDN_GROUP, consumer="demo")
        config = CoordinatorConfig(stream=CDN_STREAM, group=CDN_GROUP, consumer="demo", block_ms=50)
        event = events.AssetReplaced(asset_id=ASSET, variant_ids=[VARIANT], product_id=PRODUCT)
        with Emitter(client, source="//damestoilet/demo", stream=CDN_STREAM) as emitter:
            started = time.monotonic()
            event_id = emitter.emit(event)
        echo(f"[cdn 3/4] emit: assets.v1.AssetReplaced {ASSET} (event id {event_id}); a "
             "coordinator routes target default to Redis, target cdn to Varnish:")  # fmt: skip
        Coordinator(bus, router, RedisDoneStore(client), config).run(stop_when_idle=True)
        took = (time.monotonic() - started) * 1000
        for stage, name, keys in result.calls:
            where = "Redis  " if name == "default" else "Varnish"
            echo(f"          stage {stage}: {where} {', '.join(keys)}")
        result.redis_key_left = bool(client.exists(f"assets:asset:{ASSET}"))

        echo(f"[cdn 4/4] after the purge ({took:.0f} ms), Varnish serves:")
        for path in (IMAGE, PAGE):
            response = http.get(path)
            result.after[path] = response.content
            echo(f"          {path:<24} {_describe(response.content)}  (fetched from the "
                 f"origin: {origin.fetched(path)} fetches in all)")  # fmt: skip
        verdict = "new image everywhere" if result.ok else "STILL STALE"
        echo(f"cdn result: {verdict}; Redis key assets:asset:{ASSET} "
             f"{'still there' if result.redis_key_left else 'flushed'}")  # fmt: skip
    return result


def _clean(client: redis.Redis) -> None:
    """Unlink the story's stream, its done markers and its Redis key."""
    raw: Any = client
    doomed: list[Any] = [f"assets:asset:{ASSET}"]
    if raw.exists(CDN_STREAM):
        doomed.append(CDN_STREAM)
        doomed += list(raw.scan_iter(match=f"damestoilet:done:{CDN_GROUP}:*", count=1000))
        doomed.append(f"{CDN_STREAM}:dlq")
    raw.unlink(*doomed)
