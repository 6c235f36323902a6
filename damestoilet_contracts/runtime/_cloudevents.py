"""CloudEvents 1.0 forms of the envelope: attributes, structured-mode JSON, binary-mode headers.

The stream keeps its own compact envelope (its bytes are unchanged, see docs/runtime.md);
these are the forms that CloudEvents tooling reads, and the header mapping that every bus with
message headers (NATS, Kafka, HTTP) shares. The attributes::

    specversion      1.0
    id, source, type, time, datacontenttype      as in the envelope
    dataschema       urn:damestoilet:schema:<fingerprint> (absent when the envelope has none)
    rulesfingerprint extension: the rules fingerprint (absent when empty)
    flushplan        extension: the compiled plan as compact JSON text (absent without a plan)
    partitionkey     extension (Partitioning): the event's partition key (absent when empty);
                     a Kafka record also carries it as its key

Structured mode (``application/cloudevents+json``): one JSON object, the payload base64 in
``data_base64``. Binary mode: the payload is the message body, each attribute a header:

=======  ======  ==============  ==========================================
binding  prefix  datacontenttype  header values
=======  ======  ==============  ==========================================
http     ce-     content-type    percent-encoded (HTTP binding 3.1.3.2)
nats     ce-     content-type    percent-encoded, as HTTP (NATS binding)
kafka    ce_     content-type    UTF-8 text as it is (Kafka binding 3.2.3)
=======  ======  ==============  ==========================================

Every reader here returns an :class:`Envelope` or raises :class:`EnvelopeError`; attributes
it does not know (other extensions) are ignored, as the stream readers ignore unknown fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import Plan
from damestoilet_contracts.runtime._envelope import SPEC_VERSION, Envelope
from damestoilet_contracts.runtime._uri import check_source, schema_fingerprint, schema_uri

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

#: The content type of a structured-mode message.
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
#: The extension attribute holding the compiled flush plan as JSON text.
PLAN_ATTRIBUTE = "flushplan"
#: The extension attribute holding the rules fingerprint.
RULES_ATTRIBUTE = "rulesfingerprint"
#: The Partitioning extension's attribute: the event's partition key.
PARTITION_KEY_ATTRIBUTE = "partitionkey"

Binding = Literal["http", "nats", "kafka"]
_PREFIX: dict[str, str] = {"http": "ce-", "nats": "ce-", "kafka": "ce_"}
_CONTENT_TYPE_HEADER = "content-type"
# HTTP binding 3.1.3.2: space, '"', '%' and everything outside printable ASCII are encoded.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A binary-mode message: CloudEvents headers (text values) and the payload as the body.

    The headers are ``str`` to ``str``, which nats-py, confluent-kafka and httpx all take.
    """

    headers: dict[str, str]
    body: bytes


def to_attributes(envelope: Envelope) -> dict[str, str]:
    """The CloudEvents attributes of ``envelope``, every value as text (see the module doc)."""
    attributes = {
        "specversion": envelope.specversion,
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "time": envelope.time,
        "datacontenttype": envelope.datacontenttype,
    }
    if envelope.dataschema:
        attributes["dataschema"] = schema_uri(envelope.dataschema)
    if envelope.rulesfingerprint:
        attributes[RULES_ATTRIBUTE] = envelope.rulesfingerprint
    if envelope.plan is not None:
        attributes[PLAN_ATTRIBUTE] = envelope.plan.to_json()
    if envelope.partitionkey:
        attributes[PARTITION_KEY_ATTRIBUTE] = envelope.partitionkey
    return attributes


def from_attributes(attributes: Mapping[str, Any], data: bytes) -> Envelope:
    """The envelope of CloudEvents ``attributes`` (text values; ``time`` may be a datetime)
    and payload ``data``. Raises :class:`EnvelopeError` when one is missing or wrong."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EnvelopeError(
            f"event data must be bytes (an encoded Avro or Protobuf payload), not "
            f"{type(data).__name__}"
        )
    specversion = attributes.get("specversion")
    if specversion != SPEC_VERSION:
        raise EnvelopeError(f"specversion {specversion!r} is not supported; only {SPEC_VERSION}")
    text: dict[str, str] = {}
    for name in ("id", "source", "type", "datacontenttype"):
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            raise EnvelopeError(f"CloudEvents attribute {name} is missing or not text")
        text[name] = value
    check_source(text["source"])
    dataschema = attributes.get("dataschema") or ""
    rules = attributes.get(RULES_ATTRIBUTE) or ""
    key = attributes.get(PARTITION_KEY_ATTRIBUTE) or ""
    raw_plan = attributes.get(PLAN_ATTRIBUTE)
    if not isinstance(dataschema, str) or not isinstance(rules, str) or not isinstance(key, str):
        raise EnvelopeError(
            "CloudEvents attributes dataschema, rulesfingerprint and partitionkey are text"
        )
    plan = None
    if raw_plan is not None:
        if not isinstance(raw_plan, str):
            raise EnvelopeError(f"the {PLAN_ATTRIBUTE} attribute must be the plan's JSON text")
        try:
            plan = Plan.from_json(raw_plan)
        except RecursionError as exc:
            raise EnvelopeError("flush plan is nested too deeply") from exc
    return Envelope(
        time=_time_text(attributes.get("time")),
        dataschema=schema_fingerprint(dataschema),
        data=bytes(data),
        plan=plan,
        rulesfingerprint=rules,
        partitionkey=key,
        **text,
    )


# -- structured mode ----------------------------------------------------------------------------


def to_structured(envelope: Envelope) -> bytes:
    """The structured-mode JSON of ``envelope`` (UTF-8), the payload in ``data_base64``."""
    document: dict[str, str] = to_attributes(envelope)
    document["data_base64"] = base64.b64encode(envelope.data).decode("ascii")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def from_structured(message: bytes | str) -> Envelope:
    """Decode a structured-mode JSON event; raises :class:`EnvelopeError`.

    The payload is read from ``data_base64``, or from ``data`` when that is a string (its
    UTF-8 bytes); any other ``data`` is refused, since a payload here is encoded bytes.
    """
    try:
        document = json.loads(message)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise EnvelopeError(f"a structured CloudEvent must be JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EnvelopeError("a structured CloudEvent must be a JSON object")
    if "data_base64" in document:
        encoded = document.pop("data_base64")
        if not isinstance(encoded, str):
            raise EnvelopeError("data_base64 must be a base64 string")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EnvelopeError(f"data_base64 is not base64: {exc}") from exc
    elif isinstance(document.get("data"), str):
        data = document.pop("data").encode()
    else:
        raise EnvelopeError(
            "a structured CloudEvent of damestoilet carries its payload in data_base64"
        )
    return from_attributes(document, data)


# -- binary mode --------------------------------------------------------------------------------


def to_binary(envelope: Envelope, binding: Binding = "nats") -> BinaryMessage:
    """The binary-mode message of ``envelope`` for ``binding`` (``http``, ``nats``, ``kafka``).

    Raises ValueError for another binding.
    """
    prefix = _prefix(binding)
    encode = _plain if binding == "kafka" else _percent
    headers: dict[str, str] = {}
    for name, value in to_attributes(envelope).items():
        if name == "datacontenttype":
            headers[_CONTENT_TYPE_HEADER] = value
        else:
            headers[prefix + name] = encode(value)
    return BinaryMessage(headers=headers, body=envelope.data)


def from_binary(
    headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]],
    body: bytes,
    binding: Binding = "nats",
) -> Envelope:
    """Decode a binary-mode message: its headers (a mapping, or the ``(name, value)`` pairs
    confluent-kafka gives; names in any case) and its body. Raises :class:`EnvelopeError`."""
    prefix = _prefix(binding)
    decode = _plain if binding == "kafka" else unquote
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    attributes: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = raw_name.lower()
        if isinstance(raw_value, bytes):
            try:
                value = raw_value.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {raw_name} is not UTF-8: {exc}") from exc
        elif isinstance(raw_value, str):
            value = raw_value
        else:
            raise EnvelopeError(f"header {raw_name} must be text or bytes")
        if name == _CONTENT_TYPE_HEADER:
            attributes["datacontenttype"] = value
        elif name.startswith(prefix):
            # Most values need no decoding: skip unquote's work for them (a bus hot path).
            attributes[name[len(prefix) :]] = decode(value) if "%" in value else value
    return from_attributes(attributes, body)


# -- the CloudEvents SDK ------------------------------------------------------------------------


def to_sdk_event(envelope: Envelope) -> CloudEvent:
    """The envelope as a ``cloudevents`` SDK (2.x) ``CloudEvent``; needs that package."""
    try:
        from cloudevents.core.v1.event import CloudEvent
    except ImportError as exc:
        raise ImportError(
            "Envelope.to_cloudevent() needs the CloudEvents SDK: "
            "pip install 'damestoilet-contracts[cloudevents]'"
        ) from exc
    attributes: dict[str, Any] = dict(to_attributes(envelope))
    attributes["time"] = datetime.fromtimestamp(envelope.timestamp, UTC)
    return CloudEvent(attributes, envelope.data)


def from_sdk_event(event: Any) -> Envelope:
    """The envelope of a CloudEvents SDK event (anything with ``get_attributes()`` and
    ``get_data()``, as the 2.x ``CloudEvent`` and the 1.x ``cloudevents.http.CloudEvent``
    have). Raises :class:`EnvelopeError`."""
    try:
        attributes = event.get_attributes()
        data = event.get_data()
    except AttributeError as exc:
        raise EnvelopeError(
            f"not a CloudEvent: {type(event).__name__} has no get_attributes()/get_data()"
        ) from exc
    if isinstance(data, str):
        data = data.encode()
    return from_attributes(attributes, data)


def _prefix(binding: str) -> str:
    try:
        return _PREFIX[binding]
    except KeyError:
        known = ", ".join(sorted(_PREFIX))
        raise ValueError(f"unknown CloudEvents binding {binding!r}; use one of {known}") from None


def _plain(value: str) -> str:
    return value


def _percent(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


def _time_text(value: object) -> str:
    """The envelope's RFC 3339 UTC text for ``time``, given as text or as an aware datetime:
    ``...T11:15:37.123Z`` when it falls on a millisecond (as emitters write it), else with
    microseconds. The SDK writes ``.123000Z``; normalising keeps a round trip equal."""
    if isinstance(value, str):
        if "T" not in value and "t" not in value:
            raise EnvelopeError(f"time {value!r} is not RFC 3339: it has no time of day")
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise EnvelopeError(f"time {value!r} is not RFC 3339: {exc}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EnvelopeError("CloudEvents attribute time must carry a UTC offset")
        utc = value.astimezone(UTC)
        stamp = utc.strftime("%Y-%m-%dT%H:%M:%S")
        micros = utc.microsecond
        fraction = f"{micros // 1000:03d}" if micros % 1000 == 0 else f"{micros:06d}"
        return f"{stamp}.{fraction}Z"
    raise EnvelopeError("CloudEvents attribute time is missing; the envelope needs one")
