"""End to end: a Node service built on the generated TypeScript package emits onto a real
Redis stream, and the Python coordinator purges the keys it named.

The package is generated with the CLI, built with its own tsconfig.json (``tsc -p``, as its
``npm run build`` does), and imported by its npm name from a service folder, as a Node service
would after ``npm install ../gen-ts``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime._signing import KEY_ENV as SIGNING_KEY_ENV
from damestoilet_contracts.runtime._signing import SigningKeys
from tests.typescript import node, node_service, run

pytestmark = pytest.mark.redis

STREAM = "damestoilet:events"  # the emitter's default, as the Python emitter's
FRESH = ["catalog:product:p2", "catalog:listing:c2:a", "coupon:Y:carts"]


def _stale_keys() -> list[str]:
    """Keys the events of service.mjs make stale, from the Python plans of the same events (so
    the test follows the reference graph): each deleted key, and a key under each prefix."""
    from codegen import CartLine, CartUpdated, ProductPriceChanged

    events = [
        ProductPriceChanged(
            product_id="p1", store_ids=("s1", "s2"), category_id="c1", price_cents=2**53 + 1
        ),
        CartUpdated(
            cart_id="c9",
            customer_id="u9",
            lines=(CartLine(sku="k", quantity=2),),
            coupon_code="X",
        ),
        CartUpdated(cart_id="c8", customer_id="u8", lines=()),
    ]
    keys = []
    for event in events:
        for op in event.flush_plan().ops:
            if op.mode == "delete" and op.op in ("key", "prefix"):
                keys.append(op.key if op.op == "key" else f"{op.key}a")
    return keys


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Node service importing the generated package ``reference`` (see ``node_service``)."""
    return node_service(tmp_path_factory.mktemp("ts-service"))


def test_node_emits_and_the_python_coordinator_purges(
    redis_client: redis.Redis, redis_url: str, service: Path
) -> None:
    stale = _stale_keys()
    assert len(stale) >= 8
    redis_client.mset(dict.fromkeys([*stale, *FRESH], 1))
    ids = node(service / "service.mjs", service, redis_url).split()

    entries = redis_client.xrange(STREAM)
    assert [Envelope.from_fields(fields).id for _, fields in entries] == ids
    first = Envelope.from_fields(entries[0][1])
    assert (first.type, first.source) == ("catalog.v1.ProductPriceChanged", "//node/catalog")
    from codegen import ProductPriceChanged

    event = ProductPriceChanged.from_bytes(first.data)
    assert event.price_cents == 9007199254740993  # a bigint on the way, not a lossy number
    assert first.plan == event.flush_plan()

    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c1")
    worker = Coordinator(bus, RedisPurgeTarget(redis_client), RedisDoneStore(redis_client), config)
    worker.run(stop_when_idle=True)
    assert worker.stats.events == 3
    assert [k for k in stale if redis_client.exists(k)] == []
    assert [k for k in FRESH if not redis_client.exists(k)] == []


KEY = "k" * 16 + "-node-signing-key"


def test_node_signs_and_a_signing_coordinator_purges_only_what_it_signed(
    redis_client: redis.Redis, redis_url: str, service: Path
) -> None:
    # the same key signs in Node and checks in Python: an entry signed with another key and
    # an unsigned one are dead-lettered unread, with the reason; the signed one is purged
    redis_client.delete(STREAM, f"{STREAM}:dlq")
    stale = ["catalog:product:p1", "cart:c9", "cart:c8"]
    redis_client.mset(dict.fromkeys(stale, 1))
    wrong = "w" * 16 + "-another-key"
    out = run(
        ["node", str(service / "signed.mjs"), redis_url, wrong],
        service,
        env={SIGNING_KEY_ENV: KEY},
    )
    ids = out.split()
    entries = redis_client.xrange(STREAM)
    assert [Envelope.from_fields(fields).id for _, fields in entries] == ids
    keys = SigningKeys(KEY.encode())
    signed, forged, unsigned = (fields for _, fields in entries)
    assert signed[b"s"] == keys.sign(signed)  # Python computes the very same signature
    assert keys.check(signed) is None
    assert forged[b"s"] == SigningKeys(wrong.encode()).sign(forged)
    assert b"s" not in unsigned

    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c1")
    target, done = RedisPurgeTarget(redis_client), RedisDoneStore(redis_client)
    worker = Coordinator(bus, target, done, config, signing=keys)
    worker.run(stop_when_idle=True)
    assert (worker.stats.events, worker.stats.dead_lettered) == (1, 2)
    assert not redis_client.exists("catalog:product:p1")
    assert redis_client.exists("cart:c9", "cart:c8") == 2
    reasons = {
        Envelope.from_fields(f).id: f[b"dlq_reason"].decode()
        for _, f in redis_client.xrange(f"{STREAM}:dlq")
    }
    assert reasons == {
        ids[1]: "signature: the entry's signature does not match any accepted key",
        ids[2]: "signature: the entry is not signed and this coordinator requires signatures",
    }
