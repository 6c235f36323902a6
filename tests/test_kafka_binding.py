"""The CloudEvents Kafka binding (binary mode): an envelope becomes ce_* headers, the payload
bytes as the value, the plan in its own header and the partition key as the record key; the
shared binary-mode reader reads it back equal, the CloudEvents SDK reads it, and reading any
record gives an envelope or an EnvelopeError (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.runtime import Envelope
from damestoilet_contracts.runtime._cloudevents import from_binary
from damestoilet_contracts.runtime.kafka._binding import PLAN_HEADER, to_record
from tests.runtime_support import KeysChanged

EVENT = KeysChanged(keys=["catalog:product:p1"], derived=["page:product:p1"], tags=["t:1"])


def _envelope(**changes: object) -> Envelope:
    env = Envelope.from_event(EVENT, source="//tests/catalog")
    fields = {name: getattr(env, name) for name in Envelope.__dataclass_fields__}
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def _read(record) -> Envelope:
    return from_binary(record.headers, record.value, "kafka")


@pytest.mark.parametrize("with_plan", [True, False])
def test_record_round_trips_to_an_equal_envelope(with_plan: bool):
    env = _envelope(partitionkey="p1") if with_plan else _envelope(plan=None)
    record = to_record(env)
    assert record.key == (b"p1" if with_plan else None)  # the partition key, when there is one
    assert record.value == env.data  # the payload bytes, nothing around them
    names = [name for name, _ in record.headers]
    assert (PLAN_HEADER in names) is with_plan
    assert _read(record) == env


def test_headers_are_the_binary_mode_attributes():
    env = _envelope(partitionkey="p1")
    headers = dict(to_record(env).headers)
    assert headers["ce_id"] == env.id.encode()
    assert headers["ce_type"] == b"test.v1.KeysChanged"
    assert headers["ce_source"] == b"//tests/catalog"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_time"] == env.time.encode()
    assert headers["ce_dataschema"] == b"urn:damestoilet:schema:schema-fp-1"
    assert headers["ce_rulesfingerprint"] == b"rules-fp-1"
    assert headers["ce_partitionkey"] == b"p1"
    assert headers["content-type"] == b"avro/binary"  # datacontenttype, as the binding maps it
    assert "ce_datacontenttype" not in headers
    assert to_record(_envelope()).key is None


def test_the_cloudevents_sdk_reads_a_record_as_the_event():
    env = _envelope(partitionkey="p1")
    record = to_record(env)
    message = ce_kafka.KafkaMessage(dict(record.headers), record.key, record.value)
    event = ce_kafka.from_binary(message, JSONFormat())
    assert event.get_id() == env.id
    assert event.get_type() == env.type
    assert event.get_source() == env.source
    assert event.get_datacontenttype() == "avro/binary"
    assert event.get_extension("partitionkey") == "p1"
    assert event.get_extension("rulesfingerprint") == "rules-fp-1"
    assert event.get_extension("flushplan") == env.plan.to_json()


def test_a_record_the_sdk_wrote_reads_as_an_envelope():
    event = CloudEvent(
        attributes={
            "id": "0193f0c6-0000-7000-8000-000000000001",
            "source": "//other/service",
            "type": "test.v1.KeysChanged",
            "time": datetime(2026, 11, 26, 11, 15, 37, 123000, tzinfo=UTC),
            "datacontenttype": "avro/binary",
            "partitionkey": "p9",
        },
        data=b"\x02ab",
    )
    message = ce_kafka.to_binary(event, JSONFormat())
    env = from_binary(message.headers, message.value, "kafka")
    assert env.id == "0193f0c6-0000-7000-8000-000000000001"
    assert env.data == b"\x02ab"
    assert env.plan is None  # planned from the payload by a handler
    assert env.partitionkey == "p9"
    assert message.key == "p9"  # the SDK keys the record by it too
    assert env.timestamp == datetime(2026, 11, 26, 11, 15, 37, 123000, tzinfo=UTC).timestamp()


def test_a_record_missing_an_attribute_names_it():
    record = to_record(_envelope())
    headers = [(n, v) for n, v in record.headers if n != "ce_source"]
    with pytest.raises(EnvelopeError, match="source is missing"):
        from_binary(headers, record.value, "kafka")


@settings(max_examples=200)
@given(
    key=st.text(max_size=12),
    source=st.sampled_from(["//svc/a", "urn:x:y", "https://example.com/s"]),
    with_plan=st.booleans(),
    data=st.binary(max_size=32),
)
def test_any_envelope_reads_back_equal(key, source, with_plan, data):
    env = _envelope(partitionkey=key, source=source, data=data)
    if not with_plan:
        env = _envelope(partitionkey=key, source=source, data=data, plan=None)
    assert _read(to_record(env)) == env


@settings(max_examples=300)
@given(st.data())
def test_fuzz_valid_records_with_headers_replaced(data: st.DataObject):
    record = to_record(_envelope())
    headers = list(record.headers)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(headers) - 1))
        headers[i] = (headers[i][0], data.draw(st.binary(max_size=40)))
    try:
        result = from_binary(headers, record.value, "kafka")
    except EnvelopeError:
        return
    assert isinstance(result, Envelope)
