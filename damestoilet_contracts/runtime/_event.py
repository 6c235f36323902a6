"""The protocol every generated event class satisfies; the emitters accept nothing else.

A generated class carries its contract as class attributes, so that emitting an event needs no
schema, registry or graph lookup::

    class ProductPriceChanged:
        EVENT_TYPE = "catalog.v1.ProductPriceChanged"
        SCHEMA_FINGERPRINT = "..."
        RULES_FINGERPRINT = "..."
        CONTENT_TYPE = "avro/binary"

        def to_bytes(self) -> bytes: ...      # the encoded payload
        def flush_plan(self) -> Plan: ...     # the compiled plan, concrete keys
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from damestoilet_contracts.model import Plan

#: The content type of an Avro payload (schemaless binary encoding, no container header).
AVRO_CONTENT_TYPE = "avro/binary"

#: The content type of a Protobuf payload (the message's wire encoding).
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"


@runtime_checkable
class ContractEvent(Protocol):
    """An event instance of a contract: its type, fingerprints, payload and flush plan."""

    #: The event type's full name, ``catalog.v1.ProductPriceChanged`` (CloudEvents ``type``).
    EVENT_TYPE: ClassVar[str]
    #: The schema fingerprint (CloudEvents ``dataschema``).
    SCHEMA_FINGERPRINT: ClassVar[str]
    #: The fingerprint of the flush rules, which the schema fingerprint does not cover.
    RULES_FINGERPRINT: ClassVar[str]
    #: ``avro/binary`` or ``application/x-protobuf`` (CloudEvents ``datacontenttype``).
    CONTENT_TYPE: ClassVar[str]

    def to_bytes(self) -> bytes:
        """The encoded payload."""
        ...

    def flush_plan(self) -> Plan:
        """The compiled flush plan with concrete keys; raises :class:`PlanError` if none."""
        ...
