"""Emitters against the real redis-server: one XADD per event, batches in one pipeline,
approximate MAXLEN, sync and asyncio twins."""

from __future__ import annotations

import asyncio

import pytest
import redis

from damestoilet_contracts._errors import EmitterClosedError, EmptyValueError
from damestoilet_contracts.model import Plan
from damestoilet_contracts.runtime import AsyncEmitter, Emitter, Envelope
from tests.runtime_support import KeysChanged

pytestmark = pytest.mark.redis

STREAM = "emit-events"


def _envelopes(client: redis.Redis) -> list[Envelope]:
    return [Envelope.from_fields(fields) for _, fields in client.xrange(STREAM)]


def test_emit_appends_one_envelope_and_returns_its_id(redis_client: redis.Redis) -> None:
    event = KeysChanged(keys=["catalog:product:p1"])
    with Emitter(redis_client, source="//svc/catalog", stream=STREAM) as emitter:
        event_id = emitter.emit(event)
    [env] = _envelopes(redis_client)
    assert env.id == event_id
    assert env.source == "//svc/catalog"
    assert env.plan == event.flush_plan()
    assert env.data == event.to_bytes()


def test_emit_many_keeps_order(redis_client: redis.Redis) -> None:
    events = [KeysChanged(keys=[f"k:{i}"]) for i in range(50)]
    emitter = Emitter(redis_client, source="//svc", stream=STREAM)
    ids = emitter.emit_many(events)
    envs = _envelopes(redis_client)
    assert [e.id for e in envs] == ids
    assert [e.plan for e in envs] == [e.flush_plan() for e in events]
    assert ids == sorted(ids)  # time-ordered ids


def test_emit_many_sends_nothing_when_one_event_cannot_be_planned(
    redis_client: redis.Redis,
) -> None:
    class Unplannable(KeysChanged):
        def flush_plan(self) -> Plan:
            raise EmptyValueError("product_id is empty")

    emitter = Emitter(redis_client, source="//svc", stream=STREAM)
    with pytest.raises(EmptyValueError):
        emitter.emit_many([KeysChanged(keys=["a"]), Unplannable(keys=["b"])])
    assert redis_client.xlen(STREAM) == 0


def test_maxlen_caps_the_stream_approximately(redis_client: redis.Redis) -> None:
    emitter = Emitter(redis_client, source="//svc", stream=STREAM, maxlen=100)
    for _ in range(10):
        emitter.emit_many([KeysChanged(keys=["k"])] * 100)
    assert 100 <= redis_client.xlen(STREAM) < 1000


def test_no_maxlen_keeps_every_entry(redis_client: redis.Redis) -> None:
    emitter = Emitter(redis_client, source="//svc", stream=STREAM, maxlen=None)
    emitter.emit_many([KeysChanged(keys=["k"])] * 500)
    assert redis_client.xlen(STREAM) == 500


def test_from_url_owns_and_closes_its_client(redis_url: str, redis_client: redis.Redis) -> None:
    with Emitter.from_url(redis_url, source="//svc", stream=STREAM) as emitter:
        emitter.emit(KeysChanged(keys=["k"]))
    assert redis_client.xlen(STREAM) == 1


def test_closing_an_emitter_leaves_a_passed_client_open(redis_client: redis.Redis) -> None:
    Emitter(redis_client, source="//svc", stream=STREAM).close()
    assert redis_client.ping()


def test_a_closed_emitter_refuses_to_emit_and_sends_nothing(redis_client: redis.Redis) -> None:
    emitter = Emitter(redis_client, source="//svc", stream=STREAM)
    emitter.emit(KeysChanged(keys=["k"]))
    emitter.close()
    assert emitter.closed
    with pytest.raises(EmitterClosedError, match="was closed; nothing was sent"):
        emitter.emit(KeysChanged(keys=["k"]))
    with pytest.raises(EmitterClosedError):
        emitter.emit_many([KeysChanged(keys=["k"])] * 3)
    emitter.close()  # closing twice is harmless
    assert redis_client.xlen(STREAM) == 1


def test_a_closed_async_emitter_refuses_to_emit(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> None:
        async with AsyncEmitter.from_url(redis_url, source="//svc", stream=STREAM) as emitter:
            await emitter.emit(KeysChanged(keys=["k"]))
        assert emitter.closed
        with pytest.raises(EmitterClosedError):
            await emitter.emit(KeysChanged(keys=["k"]))
        await emitter.aclose()

    asyncio.run(main())
    assert redis_client.xlen(STREAM) == 1


def test_an_emitter_needs_a_source(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="source"):
        Emitter(redis_client, source="", stream=STREAM)


def test_async_emitter_emits_like_the_sync_one(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> tuple[str, list[str]]:
        async with AsyncEmitter.from_url(redis_url, source="//svc", stream=STREAM) as emitter:
            one = await emitter.emit(KeysChanged(keys=["a"]))
            many = await emitter.emit_many([KeysChanged(keys=["b"]), KeysChanged(keys=["c"])])
        return one, many

    one, many = asyncio.run(main())
    envs = _envelopes(redis_client)
    assert [e.id for e in envs] == [one, *many]
    assert [e.plan.ops[0].key for e in envs if e.plan] == ["a", "b", "c"]
