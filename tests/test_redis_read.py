"""What the Redis stream bus reads, entry by entry: every kind of entry comes back with its
fields as they were written, from the sync and the async bus alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.model._plan import op_maker
from damestoilet_contracts.runtime import AsyncRedisStreamBus, ConsumePolicy, RedisStreamBus

pytestmark = pytest.mark.redis

STREAM = "read-events"
ENTRIES: list[dict[Any, Any]] = [
    {b"e": b"DSE\x02 a version-2 blob"},
    {b"v": b"1", b"id": b"x", b"data": b""},  # version 1: a field per attribute
    {b"e": b"blob", b"extra": b"a second field"},  # `e` beside another field: kept whole
    {b"x": b"1"},  # no envelope at all: the core dead-letters it, the bus passes it on
    {b"e": b""},
]


@pytest.fixture(autouse=True)
def _clean(redis_client: redis.Redis) -> None:
    redis_client.flushall()


def _add(client: redis.Redis) -> list[str]:
    raw: Any = client
    return [raw.xadd(STREAM, fields).decode() for fields in ENTRIES]


def test_every_entry_comes_back_with_its_fields(redis_client: redis.Redis) -> None:
    bus = RedisStreamBus(redis_client, stream=STREAM, consumer="c1")
    bus.open(ConsumePolicy())
    ids = _add(redis_client)
    got = bus.fetch(10, 0.01)
    assert [d.id for d in got] == ids
    assert [dict(d.fields) for d in got] == ENTRIES
    assert [d.deliveries for d in got] == [1] * len(ENTRIES)
    assert bus.fetch(10, 0.01) == []  # read once: now pending, not new
    assert redis_client.xpending(STREAM, bus.group)["pending"] == len(ENTRIES)


def test_a_batch_takes_count_entries_and_the_next_read_the_rest(
    redis_client: redis.Redis,
) -> None:
    bus = RedisStreamBus(redis_client, stream=STREAM, consumer="c1")
    bus.open(ConsumePolicy())
    ids = _add(redis_client)
    first, second = bus.fetch(3, 0.01), bus.fetch(3, 0.01)
    assert [d.id for d in first + second] == ids
    assert len(first) == 3


def test_the_async_bus_reads_the_same(redis_url: str, redis_client: redis.Redis) -> None:
    ids = _add(redis_client)

    async def main() -> list[Any]:
        client = redis.asyncio.Redis.from_url(redis_url)
        bus = AsyncRedisStreamBus(client, stream=STREAM, consumer="c1")
        await bus.open(ConsumePolicy())
        got = await bus.fetch(10, 0.01)
        await client.aclose()
        return got

    # the group starts at the stream's first entry, so entries added before it are read
    got = asyncio.run(main())
    assert [d.id for d in got] == ids
    assert [dict(d.fields) for d in got] == ENTRIES


def test_a_decoder_made_op_is_the_same_frozen_op() -> None:
    made = op_maker()("key", "default", "k:1", "soft")
    plain = FlushOp("key", "default", "k:1", "soft")
    assert made == plain and hash(made) == hash(plain) and type(made) is FlushOp
    assert repr(made) == repr(plain)
    with pytest.raises(AttributeError):
        made.key = "k:2"  # type: ignore[misc]
