"""Encoding a payload into an event's wire format, for ``damestoilet emit``: the payload as
:func:`~damestoilet_contracts.model.json_form.payload_from_json` checked and typed it (the
one JSON form of ``plan``, ``emit`` and the generated ``from_dict()``), written by Avro with
fastavro's schemaless writer over the event's schema, by Protobuf with ``json_format`` into a
message class built from the compiled descriptors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from damestoilet_contracts._errors import PayloadError
from damestoilet_contracts.loaders import proto_message_class
from damestoilet_contracts.model import EventType
from damestoilet_contracts.model.json_form import payload_to_json
from damestoilet_contracts.runtime import AVRO_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE


def payload_encoder(
    event: EventType, root: Path
) -> tuple[str, Callable[[Mapping[str, Any]], bytes]]:
    """The content type and an encoder of typed payloads (as ``payload_from_json`` gives
    them) for ``event`` of the schema directory ``root``. The encoder raises
    :class:`PayloadError` for a payload the wire format refuses (an Avro decimal with too many
    digits); building the Protobuf one raises :class:`PayloadError` when its file does not
    compile.
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
            message = json_format.ParseDict(
                _present(payload_to_json(event, payload)), message_class()
            )
        except json_format.ParseError as exc:
            raise PayloadError(f"payload does not fit {event.full_name}: {exc}") from exc
        return bytes(message.SerializeToString(deterministic=True))

    return encode


def _present(value: Any) -> Any:
    """The JSON form without null fields: Protobuf's JSON parser reads absence, not null, as
    an unset field with presence."""
    if isinstance(value, Mapping):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value
