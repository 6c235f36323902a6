"""Version 2 of the stream encoding: one field ``e``, what emitters write; version 1 entries
(other producers, dead letters, replays) still decode and are still purged."""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime._envelope import STREAM_VERSION
from damestoilet_contracts.runtime.redis._dead_letters import list_dead_letters
from damestoilet_contracts.runtime.redis._layout import done_key
from tests.runtime_support import KeysChanged

STREAM = "v2-events"
TYPE = "test.v1.KeysChanged"


def _env(plan: Plan | None) -> Envelope:
    return Envelope.new(
        type=TYPE,
        data=b"\x00\xffpayload",
        plan=plan,
        source="//tests",
        datacontenttype="avro/binary",
        dataschema="fp",
        rulesfingerprint="rules",
    )


MIXED = Plan(
    TYPE,
    (
        (
            FlushOp("key", "default", "a"),
            FlushOp("key", "default", "b"),
            FlushOp("prefix", "default", "p:"),
            FlushOp("key", "pricing", "c", "soft"),
            FlushOp("key", "default", "d"),
        ),
        (FlushOp("tag", "default", "t:1"),),
        (),
    ),
)


def _head(blob: bytes) -> list[object]:
    (size,) = struct.unpack_from(">I", blob, 4)
    head: list[object] = json.loads(blob[8 : 8 + size])
    return head


def _blob(head: object, data: bytes = b"") -> bytes:
    text = json.dumps(head).encode()
    return b"DSE\x02" + struct.pack(">I", len(text)) + text + data


@pytest.mark.parametrize("plan", [MIXED, None, Plan(TYPE, ())])
def test_v2_fields_and_blob_round_trip_keeping_op_order(plan: Plan | None) -> None:
    env = _env(plan)
    fields = env.to_fields(version=STREAM_VERSION)
    assert list(fields) == ["e"]
    assert fields["e"].startswith(b"DSE\x02")
    assert Envelope.from_fields(fields) == env
    assert Envelope.from_fields({b"e": fields["e"]}) == env
    assert Envelope.from_bytes(env.to_bytes(version=2)) == env


def test_v2_groups_consecutive_ops_of_one_kind_so_a_key_is_one_json_string() -> None:
    stages = _head(_env(MIXED).to_bytes(version=2))[8]
    assert stages == [
        [
            ["key", "default", "delete", ["a", "b"]],
            ["prefix", "default", "delete", ["p:"]],
            ["key", "pricing", "soft", ["c"]],
            ["key", "default", "delete", ["d"]],
        ],
        [["tag", "default", "delete", ["t:1"]]],
        [],
    ]


def test_v2_ignores_attributes_after_the_tenth() -> None:
    """The tenth is the partition key (added after the first v2 readers, which ignore it)."""
    env = _env(MIXED)
    blob = env.to_bytes(version=2)
    head = _head(blob)
    assert len(head) == 9  # no partition key: the element is left out
    assert Envelope.from_bytes(_blob([*head, "", "traceparent", {"x": 1}], env.data)) == env


def test_v2_carries_the_partition_key_as_its_tenth_attribute() -> None:
    env = dataclasses.replace(_env(MIXED), partitionkey="p1")
    blob = env.to_bytes(version=2)
    assert _head(blob)[9] == "p1"
    assert Envelope.from_bytes(blob) == env
    assert Envelope.from_fields(env.to_fields()) == env  # version 1: a field of its own
    with pytest.raises(EnvelopeError, match="partitionkey must be text"):
        Envelope.from_bytes(_blob([*_head(blob)[:9], 7], env.data))


def test_entry_with_v_is_version_1_even_with_an_e_field() -> None:
    env = _env(MIXED)
    fields = {**env.to_fields(), "e": b"not an envelope"}
    assert Envelope.from_fields(fields) == env


def test_unknown_writer_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version 3"):
        _env(None).to_fields(version=3)


GOOD = ["1.0", "i", "//s", TYPE, "2026-11-26T11:15:37.123Z", "a", "", "", None]


def _with(position: int, value: object) -> list[object]:
    return [value if i == position else item for i, item in enumerate(GOOD)]


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ({"id": "x"}, "JSON array"),
        (GOOD[:2], "JSON array"),
        (_with(8, [[["key"]]]), "bad operation group"),
        (_with(8, [[["drop", "d", "delete", ["k"]]]]), "bad operation group"),
        (_with(8, [[["key", "d", "delete", [""]]]]), "bad key"),
        (_with(8, [[["key", "d", "delete", [7]]]]), "bad key"),
        (_with(8, [[["key", "d", "delete", "k"]]]), "bad operation group"),
        (_with(8, {"stages": []}), "stages must be a list"),
        (_with(8, [{"k": 1}]), "each stage must be a list"),
        (_with(4, "yesterday"), "RFC 3339"),
        (_with(1, ""), "id is empty"),
        (_with(0, "0.3"), "specversion"),
        (_with(1, 5), "must be text"),
    ],
)
def test_malformed_v2_heads_are_envelope_errors(head: object, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Envelope.from_fields({b"e": _blob(head)})


@pytest.mark.parametrize(
    "blob",
    [
        b"DSE\x02",
        b"DSE\x02\x00\x00\x00\x09[]",
        b"DSE\x02\x00\x00\x00\x02\xff\xfe",
        b"DSE\x02\x00\x00\x00\x01[",
    ],
)
def test_truncated_or_broken_v2_blobs_are_envelope_errors(blob: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_fields({b"e": blob})


def _decodes_or_envelope_error(blob: bytes) -> None:
    try:
        result = Envelope.from_fields({b"e": blob})
    except EnvelopeError:
        return
    assert isinstance(result, Envelope)


@settings(max_examples=1000)
@given(st.data())
def test_fuzz_mutated_v2_blobs(data: st.DataObject) -> None:
    blob = bytearray(_env(MIXED).to_bytes(version=2))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    _decodes_or_envelope_error(bytes(blob[:cut]))
    _decodes_or_envelope_error(bytes(blob))


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=25,
)


@settings(max_examples=500)
@given(_json)
def test_fuzz_any_json_as_v2_head_or_plan(value: object) -> None:
    _decodes_or_envelope_error(_blob(value))
    head = _head(_env(None).to_bytes(version=2))
    _decodes_or_envelope_error(_blob([*head[:8], value]))


# -- on a real stream ---------------------------------------------------------------------------


@pytest.mark.redis
def test_emitters_write_v2_and_the_coordinator_purges_v1_and_v2_entries_alike(
    redis_client: redis.Redis,
) -> None:
    redis_client.mset({"old:1": 1, "old:2": 1, "new:1": 1, "new:2": 1})
    old = Envelope.from_event(KeysChanged(keys=["old:1"], derived=["old:2"]), source="//old")
    raw: Any = redis_client  # redis-py's stream signatures are loosely typed
    raw.xadd(STREAM, old.to_fields())  # a producer that still writes version 1
    Emitter(redis_client, source="//t", stream=STREAM).emit(
        KeysChanged(keys=["new:1"], derived=["new:2"])
    )
    assert [list(f) for _, f in raw.xrange(STREAM)] == [
        [b"v", b"specversion", b"id", b"source", b"type", b"time", b"datacontenttype",
         b"dataschema", b"rulesfingerprint", b"plan", b"data"],
        [b"e"],
    ]  # fmt: skip
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c1")
    worker = Coordinator(bus, RedisPurgeTarget(redis_client), RedisDoneStore(redis_client), config)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("old:1", "old:2", "new:1", "new:2") == 0
    assert worker.stats.events == 2
    assert redis_client.exists(done_key(old.id, config.group)) == 1


@pytest.mark.redis
def test_only_the_done_events_of_a_batch_are_skipped(redis_client: redis.Redis) -> None:
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    envs = [Envelope.from_event(KeysChanged(keys=[f"k:{i}"]), source="//t") for i in range(5)]
    redis_client.mset({f"k:{i}": 1 for i in range(5)})
    redis_client.set(done_key(envs[1].id, config.group), 1)
    redis_client.set(done_key(envs[3].id, config.group), 1)
    Emitter(redis_client, source="//t", stream=STREAM).emit_envelopes(envs)
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c1")
    worker = Coordinator(bus, RedisPurgeTarget(redis_client), RedisDoneStore(redis_client), config)
    worker.run(stop_when_idle=True)
    assert [redis_client.exists(f"k:{i}") for i in range(5)] == [0, 1, 0, 1, 0]
    assert worker.stats.duplicates_skipped == 2
    assert worker.stats.events == 3
    assert redis_client.xpending(STREAM, config.group)["pending"] == 0


@pytest.mark.redis
def test_dead_letters_of_v2_entries_are_listed_with_id_and_type(
    redis_client: redis.Redis,
) -> None:
    env = _env(None)  # no plan, no handler: dead-lettered
    Emitter(redis_client, source="//t", stream=STREAM).emit_envelopes([env])
    redis_client.xadd(STREAM, {"e": b"DSE\x02junk"})
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(redis_client, stream=STREAM, group=config.group, consumer="c1")
    Coordinator(bus, RedisPurgeTarget(redis_client), RedisDoneStore(redis_client), config).run(
        stop_when_idle=True
    )
    letters = list_dead_letters(redis_client, f"{STREAM}:dlq")
    [planless] = [d for d in letters if d.reason.startswith("no plan")]
    [junk] = [d for d in letters if d is not planless]
    assert (planless.envelope_id, planless.type) == (env.id, TYPE)
    assert planless.reason == f"no plan and no handler for type {TYPE}"
    assert (junk.envelope_id, junk.type) == (None, None)
    assert junk.reason.startswith("malformed envelope: envelope blob is truncated")
