"""The envelope: round trips through stream fields and blobs, UUIDv7 ids, and decoding that
either succeeds or raises EnvelopeError, whatever it is given."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import ContractEvent, Envelope, uuid7
from damestoilet_contracts.runtime._envelope import format_time, parse_time
from tests.runtime_support import KeysChanged

EVENT = KeysChanged(keys=["catalog:product:p1"], derived=["page:product:p1"], tags=["t:1"])


def _envelope(**changes: object) -> Envelope:
    env = Envelope.from_event(EVENT, source="//tests/catalog")
    fields = {name: getattr(env, name) for name in Envelope.__dataclass_fields__}
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def test_generated_style_event_satisfies_contract_event_protocol() -> None:
    assert isinstance(EVENT, ContractEvent)


def test_from_event_takes_attributes_from_the_event_class() -> None:
    env = Envelope.from_event(EVENT, source="//tests/catalog")
    assert env.type == "test.v1.KeysChanged"
    assert env.dataschema == "schema-fp-1"
    assert env.rulesfingerprint == "rules-fp-1"
    assert env.datacontenttype == "avro/binary"
    assert env.specversion == "1.0"
    assert env.source == "//tests/catalog"
    assert env.plan == EVENT.flush_plan()
    assert env.data == EVENT.to_bytes()


def test_envelope_time_is_the_ms_of_its_uuid7_id() -> None:
    env = Envelope.from_event(EVENT, source="//t")
    ms = uuid.UUID(env.id).int >> 80
    assert env.time == format_time(ms)
    assert abs(env.timestamp - time.time()) < 5


@pytest.mark.parametrize("with_plan", [True, False])
def test_fields_round_trip(with_plan: bool) -> None:
    env = _envelope() if with_plan else _envelope(plan=None)
    assert Envelope.from_fields(env.to_fields()) == env
    # as redis-py hands them back: bytes names and values
    as_read = {k.encode(): v for k, v in env.to_fields().items()}
    assert Envelope.from_fields(as_read) == env


@pytest.mark.parametrize("with_plan", [True, False])
def test_blob_round_trip(with_plan: bool) -> None:
    env = _envelope() if with_plan else _envelope(plan=None, rulesfingerprint="")
    blob = env.to_bytes()
    assert blob.startswith(b"DSE\x01")
    assert Envelope.from_bytes(blob) == env


def test_plan_less_envelope_has_no_plan_field() -> None:
    assert "plan" not in _envelope(plan=None).to_fields()


def test_unknown_fields_are_ignored_so_v1_readers_accept_additions() -> None:
    env = _envelope()
    fields = {**env.to_fields(), "traceparent": b"00-abc", "dlq_reason": b"x"}
    assert Envelope.from_fields(fields) == env


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_ids_increase_strictly_within_a_process() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert all(a.int < b.int for a, b in itertools.pairwise(ids))
    assert ids == sorted(ids, key=str)  # the text sorts the same way


def test_uuid7_leading_48_bits_are_unix_ms() -> None:
    before = time.time_ns() // 1_000_000
    ms = uuid7().int >> 80
    assert before <= ms <= time.time_ns() // 1_000_000 + 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": b"2"}, "version"),
        ({"v": None}, "`v` is missing"),
        ({"id": b""}, "id is empty"),
        ({"type": None}, "type is missing"),
        ({"time": b"yesterday"}, "RFC 3339"),
        ({"time": b"2026-11-26T11:15:37"}, "UTC offset"),
        ({"time": b"2026-11-26"}, "time of day"),
        ({"specversion": b"0.3"}, "specversion"),
        ({"data": None}, "data is missing"),
        ({"plan": b"{not json"}, "not JSON"),
        ({"plan": b'{"type": "other.v1.X", "stages": []}'}, "plan is for"),
        ({"plan": b'{"type": "test.v1.KeysChanged", "stages": [[{"op": "drop"}]]}'}, "plan"),
        ({"source": b"\xff\xfe"}, "UTF-8"),
    ],
)
def test_decode_rejects_bad_fields_with_envelope_error(
    change: dict[str, bytes | None], message: str
) -> None:
    fields: dict[str, bytes] = dict(_envelope().to_fields())
    for name, value in change.items():
        if value is None:
            fields.pop(name)
        else:
            fields[name] = value
    with pytest.raises(EnvelopeError, match=message):
        Envelope.from_fields(fields)


def test_constructing_an_envelope_checks_it_too() -> None:
    with pytest.raises(EnvelopeError, match="plan is for"):
        _envelope(plan=Plan("x.v1.Other", ((FlushOp("key", "default", "k"),),)))


def test_deeply_nested_plan_json_is_an_envelope_error() -> None:
    fields = dict(_envelope().to_fields())
    fields["plan"] = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(EnvelopeError):
        Envelope.from_fields(fields)


@pytest.mark.parametrize(
    "blob",
    [b"", b"DS", b"DSE", b"DSE\x02\x00\x00", b"DSE\x01\x00", b"DSE\x01\x00\x01\x00\x05ab"],
)
def test_truncated_or_foreign_blobs_are_envelope_errors(blob: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(blob)


def test_trailing_bytes_after_a_blob_are_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="trailing"):
        Envelope.from_bytes(_envelope().to_bytes() + b"\x00")


def test_parse_time_accepts_offsets_and_z() -> None:
    assert parse_time("1970-01-01T00:00:01Z") == 1.0
    assert parse_time("1970-01-01T01:00:01+01:00") == 1.0


# -- fuzz: decoding anything either succeeds or raises EnvelopeError ---------------------------

_names = st.sampled_from(
    ["v", "id", "source", "type", "time", "specversion", "datacontenttype", "dataschema", "plan",
     "data", "rulesfingerprint", "x"]
)  # fmt: skip
_anything = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.integers(),
    st.none(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
)
_plans = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _decodes_or_envelope_error(call: object, arg: object) -> None:
    try:
        result = call(arg)  # type: ignore[operator]
    except EnvelopeError:
        return
    assert isinstance(result, Envelope)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.one_of(_names, st.binary(max_size=8), st.integers()), _anything))
def test_fuzz_random_field_dicts(fields: dict[object, object]) -> None:
    _decodes_or_envelope_error(Envelope.from_fields, fields)


@settings(max_examples=500)
@given(st.dictionaries(_names, st.one_of(st.binary(max_size=40), st.text(max_size=40))))
def test_fuzz_valid_envelopes_with_fields_replaced(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {**_envelope().to_fields(), **changes}
    _decodes_or_envelope_error(Envelope.from_fields, fields)


@settings(max_examples=300)
@given(_plans)
def test_fuzz_random_plan_json(plan: object) -> None:
    import json

    fields = {**_envelope().to_fields(), "plan": json.dumps(plan).encode()}
    _decodes_or_envelope_error(Envelope.from_fields, fields)


@settings(max_examples=1000, deadline=None)  # a loaded machine stalls single examples
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(blob: bytes) -> None:
    _decodes_or_envelope_error(Envelope.from_bytes, blob)


@settings(max_examples=1000, deadline=None)  # a loaded machine stalls single examples
@given(st.data())
def test_fuzz_mutated_valid_blobs(data: st.DataObject) -> None:
    blob = bytearray(_envelope().to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    _decodes_or_envelope_error(Envelope.from_bytes, bytes(blob[:cut]))
    _decodes_or_envelope_error(Envelope.from_bytes, bytes(blob))


@given(st.none() | st.integers() | st.lists(st.binary()) | st.text())
def test_fuzz_non_mapping_and_non_bytes_inputs(value: object) -> None:
    _decodes_or_envelope_error(Envelope.from_fields, value)
    _decodes_or_envelope_error(Envelope.from_bytes, value)
