"""The CloudEvents Kafka protocol binding, binary content mode, for damestoilet envelopes.

A record on the topic is::

    key      the event's partition key (CloudEvents ``partitionkey``): one entity, one
             partition, so its events keep their order; None when the event has none
    value    the payload bytes, as the event type encodes them (Avro or Protobuf)
    headers  ce_specversion, ce_id, ce_source, ce_type, ce_time, ce_dataschema,
             ce_rulesfingerprint (an extension; absent when empty), content-type (the
             datacontenttype, as the binding maps it), and damestoilet_plan: the compiled
             plan as compact JSON (as ``damestoilet plan`` prints it), absent without one

Any CloudEvents SDK reads such a record as an event (the plan header is not a ``ce_`` one, so
it stays out of the attributes). Reading goes the other way, into the envelope's version-1
fields, so that :meth:`Envelope.from_fields` makes every check it makes on a stream entry: a
record missing an attribute is an :class:`EnvelopeError` there, with the attribute's name. A
header given twice counts with its last value, as a map of headers would keep it. A record
with no ``ce_`` header whose value is a ``DSE`` blob (:meth:`Envelope.to_bytes`) is read as
that blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from damestoilet_contracts.runtime._envelope import Envelope

#: The header holding the compiled plan.
PLAN_HEADER = "damestoilet_plan"
#: The header the binding maps ``datacontenttype`` to.
CONTENT_TYPE_HEADER = "content-type"
CE_PREFIX = "ce_"

# header -> version-1 envelope field
_READ = {
    b"ce_specversion": b"specversion",
    b"ce_id": b"id",
    b"ce_source": b"source",
    b"ce_type": b"type",
    b"ce_time": b"time",
    b"ce_dataschema": b"dataschema",
    b"ce_rulesfingerprint": b"rulesfingerprint",
    b"content-type": b"datacontenttype",
    PLAN_HEADER.encode(): b"plan",
}

#: Headers as confluent-kafka takes and gives them.
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What to produce for one envelope: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: Headers


def to_record(envelope: Envelope) -> KafkaRecord:
    """The binary-mode record of ``envelope``, keyed by its partition key."""
    headers: Headers = [
        ("ce_specversion", envelope.specversion.encode()),
        ("ce_id", envelope.id.encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_time", envelope.time.encode()),
        (CONTENT_TYPE_HEADER, envelope.datacontenttype.encode()),
    ]
    if envelope.dataschema:
        headers.append(("ce_dataschema", envelope.dataschema.encode()))
    if envelope.rulesfingerprint:
        headers.append(("ce_rulesfingerprint", envelope.rulesfingerprint.encode()))
    if envelope.plan is not None:
        headers.append((PLAN_HEADER, envelope.plan.to_json().encode()))
    key = envelope.partitionkey.encode() if envelope.partitionkey else None
    return KafkaRecord(key, envelope.data, headers)


def record_fields(
    headers: Iterable[tuple[str | bytes, bytes | None]] | None,
    value: bytes | None,
    key: bytes | None = None,
) -> dict[bytes, bytes]:
    """The envelope fields of a record (for :meth:`Envelope.from_fields`), its key as the
    partition key; never raises: what is wrong with the record is found when the fields are
    decoded."""
    fields: dict[bytes, bytes] = {}
    saw_ce = False
    for raw_name, raw_value in headers or ():
        name = raw_name.encode() if isinstance(raw_name, str) else bytes(raw_name)
        name = name.lower()
        saw_ce = saw_ce or name.startswith(b"ce_")
        field = _READ.get(name)
        if field is not None:
            fields[field] = b"" if raw_value is None else bytes(raw_value)
    data = b"" if value is None else bytes(value)
    if not saw_ce and data[:3] == b"DSE":
        return {b"e": data}
    fields[b"v"] = b"1"
    fields[b"data"] = data
    if key:
        fields[b"partitionkey"] = bytes(key)
    if b"dataschema" not in fields:
        fields[b"dataschema"] = b""
    return fields


def header_value(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """The last value of header ``name`` (None: absent)."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found
