"""The Redis done store on a real server: the batch's ids in one argument, and the per-key
form for ids that a newline-joined argument could not carry."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from damestoilet_contracts.runtime import AsyncRedisDoneStore, RedisDoneStore
from damestoilet_contracts.runtime.redis._layout import done_key

pytestmark = pytest.mark.redis

GROUP = "g:1"  # a colon in the group, as the key layout allows


@pytest.fixture(autouse=True)
def _clean(redis_client: redis.Redis) -> None:
    redis_client.flushall()


def test_marks_and_finds_a_batch_of_ids(redis_client: redis.Redis) -> None:
    store = RedisDoneStore(redis_client)
    ids = [f"0190-{i}" for i in range(500)]
    store.mark(GROUP, ids[::2], 60)
    assert store.seen(GROUP, ids) == set(range(0, 500, 2))
    assert store.seen("other", ids) == set()  # marks are per group
    ttl = redis_client.ttl(done_key(ids[0], GROUP))
    assert 0 < ttl <= 60
    assert redis_client.get(done_key(ids[0], GROUP)) == b"1"
    assert not redis_client.exists(done_key(ids[1], GROUP))


def test_a_mark_keeps_its_first_expiry(redis_client: redis.Redis) -> None:
    store = RedisDoneStore(redis_client)
    store.mark(GROUP, ["a"], 30)
    store.mark(GROUP, ["a"], 9000)  # NX: the first mark stands
    assert redis_client.ttl(done_key("a", GROUP)) <= 30


@pytest.mark.parametrize(
    "odd",
    ["two\nlines", "", "\n", "trailing\n"],
    ids=["newline", "empty", "only-newline", "trailing-newline"],
)
def test_ids_a_joined_argument_cannot_carry_take_the_per_key_form(
    redis_client: redis.Redis, odd: str
) -> None:
    store = RedisDoneStore(redis_client)
    ids = ["a", odd, "b"]
    store.mark(GROUP, ids[1:2], 60)
    assert redis_client.exists(done_key(odd, GROUP))
    assert store.seen(GROUP, ids) == {1}
    assert not redis_client.exists(done_key("two", GROUP))
    assert not redis_client.exists(done_key("lines", GROUP))


def test_no_ids_ask_nothing(redis_client: redis.Redis) -> None:
    store = RedisDoneStore(redis_client)
    store.mark(GROUP, [], 60)
    assert store.seen(GROUP, []) == set()
    assert redis_client.dbsize() == 0


def test_the_async_store_agrees(redis_url: str, redis_client: redis.Redis) -> None:
    async def main() -> tuple[set[int], set[int]]:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = AsyncRedisDoneStore(client)
        await store.mark(GROUP, ["x", "y", "with\nnewline"], 60)
        await store.mark(GROUP, [], 60)
        found = await store.seen(GROUP, ["w", "x", "with\nnewline", "y", "z"])
        none = await store.seen(GROUP, [])
        await client.aclose()
        return found, none

    found, none = asyncio.run(main())
    assert found == {1, 2, 3}
    assert none == set()
    assert RedisDoneStore(redis_client).seen(GROUP, ["y", "x"]) == {0, 1}
