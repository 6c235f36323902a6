"""The CloudEvents Kafka protocol binding, binary content mode, for damestoilet envelopes.

A record on the topic is::

    key      the event's partition key (CloudEvents ``partitionkey``): one entity, one
             partition, so its events keep their order; None when the event has none
    value    the payload bytes, as the event type encodes them (Avro or Protobuf)
    headers  what :func:`runtime._cloudevents.to_binary` gives for ``kafka``: ce_specversion,
             ce_id, ce_source, ce_type, ce_time, content-type (the datacontenttype, as the
             binding maps it), ce_dataschema (``urn:damestoilet:schema:<fingerprint>``),
             ce_rulesfingerprint, ce_partitionkey, and ce_flushplan: the compiled plan as
             compact JSON (as ``damestoilet plan`` prints it), each absent when empty;
             with signing keys, ``damestoilet_signature`` (``v1=<hex HMAC-SHA256>`` over
             the value and the CloudEvents headers, :func:`runtime._signing.message_bytes`)

That header mapping is the one every bus with headers shares (docs/runtime.md). The bus hands
a record's headers and value to the coordinator's core, which reads them with
:func:`runtime._cloudevents.from_binary` (binding ``kafka``), where a bad record is
dead-lettered with its reason; a record with no ``ce_`` header is read as an envelope blob
(:meth:`Envelope.to_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from damestoilet_contracts.runtime._cloudevents import (
    PLAN_ATTRIBUTE,
    to_binary,
)
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._signing import SIGNATURE_HEADERS, SigningKeys

#: The header holding the compiled plan.
PLAN_HEADER = "ce_" + PLAN_ATTRIBUTE
#: The header holding the signature of a signed record.
SIGNATURE_HEADER = SIGNATURE_HEADERS["kafka"]

#: Headers as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What to produce for one envelope: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: Headers


def to_record(envelope: Envelope, signing: SigningKeys | None = None) -> KafkaRecord:
    """The binary-mode record of ``envelope``, keyed by its partition key, signed with
    ``signing``."""
    message = to_binary(envelope, "kafka")
    headers: Headers = [(name, value.encode()) for name, value in message.headers.items()]
    if signing is not None:
        signature = signing.sign_message(message.headers, message.body)
        headers.append((SIGNATURE_HEADER, signature.encode()))
    key = envelope.partitionkey.encode() if envelope.partitionkey else None
    return KafkaRecord(key, message.body, headers)
