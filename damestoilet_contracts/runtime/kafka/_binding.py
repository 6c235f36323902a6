"""The CloudEvents Kafka protocol binding, binary content mode, for damestoilet envelopes.

A record on the topic is::

    key      the event's partition key (CloudEvents ``partitionkey``): one entity, one
             partition, so its events keep their order; None when the event has none
    value    the payload bytes, as the event type encodes them (Avro or Protobuf)
    headers  what :func:`runtime._cloudevents.to_binary` gives for ``kafka``: ce_specversion,
             ce_id, ce_source, ce_type, ce_time, content-type (the datacontenttype, as the
             binding maps it), ce_dataschema (``urn:damestoilet:schema:<fingerprint>``),
             ce_rulesfingerprint, ce_partitionkey, and ce_flushplan: the compiled plan as
             compact JSON (as ``damestoilet plan`` prints it), each absent when empty

That header mapping is the one every bus with headers shares (docs/runtime.md). Reading goes
into the envelope's version-1 fields, so that the coordinator's one decoder
(:meth:`Envelope.from_fields`) makes every check it makes on a stream entry, in the core where
a bad record is dead-lettered with its reason: a record missing ``ce_source`` fails there,
naming ``source``. A header given twice counts with its last value, as a map of headers keeps
it. A record with no ``ce_`` header whose value is a ``DSE`` blob (:meth:`Envelope.to_bytes`)
is read as that blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from damestoilet_contracts.runtime._cloudevents import (
    PARTITION_KEY_ATTRIBUTE,
    PLAN_ATTRIBUTE,
    RULES_ATTRIBUTE,
    to_binary,
)
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._uri import SCHEMA_URN_PREFIX

#: The header holding the compiled plan.
PLAN_HEADER = "ce_" + PLAN_ATTRIBUTE

# header -> version-1 envelope field
_READ = {
    b"ce_specversion": b"specversion",
    b"ce_id": b"id",
    b"ce_source": b"source",
    b"ce_type": b"type",
    b"ce_time": b"time",
    b"ce_dataschema": b"dataschema",
    b"ce_" + RULES_ATTRIBUTE.encode(): b"rulesfingerprint",
    b"ce_" + PARTITION_KEY_ATTRIBUTE.encode(): b"partitionkey",
    b"content-type": b"datacontenttype",
    PLAN_HEADER.encode(): b"plan",
}

_URN = SCHEMA_URN_PREFIX.encode()

#: Headers as confluent-kafka takes them.
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What to produce for one envelope: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: Headers


def to_record(envelope: Envelope) -> KafkaRecord:
    """The binary-mode record of ``envelope``, keyed by its partition key."""
    message = to_binary(envelope, "kafka")
    headers = [(name, value.encode()) for name, value in message.headers.items()]
    key = envelope.partitionkey.encode() if envelope.partitionkey else None
    return KafkaRecord(key, message.body, headers)


def record_fields(
    headers: Iterable[tuple[str | bytes, bytes | str | None]] | None,
    value: bytes | None,
    key: bytes | None = None,
) -> dict[bytes, bytes]:
    """The envelope fields of a record (for :meth:`Envelope.from_fields`), its key as the
    partition key when no header gives one; never raises: what is wrong with the record is
    found when the fields are decoded."""
    fields: dict[bytes, bytes] = {}
    saw_ce = False
    for raw_name, raw_value in headers or ():
        name = (raw_name.encode() if isinstance(raw_name, str) else bytes(raw_name)).lower()
        saw_ce = saw_ce or name.startswith(b"ce_")
        field = _READ.get(name)
        if field is not None:
            if raw_value is None:
                fields[field] = b""
            else:
                fields[field] = raw_value.encode() if isinstance(raw_value, str) else raw_value
    data = b"" if value is None else bytes(value)
    if not saw_ce and data[:3] == b"DSE":
        return {b"e": data}
    fields[b"v"] = b"1"
    fields[b"data"] = data
    schema = fields.get(b"dataschema")
    if schema is None:
        fields[b"dataschema"] = b""
    elif schema.startswith(_URN):  # schema_uri's inverse, on bytes
        fields[b"dataschema"] = schema[len(_URN) :]
    if key and b"partitionkey" not in fields:
        fields[b"partitionkey"] = bytes(key)
    return fields


def header_value(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """The last value of header ``name`` (None: absent)."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found
