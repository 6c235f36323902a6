"""``damestoilet dlq list`` and ``dlq replay``: dead letters listed, replayed onto the main
stream with their envelope ids, removed from the dead-letter stream, then purged."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from tests.runtime_support import KeysChanged

pytestmark = pytest.mark.redis

STREAM = "dlq-events"


def _coordinate(client: redis.Redis, *, handlers: object = None) -> Coordinator:
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer="c1")
    worker = Coordinator(
        bus, RedisPurgeTarget(client), RedisDoneStore(client), config, handlers=handlers
    )  # type: ignore[arg-type]
    worker.run(stop_when_idle=True)
    return worker


def _plan_less(keys: list[str]) -> Envelope:
    env = Envelope.from_event(KeysChanged(keys=keys), source="//other")
    fields = {name: getattr(env, name) for name in Envelope.__dataclass_fields__}
    return Envelope(**{**fields, "plan": None})  # type: ignore[arg-type]


def _dead_lettered(client: redis.Redis) -> list[str]:
    """Two plan-less events with no handler: dead-lettered. Returns their envelope ids."""
    client.mset({"a": 1, "b": 1})
    ids = Emitter(client, source="//t", stream=STREAM).emit_envelopes(
        [_plan_less(["a"]), _plan_less(["b"])]
    )
    _coordinate(client)
    assert client.xlen(f"{STREAM}:dlq") == 2
    return ids


def test_dlq_list_shows_reason_and_envelope_id(redis_url: str, redis_client: redis.Redis) -> None:
    ids = _dead_lettered(redis_client)
    result = CliRunner().invoke(main, ["dlq", "list", "--redis", redis_url, "--stream", STREAM])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert ids[0] in lines[0] and "no plan and no handler for type test.v1.KeysChanged" in lines[0]

    as_json = CliRunner().invoke(
        main, ["dlq", "list", "--redis", redis_url, "--stream", STREAM, "--json"]
    )
    records = [json.loads(line) for line in as_json.output.splitlines()]
    assert [r["id"] for r in records] == ids
    assert {r["deliveries"] for r in records} == {1}


def test_dlq_replay_all_preserves_ids_and_empties_the_dlq(
    redis_url: str, redis_client: redis.Redis
) -> None:
    from tests.runtime_support import HANDLERS

    ids = _dead_lettered(redis_client)
    result = CliRunner().invoke(
        main, ["dlq", "replay", "--redis", redis_url, "--stream", STREAM, "--all"]
    )
    assert result.exit_code == 0, result.output
    assert redis_client.xlen(f"{STREAM}:dlq") == 0
    replayed = [Envelope.from_fields(f) for _, f in redis_client.xrange(STREAM)][-2:]
    assert [e.id for e in replayed] == ids
    assert all(b"dlq_reason" not in f for _, f in redis_client.xrange(STREAM))
    worker = _coordinate(redis_client, handlers=HANDLERS)  # now a handler can plan them
    assert worker.stats.events == 2
    assert redis_client.exists("a", "b") == 0


def test_dlq_replay_by_id_replays_only_that_one(redis_url: str, redis_client: redis.Redis) -> None:
    ids = _dead_lettered(redis_client)
    first_dlq_id = redis_client.xrange(f"{STREAM}:dlq")[0][0].decode()
    result = CliRunner().invoke(
        main, ["dlq", "replay", "--redis", redis_url, "--stream", STREAM, "--id", first_dlq_id]
    )
    assert result.exit_code == 0, result.output
    [(_, left)] = redis_client.xrange(f"{STREAM}:dlq")
    assert Envelope.from_fields(left).id == ids[1]


def test_dlq_replay_of_an_unknown_id_exits_one_and_replays_nothing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    _dead_lettered(redis_client)
    length = redis_client.xlen(STREAM)
    result = CliRunner().invoke(
        main, ["dlq", "replay", "--redis", redis_url, "--stream", STREAM, "--id", "1-1"]
    )
    assert result.exit_code == 1
    assert "1-1" in result.output
    assert redis_client.xlen(STREAM) == length
    assert redis_client.xlen(f"{STREAM}:dlq") == 2


def test_dlq_replay_needs_id_or_all(redis_url: str) -> None:
    result = CliRunner().invoke(main, ["dlq", "replay", "--redis", redis_url])
    assert result.exit_code == 2
