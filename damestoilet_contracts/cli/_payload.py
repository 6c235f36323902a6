"""Encoding a JSON-shaped payload into an event's wire format, for ``damestoilet emit``:
Avro with fastavro's schemaless writer over the event's schema, Protobuf with
``json_format`` into a message class built from the compiled descriptors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from damestoilet_contracts._errors import PayloadError
from damestoilet_contracts.loaders import proto_message_class
from damestoilet_contracts.model import EventType
from damestoilet_contracts.runtime import AVRO_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE


def payload_encoder(
    event: EventType, root: Path
) -> tuple[str, Callable[[Mapping[str, Any]], bytes]]:
    """The content type and an encoder of JSON-shaped payloads for ``event`` of the schema
    directory ``root``. The encoder raises :class:`PayloadError` for a payload that does not
    fit; building the Protobuf one raises :class:`PayloadError` when its file does not compile.
    """
    if event.format == "avro":
        return AVRO_CONTENT_TYPE, _avro_encoder(event)
    return PROTOBUF_CONTENT_TYPE, _proto_encoder(event, root)


def _avro_encoder(event: EventType) -> Callable[[Mapping[str, Any]], bytes]:
    import fastavro

    schema = fastavro.parse_schema(json.loads(event.source))

    def encode(payload: Mapping[str, Any]) -> bytes:
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, schema, dict(payload))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PayloadError(f"payload does not fit {event.full_name}: {exc}") from exc
        return out.getvalue()

    return encode


def _proto_encoder(event: EventType, root: Path) -> Callable[[Mapping[str, Any]], bytes]:
    from google.protobuf import json_format

    message_class = proto_message_class(event, root)

    def encode(payload: Mapping[str, Any]) -> bytes:
        try:
            message = json_format.ParseDict(dict(payload), message_class())
        except json_format.ParseError as exc:
            raise PayloadError(f"payload does not fit {event.full_name}: {exc}") from exc
        return bytes(message.SerializeToString(deterministic=True))

    return encode
