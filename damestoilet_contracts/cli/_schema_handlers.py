"""Flush handlers built from a schema directory, for commands that meet events without a plan
(``damestoilet verify --schemas``): decode the payload (Avro or Protobuf) into its JSON shape,
then render the event's compiled plan for it, as the generated handlers do."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from damestoilet_contracts._errors import PayloadError
from damestoilet_contracts.compiler import compile_event, evaluate
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.loaders import proto_message_class
from damestoilet_contracts.model import DEFAULT_FANOUT_CAP, ContractSet, EventType, Plan

Decoder = Callable[[bytes], Mapping[str, Any]]


def schema_handlers(
    root: Path, *, cap: int = DEFAULT_FANOUT_CAP
) -> dict[str, Callable[[bytes], Plan]]:
    """A flush handler (payload bytes -> :class:`Plan`) for every event type of the schema
    directory ``root``. Raises :class:`ContractError` when a schema is wrong; a handler
    raises :class:`PayloadError` for a payload it cannot decode or plan."""
    contracts = load_linted(root)
    return {name: _handler(contracts, event, root, cap) for name, event in contracts.events.items()}


def _handler(
    contracts: ContractSet, event: EventType, root: Path, cap: int
) -> Callable[[bytes], Plan]:
    spec = compile_event(event, contracts.graph)
    decoders: list[Decoder] = []  # built on first use: compiling a .proto takes a while

    def handle(data: bytes) -> Plan:
        if not decoders:
            decoders.append(payload_decoder(event, root))
        return evaluate(spec, event, decoders[0](data), cap=cap)

    return handle


def payload_decoder(event: EventType, root: Path) -> Decoder:
    """A decoder of ``event``'s wire payloads into their JSON shape (enums by symbol, 64-bit
    integers as numbers or text). Raises :class:`PayloadError` when the Protobuf file does
    not compile; the decoder raises it for bytes that are not such a payload."""
    if event.format == "avro":
        return _avro_decoder(event)
    return _proto_decoder(event, root)


def _avro_decoder(event: EventType) -> Decoder:
    import fastavro

    schema = fastavro.parse_schema(json.loads(event.source))

    def decode(data: bytes) -> Mapping[str, Any]:
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data), schema, None)
        except Exception as exc:  # fastavro raises many kinds on truncated or foreign bytes
            raise PayloadError(f"payload is not a {event.full_name}: {exc}") from exc
        if not isinstance(record, dict):
            raise PayloadError(f"payload of {event.full_name} did not decode to a record")
        return record

    return decode


def _proto_decoder(event: EventType, root: Path) -> Decoder:
    from google.protobuf import json_format, message

    message_class = proto_message_class(event, root)

    def decode(data: bytes) -> Mapping[str, Any]:
        decoded = message_class()
        try:
            decoded.ParseFromString(data)
        except message.DecodeError as exc:
            raise PayloadError(f"payload is not a {event.full_name}: {exc}") from exc
        # Fields at their default (0, "", false) are still values a key may need.
        fields: dict[str, Any] = json_format.MessageToDict(
            decoded, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        return fields

    return decode
