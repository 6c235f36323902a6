"""End to end on NATS JetStream: a Node service built on the generated TypeScript package
publishes onto a real nats-server, the messages are what the Python emitter would publish
(the same headers and body for the same envelope), and the Python coordinator reading the
subject purges the keys they name in a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis

from damestoilet_contracts.runtime import Coordinator, CoordinatorConfig
from damestoilet_contracts.runtime._cloudevents import from_binary
from damestoilet_contracts.runtime._signing import KEY_ENV
from tests.typescript import node, node_service, run

pytestmark = [pytest.mark.nats, pytest.mark.redis]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Node service importing the generated package ``reference`` (see ``node_service``)."""
    return node_service(tmp_path_factory.mktemp("ts-nats-service"))


def _stored(nats_url: str, subject: str) -> list[Any]:
    import nats

    from damestoilet_contracts.runtime.nats._layout import stream_name

    async def main() -> list[Any]:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream_name(subject))
            count = int(info.state.messages)
            return [await js.get_msg(stream_name(subject), seq) for seq in range(1, count + 1)]
        finally:
            await nc.close()

    return asyncio.run(main())


def test_node_publishes_what_the_python_emitter_would_and_the_coordinator_purges_it(
    service: Path, nats_url: str, nats_subject: str, redis_url: str, redis_client: redis.Redis
) -> None:
    from codegen import CartUpdated, ProductPriceChanged
    from damestoilet_contracts.runtime.nats._layout import DUPLICATE_WINDOW_S
    from damestoilet_contracts.runtime.nats._publisher import message_of

    ids = node(service / "nats.mjs", service, nats_url, nats_subject).split()
    stored = _stored(nats_url, nats_subject)
    assert len(stored) == 3  # the re-sent first envelope was dropped by the duplicate window
    envelopes = []
    for raw in stored:
        envelope = from_binary(raw.headers, raw.data, "nats")
        body, headers = message_of(envelope)  # what Python publishes for this very envelope
        assert (raw.data, dict(raw.headers)) == (body, headers)
        envelopes.append(envelope)
    assert [e.id for e in envelopes] == ids
    price = ProductPriceChanged.from_bytes(envelopes[0].data)
    assert (price.product_id, price.price_cents) == ("pé1", 9007199254740993)
    assert envelopes[0].plan == price.flush_plan()
    assert envelopes[0].partitionkey == price.partition_key() == "pé1"  # ce-partitionkey
    # the key past ASCII travels as Python's json.dumps writes it: escaped in the JSON (which
    # percent-encoding then leaves alone), not as percent-encoded UTF-8
    plan_header = stored[0].headers["ce-flushplan"]
    assert "%22catalog:product:p\\u00e91%22" in plan_header and "%C3" not in plan_header
    for envelope in envelopes[1:]:
        assert envelope.plan == CartUpdated.from_bytes(envelope.data).flush_plan()

    stale = [
        op.key if op.op == "key" else f"{op.key}x"
        for envelope in envelopes
        for op in (envelope.plan.ops if envelope.plan else ())
        if op.mode == "delete" and op.op in ("key", "prefix")
    ]
    assert "catalog:product:pé1" in stale
    fresh = ["catalog:product:p2", "cart:c7"]
    redis_client.mset(dict.fromkeys([*stale, *fresh], 1))
    config = CoordinatorConfig(stream=nats_subject, consumer="c1", block_ms=50)
    with Coordinator.from_url(redis_url, config, bus_url=nats_url) as worker:
        worker.run(stop_when_idle=True)
        assert worker.stats.events == 3
    assert [k for k in stale if redis_client.exists(k)] == []
    assert redis_client.exists(*fresh) == len(fresh)
    # the TypeScript constant is the Python one
    text = (service / "node_modules" / "reference" / "src" / "nats.ts").read_text()
    assert f"export const DUPLICATE_WINDOW_S = {int(DUPLICATE_WINDOW_S)};" in text


KEY = "k" * 16 + "-node-nats-key"


def test_node_signs_on_nats_and_a_signing_coordinator_purges_only_what_it_signed(
    service: Path, nats_url: str, nats_subject: str, redis_url: str, redis_client: redis.Redis
) -> None:
    # the same key signs in Node and checks in Python; the wrongly signed and the unsigned
    # messages are dead-lettered unread with their reasons, the signed one is purged
    from damestoilet_contracts.runtime import SigningKeys, open_backend

    wrong = "w" * 16 + "-another-nats-key"
    out = run(
        ["node", str(service / "nats_signed.mjs"), nats_url, nats_subject, wrong],
        service,
        env={KEY_ENV: KEY},
    )
    ids = out.split()
    keys = SigningKeys(KEY.encode())
    signed, forged, unsigned = _stored(nats_url, nats_subject)
    # Python computes the very same signature over the same headers and body
    assert signed.headers["damestoilet-signature"] == keys.sign_message(signed.headers, signed.data)
    assert keys.check_message(signed.headers, signed.data, "nats") is None
    assert forged.headers["damestoilet-signature"] == SigningKeys(wrong.encode()).sign_message(
        forged.headers, forged.data
    )
    assert "damestoilet-signature" not in (unsigned.headers or {})

    stale = ["catalog:product:pé1", "cart:c9", "cart:c8"]
    redis_client.mset(dict.fromkeys(stale, 1))
    config = CoordinatorConfig(stream=nats_subject, consumer="c1", block_ms=50)
    with Coordinator.from_url(redis_url, config, bus_url=nats_url, signing=keys) as worker:
        worker.run(stop_when_idle=True)
        assert (worker.stats.events, worker.stats.dead_lettered) == (1, 2)
    assert not redis_client.exists("catalog:product:pé1")
    assert redis_client.exists("cart:c9", "cart:c8") == 2
    letters = open_backend("dead_letters", nats_url)
    try:
        reasons = sorted(letter.reason for letter in letters.entries(f"{nats_subject}:dlq"))
    finally:
        letters.close()
    assert reasons == [
        "signature: the message is not signed (no damestoilet-signature header) and this "
        "coordinator requires signatures",
        "signature: the message's signature does not match any accepted key",
    ]
    assert len(ids) == 3
