"""Issue 9, findings 1 and 2: hostile bytes never raise anything but EnvelopeError, and one
poisoned entry never settles (nor halts) its batch-mates, on the real redis-server."""

from __future__ import annotations

import json
import struct

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime._envelope import (
    MAX_ATTRIBUTE_CHARS,
    MAX_ENVELOPE_BYTES,
    MAX_KEY_CHARS,
    MAX_PLAN_OPS,
)
from tests.runtime_support import KeysChanged

STREAM = "trust-events"
TYPE = "test.v1.KeysChanged"
FAST = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01)


def _env(key: str = "k") -> Envelope:
    return Envelope.new(
        type=TYPE,
        data=b"payload",
        plan=Plan(TYPE, ((FlushOp("key", "default", key),),)),
        source="//tests",
        datacontenttype="avro/binary",
    )


def _v1_blob(fields: dict[bytes, bytes]) -> bytes:
    parts = [b"DSE\x01", struct.pack(">H", len(fields))]
    for name, value in fields.items():
        parts += [struct.pack(">H", len(name)), name, struct.pack(">I", len(value)), value]
    return b"".join(parts)


def nested_blob(levels: int) -> bytes:
    """A v1 blob whose only field ``e`` holds a v1 blob, ``levels`` deep (finding 1)."""
    blob = _env().to_bytes()
    for _ in range(levels):
        blob = _v1_blob({b"e": blob})
    return blob


def v2_blob(head: list[object], data: bytes = b"") -> bytes:
    text = json.dumps(head).encode()
    return b"DSE\x02" + struct.pack(">I", len(text)) + text + data


def v2_head(event_id: str = "id-1", key: str = "k") -> list[object]:
    return [
        "1.0",
        event_id,
        "//tests",
        TYPE,
        "2026-01-01T00:00:00.000Z",
        "avro/binary",
        "",
        "",
        [[["key", "default", "delete", [key]]]],
    ]


# -- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 50, 5000])
def test_a_blob_nested_in_a_blob_is_an_envelope_error_not_a_recursion_error(levels: int) -> None:
    with pytest.raises(EnvelopeError, match="holds another blob"):
        Envelope.from_fields({b"e": nested_blob(levels)})
    with pytest.raises(EnvelopeError, match="holds another blob"):
        Envelope.from_bytes(nested_blob(levels))


def test_one_level_of_v1_blob_in_e_still_decodes() -> None:
    env = _env()
    assert Envelope.from_fields({b"e": env.to_bytes()}) == env


@pytest.mark.parametrize(
    "event_id", ["\ud800abc", "a\udfff", "nul\x00id", "tab\tid", "nl\nid", "del\x7f"]
)
def test_ids_with_surrogates_nul_or_controls_are_refused(event_id: str) -> None:
    with pytest.raises(EnvelopeError, match="control character or a lone surrogate"):
        Envelope.from_fields({b"e": v2_blob(v2_head(event_id=event_id))})
    v1 = _env().to_fields()
    v1["id"] = event_id.encode("utf-8", "surrogatepass")
    with pytest.raises(EnvelopeError):
        Envelope.from_fields(v1)


@pytest.mark.parametrize("key", ["\ud800", "k\x00", "k\r\n", "users:\x1b[31m"])
def test_keys_with_surrogates_nul_or_controls_are_refused(key: str) -> None:
    with pytest.raises(EnvelopeError, match="control character or a lone surrogate"):
        Envelope.from_fields({b"e": v2_blob(v2_head(key=key))})
    env = _env()
    v1 = env.to_fields()
    v1["plan"] = Plan(TYPE, ((FlushOp("key", "default", key),),)).to_json().encode()
    with pytest.raises(EnvelopeError, match="control characters or lone surrogates"):
        Envelope.from_fields(v1)


def test_escaped_but_clean_text_still_decodes() -> None:
    head = v2_head(key='quote"and\\backslash')
    assert Envelope.from_fields({b"e": v2_blob(head)}).plan.ops[0].key == 'quote"and\\backslash'  # type: ignore[union-attr]


def test_sizes_are_bounded_per_field_and_per_envelope() -> None:
    with pytest.raises(EnvelopeError, match="larger than"):
        Envelope.from_bytes(v2_blob(v2_head(), b"x" * MAX_ENVELOPE_BYTES))
    with pytest.raises(EnvelopeError, match="longer than"):
        Envelope.from_bytes(v2_blob(v2_head(event_id="i" * (MAX_ATTRIBUTE_CHARS + 1))))
    with pytest.raises(EnvelopeError, match="bad key"):
        Envelope.from_bytes(v2_blob(v2_head(key="k" * (MAX_KEY_CHARS + 1))))
    head = v2_head()
    head[8] = [[["key", "default", "delete", ["k"] * (MAX_PLAN_OPS + 1)]]]
    with pytest.raises(EnvelopeError, match="more than"):
        Envelope.from_bytes(v2_blob(head))


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=6),
        st.sampled_from(["key", "prefix", "tag", "default", "delete", "soft", "\ud800", "\x00"]),
    ),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_hostile_envelopes_decode_or_raise_envelope_error_only(data: st.DataObject) -> None:
    """Mutated heads, nested blobs and random JSON: decode returns an envelope whose every
    id and key encodes back to UTF-8, or raises EnvelopeError; nothing else escapes."""
    head = v2_head()
    for _ in range(data.draw(st.integers(0, 3))):
        head[data.draw(st.integers(0, 8))] = data.draw(_json)
    blob = v2_blob(head)
    shape = data.draw(st.sampled_from(["v2", "v1-in-e", "nested", "mutated"]))
    if shape == "v1-in-e":
        blob = _v1_blob({b"e": blob})
    elif shape == "nested":
        blob = nested_blob(data.draw(st.integers(1, 40)))
    elif shape == "mutated":
        raw = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(raw)
    try:
        env = Envelope.from_fields({b"e": blob})
    except EnvelopeError:
        return
    env.id.encode()
    for op in env.plan.ops if env.plan else ():
        op.key.encode()
        op.target.encode()


# -- the coordinator settles every entry on its own merits --------------------------------------


def _run(client: redis.Redis) -> Coordinator:
    bus = RedisStreamBus(client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    worker = Coordinator(bus, RedisPurgeTarget(client), client, FAST)
    worker.run(stop_when_idle=True)
    return worker


def _innocents(client: redis.Redis, n: int, tag: str) -> list[str]:
    keys = [f"{tag}:{i}" for i in range(n)]
    client.mset(dict.fromkeys(keys, 1))
    with Emitter(client, source="//tests", stream=STREAM) as emitter:
        emitter.emit_many([KeysChanged(keys=[k]) for k in keys])
    return keys


def _reasons(client: redis.Redis) -> list[str]:
    return [f[b"dlq_reason"].decode() for _, f in client.xrange(f"{STREAM}:dlq")]


def test_a_deeply_nested_entry_is_dead_lettered_and_its_batch_mates_purged(
    redis_client: redis.Redis,
) -> None:
    """Finding 1: one crafted entry used to crash every consumer that read it, forever."""
    before = _innocents(redis_client, 20, "before")
    redis_client.xadd(STREAM, {b"e": nested_blob(5000)})
    after = _innocents(redis_client, 20, "after")
    worker = _run(redis_client)
    assert redis_client.exists(*before, *after) == 0
    assert worker.stats.events == 40
    assert _reasons(redis_client) == [
        "malformed envelope: an envelope blob holds another blob; one level only"
    ]
    assert int(redis_client.xpending(STREAM, FAST.group)["pending"]) == 0
    # A second consumer that starts on the same stream finds nothing left to choke on.
    assert _run(redis_client).stats.dead_lettered == 0


def test_a_lone_surrogate_id_is_dead_lettered_alone_and_the_batch_is_purged(
    redis_client: redis.Redis,
) -> None:
    """Finding 2: the surrogate id crashed the dedup step, and five restarts later the whole
    batch (41 innocent events) was dead-lettered unpurged."""
    keys = _innocents(redis_client, 20, "a")
    redis_client.xadd(STREAM, {b"e": v2_blob(v2_head(event_id="\ud800abc", key="victim"))})
    keys += _innocents(redis_client, 21, "b")
    worker = _run(redis_client)
    assert redis_client.exists(*keys) == 0
    assert worker.stats.events == 41
    [reason] = _reasons(redis_client)
    assert reason.startswith("malformed envelope: envelope attribute id holds a control")
    assert int(redis_client.xpending(STREAM, FAST.group)["pending"]) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.binary(max_size=64) | st.builds(nested_blob, st.integers(1, 30)), max_size=6))
def test_fuzz_poison_among_innocents_never_costs_an_innocent(
    redis_client: redis.Redis, poison: list[bytes]
) -> None:
    redis_client.flushall()
    keys = _innocents(redis_client, 5, "x")
    for blob in poison:
        redis_client.xadd(STREAM, {b"e": b"DSE\x02" + blob})
    keys += _innocents(redis_client, 5, "y")
    worker = _run(redis_client)
    assert redis_client.exists(*keys) == 0
    assert worker.stats.events == 10
    assert worker.stats.dead_lettered == len(poison)
