"""CloudEvents forms of the envelope, tested against the real SDK (``cloudevents`` 2.x).

The stream's private blob is not something CloudEvents tooling can read; these forms are:
the SDK event, structured-mode JSON (base64 data) and binary-mode headers for HTTP, NATS and
Kafka. Each round-trips through the SDK's own readers and writers.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    STRUCTURED_CONTENT_TYPE,
    Emitter,
    Envelope,
    from_binary,
    from_structured,
    schema_uri,
    to_binary,
    to_structured,
)
from tests.runtime_support import KeysChanged

TYPE = "catalog.v1.ProductPriceChanged"
PLAN = Plan(
    TYPE,
    (
        (FlushOp("key", "default", "catalog:product:p1"), FlushOp("key", "pricing", "é:1")),
        (FlushOp("tag", "default", "search:product:p1", "soft"),),
    ),
)


def _envelope(
    plan: Plan | None = PLAN, data: bytes = b"\x00\xff\x02avro", **extra: str
) -> Envelope:
    attributes = {
        "source": "//shop/catalog",
        "datacontenttype": "avro/binary",
        "dataschema": "816bd76ab1a7f7e7",
        "rulesfingerprint": "31946e3e",
        **extra,
    }
    return Envelope.new(type=TYPE, data=data, plan=plan, **attributes)


def test_to_cloudevent_gives_an_sdk_event_with_uri_dataschema_and_the_plan() -> None:
    envelope = _envelope()
    event = envelope.to_cloudevent()
    assert isinstance(event, CloudEvent)
    assert event.get_id() == envelope.id
    assert event.get_source() == "//shop/catalog"
    assert event.get_type() == TYPE
    assert event.get_dataschema() == "urn:damestoilet:schema:816bd76ab1a7f7e7"
    assert event.get_datacontenttype() == "avro/binary"
    assert event.get_time() == datetime.fromtimestamp(envelope.timestamp, UTC)
    assert event.get_extension("rulesfingerprint") == "31946e3e"
    assert Plan.from_json(event.get_extension("flushplan")) == PLAN
    assert event.get_data() == envelope.data
    assert Envelope.from_cloudevent(event) == envelope


def test_sdk_json_of_to_cloudevent_decodes_back_to_the_same_envelope() -> None:
    envelope = _envelope()
    written = JSONFormat().write(envelope.to_cloudevent())
    assert json.loads(written)["data_base64"] == base64.b64encode(envelope.data).decode()
    assert from_structured(written) == envelope


def test_structured_json_is_read_by_the_sdk() -> None:
    envelope = _envelope()
    event = JSONFormat().read(None, to_structured(envelope))
    assert event.get_data() == envelope.data  # data_base64 decoded by the SDK
    assert event.get_dataschema() == "urn:damestoilet:schema:816bd76ab1a7f7e7"
    assert Envelope.from_cloudevent(event) == envelope
    message = ce_http.to_structured(event, JSONFormat())
    assert message.headers["content-type"] == STRUCTURED_CONTENT_TYPE


@pytest.mark.parametrize("plan", [PLAN, None], ids=["plan", "no-plan"])
def test_kafka_binary_headers_round_trip_through_the_sdk_kafka_binding(plan: Plan | None) -> None:
    envelope = _envelope(plan)
    message = to_binary(envelope, "kafka")
    assert message.headers["ce_type"] == TYPE
    assert message.headers["content-type"] == "avro/binary"
    assert ("ce_flushplan" in message.headers) is (plan is not None)
    assert message.body == envelope.data
    sdk = ce_kafka.KafkaMessage(
        headers={k: v.encode() for k, v in message.headers.items()}, key=None, value=message.body
    )
    event = ce_kafka.from_binary(sdk, JSONFormat())
    assert Envelope.from_cloudevent(event) == envelope
    back = ce_kafka.to_binary(envelope.to_cloudevent(), JSONFormat())
    # confluent-kafka hands headers over as (name, bytes) pairs
    assert from_binary(list(back.headers.items()), back.value, "kafka") == envelope


@pytest.mark.parametrize("binding", ["http", "nats"])
def test_http_and_nats_binary_headers_are_percent_encoded_as_the_sdk_reads_them(
    binding: str,
) -> None:
    envelope = _envelope(source="//shop/catalog?team=prix%20fixe")
    message = to_binary(envelope, binding)  # type: ignore[arg-type]
    assert message.headers["ce-source"] == "//shop/catalog?team=prix%2520fixe"
    assert '"' not in message.headers["ce-flushplan"]  # '"' and non-ASCII are encoded
    assert all(v.isascii() for v in message.headers.values())
    event = ce_http.from_binary(
        ce_http.HTTPMessage(headers=message.headers, body=message.body), JSONFormat()
    )
    assert Envelope.from_cloudevent(event) == envelope
    sdk = ce_http.to_binary(envelope.to_cloudevent(), JSONFormat())
    upper = {name.title(): value for name, value in sdk.headers.items()}  # names in any case
    assert from_binary(upper, sdk.body, binding) == envelope  # type: ignore[arg-type]


_texts = st.text(min_size=1, max_size=12)
_ops = st.builds(
    FlushOp,
    st.sampled_from(["key", "prefix", "tag"]),
    _texts,
    _texts,
    st.sampled_from(["delete", "soft"]),
)


@given(
    data=st.binary(max_size=64),
    stages=st.lists(st.lists(_ops, max_size=3).map(tuple), max_size=3),
    with_plan=st.booleans(),
    rules=st.text(max_size=10),
)
def test_every_envelope_round_trips_through_each_form(
    data: bytes, stages: list[tuple[FlushOp, ...]], with_plan: bool, rules: str
) -> None:
    plan = Plan(TYPE, tuple(stages)) if with_plan else None
    envelope = _envelope(plan, data, rulesfingerprint=rules)
    assert from_structured(to_structured(envelope)) == envelope
    for binding in ("http", "nats", "kafka"):
        message = to_binary(envelope, binding)  # type: ignore[arg-type]
        assert from_binary(message.headers, message.body, binding) == envelope  # type: ignore[arg-type]
    assert Envelope.from_cloudevent(envelope.to_cloudevent()) == envelope


def test_dataschema_uri_forms() -> None:
    assert schema_uri("816bd76ab1a7f7e7") == "urn:damestoilet:schema:816bd76ab1a7f7e7"
    registry = "https://registry.example/schemas/ids/7"
    assert schema_uri(registry) == registry  # already a URI: kept
    assert schema_uri("") == ""
    envelope = _envelope(dataschema=registry)
    assert JSONFormat().read(None, to_structured(envelope)).get_dataschema() == registry
    assert from_structured(to_structured(envelope)).dataschema == registry
    without = _envelope(dataschema="")
    assert "dataschema" not in json.loads(to_structured(without))  # the SDK refuses ""
    assert from_structured(to_structured(without)) == without


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("shop catalog", "character ' ' at position 4 must be percent-encoded"),
        ("1shop:catalog", "'1shop' before ':' is not a scheme"),
        ("//shop/%zz", "'%' at position 7 is not followed by two hex digits"),
        ("//shop/a#b#c", "more than one '#'"),
        ("//shop/[x]", "'[' and ']' may appear only around an IP literal host"),
    ],
)
def test_source_must_be_a_uri_reference_everywhere_an_envelope_is_made(
    source: str, reason: str, redis_client
) -> None:
    with pytest.raises(EnvelopeError, match="is not a URI-reference") as info:
        _envelope(source=source)
    assert reason in str(info.value)
    with pytest.raises(EnvelopeError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        Emitter(redis_client, source=source)
    document = json.loads(to_structured(_envelope()))
    document["source"] = source
    with pytest.raises(EnvelopeError, match="is not a URI-reference"):
        from_structured(json.dumps(document))


@pytest.mark.parametrize(
    "source",
    ["//shop/catalog", "https://svc.example/events?x=1#f", "catalog", "urn:shop:catalog",
     "//[::1]:8080/svc", "mailto:team@shop.example"],
)  # fmt: skip
def test_uri_references_are_accepted(source: str) -> None:
    assert _envelope(source=source).source == source


def test_structured_json_that_is_not_an_envelope_is_an_envelope_error() -> None:
    good = json.loads(to_structured(_envelope()))
    cases = [
        b"{",
        b"[]",
        json.dumps({**good, "data_base64": "***"}),
        json.dumps({k: v for k, v in good.items() if k != "data_base64"} | {"data": {"a": 1}}),
        json.dumps({k: v for k, v in good.items() if k != "type"}),
        json.dumps({**good, "specversion": "0.3"}),
        json.dumps({**good, "flushplan": '{"type": "other.v1.E", "stages": []}'}),
        json.dumps({**good, "flushplan": "not json"}),
        json.dumps({**good, "time": "yesterday"}),
    ]
    for case in cases:
        with pytest.raises(EnvelopeError):
            from_structured(case)


def test_an_sdk_event_with_json_data_is_refused_with_the_reason() -> None:
    event = CloudEvent({"type": TYPE, "source": "//x", "datacontenttype": "application/json"},
                       {"a": 1})  # fmt: skip
    with pytest.raises(EnvelopeError, match="event data must be bytes"):
        Envelope.from_cloudevent(event)
    with pytest.raises(EnvelopeError, match="not a CloudEvent"):
        Envelope.from_cloudevent(object())


def test_an_unknown_binding_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown CloudEvents binding 'amqp'"):
        to_binary(_envelope(), "amqp")  # type: ignore[arg-type]


def test_emitted_envelopes_convert(redis_client) -> None:
    """What an emitter writes converts as it is: the generated classes give a bare fingerprint."""
    with Emitter(redis_client, source="//shop/catalog", stream="ce-events") as emitter:
        emitter.emit(KeysChanged(keys=["k1", "k2"]))
    [(_, fields)] = redis_client.xrange("ce-events")
    envelope = Envelope.from_fields(fields)
    event = JSONFormat().read(None, to_structured(envelope))
    assert Envelope.from_cloudevent(event) == envelope
