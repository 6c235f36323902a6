"""One plan, two kinds of targets: the coordinator purges the Redis keys and the Varnish
objects of a real ``assets.v1.AssetReplaced`` (generated from the reference contracts) in
stage order, the CDN product page after the Redis asset it is derived from; a Varnish that is
down is retried, then dead-lettered with the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pytest
import redis

from codegen import AssetReplaced
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    PurgeStats,
    PurgeTarget,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime.varnish import VarnishPurgeTarget
from tests.fixtures_varnish import Cdn
from tests.servers import free_port

pytestmark = [pytest.mark.redis, pytest.mark.varnish]

STREAM = "cdn-events"
CONFIG = CoordinatorConfig(
    stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01, retry_max_s=0.05
)


class ByTarget:
    """Routes each op to the purge target of its target name, recording the calls in order."""

    def __init__(self, routes: Mapping[str, PurgeTarget]) -> None:
        self.routes = routes
        self.calls: list[tuple[str, list[str]]] = []

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        by_name: dict[str, list[FlushOp]] = {}
        for op in ops:
            by_name.setdefault(op.target, []).append(op)
        total = PurgeStats()
        for name, group in by_name.items():
            self.calls.append((name, [op.key for op in group]))
            stats = self.routes[name].purge_stage(group)
            assert isinstance(stats, PurgeStats)
            total += stats
        return total


def coordinator(client: redis.Redis, target: PurgeTarget, **config: object) -> Coordinator:
    settings = dataclasses.replace(CONFIG, **config)  # type: ignore[arg-type]
    bus = RedisStreamBus(client, stream=STREAM, group=settings.group, consumer="c1")
    return Coordinator(bus, target, RedisDoneStore(client), settings)


def test_one_plan_purges_redis_then_the_cdn_page_derived_from_it(
    cdn: Cdn, redis_client: redis.Redis
) -> None:
    asset, product = f"{cdn.ns}-a1", f"{cdn.ns}-p1"
    image, page = f"/assets/{asset}/large", f"/products/{product}"
    cdn.stack.origin.put(image, b"old image", content_type="image/png")
    cdn.stack.origin.put(page, b"page with old image", content_type="text/html")
    cdn.get(image), cdn.get(page)
    redis_client.set(f"assets:asset:{asset}", "old metadata")
    cdn.stack.origin.put(image, b"new image", content_type="image/png")
    cdn.stack.origin.put(page, b"page with new image", content_type="text/html")
    assert cdn.get(image) == b"old image"  # still the cached one

    varnish = VarnishPurgeTarget([cdn.stack.url])

    class CheckedVarnish:
        """Varnish, checking that the page is purged only once Redis no longer has its source."""

        def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
            if any(op.key == page for op in ops):
                assert redis_client.exists(f"assets:asset:{asset}") == 0
            return varnish.purge_stage(ops)

    router = ByTarget({"default": RedisPurgeTarget(redis_client), "cdn": CheckedVarnish()})
    event = AssetReplaced(asset_id=asset, variant_ids=["large"], product_id=product)
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        emitter.emit(event)
    worker = coordinator(redis_client, router)
    worker.run(stop_when_idle=True)
    varnish.close()

    assert router.calls == [
        ("default", [f"assets:asset:{asset}"]),
        ("cdn", [image]),
        ("cdn", [page]),
    ]
    assert redis_client.exists(f"assets:asset:{asset}") == 0
    assert cdn.get(image) == b"new image"
    assert cdn.get(page) == b"page with new image"
    assert (cdn.fetched(image), cdn.fetched(page)) == (2, 2)
    # 1 Redis key, and the 2 Varnish objects counted by the PURGE answers
    assert worker.stats.keys_purged["key"] == 3


def test_a_varnish_that_is_down_is_retried_then_dead_lettered_with_the_reason(
    redis_client: redis.Redis,
) -> None:
    down = VarnishPurgeTarget([f"http://127.0.0.1:{free_port()}"], timeout=1)
    calls: list[int] = []

    class Counted:
        def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
            calls.append(len(ops))
            return down.purge_stage(ops)

    router = ByTarget({"default": RedisPurgeTarget(redis_client), "cdn": Counted()})
    event = AssetReplaced(asset_id="a9", variant_ids=["v1"], product_id="p9")
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        event_id = emitter.emit(event)
    worker = coordinator(redis_client, router, max_deliveries=3)
    worker.run(stop_when_idle=True)
    down.close()

    [(_, fields)] = redis_client.xrange(f"{STREAM}:dlq")
    reason = fields[b"dlq_reason"].decode()
    assert reason.startswith("failed 3 attempts; last error: PurgeError: Varnish http://127.0.0.1:")
    assert "did not answer PURGE /assets/a9/v1" in reason
    assert Envelope.from_fields(fields).id == event_id
    assert len(calls) == 3  # tried once per delivery, never the stage after the failed one
    assert worker.stats.retries == 2
    assert int(redis_client.xpending(STREAM, CONFIG.group)["pending"]) == 0
