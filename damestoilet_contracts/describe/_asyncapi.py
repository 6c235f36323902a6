"""An AsyncAPI 3.0 document of a contract set: one message per event, a channel per bus.

Each message's payload is the event's own schema as an AsyncAPI Multi Format Schema (Avro
as JSON, Protobuf as the ``.proto`` file's text); its flush rules and the compiled cascade
stages travel as ``x-damestoilet-*`` extensions, the flush graph at the root. Per bus: a
server, a channel (the stream, subject or topic) holding every message, and two operations:
``send`` for the services that emit, ``receive`` for the coordinator that purges.

Pure: the same contract set and options give the same document, key order included.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from damestoilet_contracts._errors import SchemaError
from damestoilet_contracts.compiler import OpSpec, compile_event
from damestoilet_contracts.model import ContractSet, EventType, FlushGraph, IfAbsent, Rule
from damestoilet_contracts.runtime._uri import schema_uri

#: The AsyncAPI version written.
ASYNCAPI_VERSION = "3.0.0"
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
PROTOBUF_SCHEMA_FORMAT = "application/vnd.google.protobuf;version=3"
_CONTENT_TYPES = {"avro": "avro/binary", "proto": "application/x-protobuf"}
# URL scheme -> AsyncAPI protocol, and how that bus carries the envelope.
_PROTOCOLS = {"redis": "redis", "rediss": "redis", "nats": "nats", "kafka": "kafka"}
_CARRIERS = {
    "redis": "one stream entry field `e` holding the version-2 envelope (docs/runtime.md)",
    "nats": "CloudEvents binary mode: the payload as the body, ce- headers (docs/runtime.md)",
    "kafka": "CloudEvents binary mode: the payload as the value, ce_ headers (docs/runtime.md)",
}


@dataclass(frozen=True, slots=True)
class Bus:
    """One bus of the document: its name (the server, channel and operation key), URL and
    the address events travel on (stream, subject or topic)."""

    name: str
    url: str
    address: str


def parse_bus(url: str, address: str) -> Bus:
    """The :class:`Bus` of ``url`` (``redis://``, ``rediss://``, ``nats://``, ``kafka://``).

    Raises ValueError naming the schemes allowed for another one, or for a URL without a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in _PROTOCOLS:
        known = ", ".join(f"{s}://" for s in sorted(_PROTOCOLS))
        raise ValueError(f"bus URL {url!r} has no known scheme; use one of {known}")
    if not parts.hostname:
        raise ValueError(f"bus URL {url!r} names no host; write it like redis://host:6379/0")
    return Bus(_PROTOCOLS[parts.scheme], url, address)


def asyncapi_document(
    contracts: ContractSet,
    buses: Sequence[Bus],
    *,
    title: str,
    version: str = "1.0.0",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``contracts`` for ``buses`` (at least one, distinct names).

    Raises ValueError for no bus or two buses of one protocol, :class:`SchemaError` when a
    Protobuf event's ``.proto`` file cannot be read.
    """
    if not buses:
        raise ValueError("give at least one bus")
    names = [bus.name for bus in buses]
    if len(set(names)) != len(names):
        raise ValueError("give at most one bus of each protocol (redis, nats, kafka)")
    events = sorted(contracts.events.values(), key=lambda e: e.full_name)
    messages = {_message_key(e): _message(e, contracts) for e in events}
    refs = {key: {"$ref": f"#/components/messages/{key}"} for key in messages}
    servers: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for bus in buses:
        parts = urlsplit(bus.url)
        server: dict[str, Any] = {"host": parts.netloc.rpartition("@")[2], "protocol": bus.name}
        if parts.path not in ("", "/"):
            server["pathname"] = parts.path
        servers[bus.name] = server
        channels[bus.name] = {
            "address": bus.address,
            "title": f"invalidation events on {bus.name}",
            "description": f"Every flush event of the contracts; {_CARRIERS[bus.name]}.",
            "servers": [{"$ref": f"#/servers/{bus.name}"}],
            "messages": refs,
        }
        channel_ref = {"$ref": f"#/channels/{bus.name}"}
        message_refs = [{"$ref": f"#/channels/{bus.name}/messages/{key}"} for key in messages]
        operations[f"emit_{bus.name}"] = {
            "action": "send",
            "channel": channel_ref,
            "summary": "A service emits an invalidation event after it changed data.",
            "messages": message_refs,
        }
        operations[f"purge_{bus.name}"] = {
            "action": "receive",
            "channel": channel_ref,
            "summary": "The flush coordinator purges each event's keys, stage by stage.",
            "messages": message_refs,
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Cache invalidation events and the keys each one makes stale, generated by "
                "damestoilet asyncapi from the contracts."
            ),
        },
        "defaultContentType": _default_content_type(events),
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
        "x-damestoilet-flush-graph": _graph(contracts.graph),
    }


def _message_key(event: EventType) -> str:
    # Component keys allow letters, digits, '.', '-' and '_': the full name fits as it is.
    return event.full_name


def _message(event: EventType, contracts: ContractSet) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": event.name,
        "title": event.full_name,
        "contentType": _CONTENT_TYPES[event.format],
        "payload": _payload(event, contracts),
    }
    if event.doc:
        message["summary"] = event.doc
    spec = compile_event(event, contracts.graph)
    message.update(
        {
            "x-damestoilet-event-type": event.full_name,
            "x-damestoilet-dataschema": schema_uri(event.schema_fingerprint),
            "x-damestoilet-rules-fingerprint": event.rules_fingerprint,
            "x-damestoilet-flush": [_rule(rule) for rule in event.rules],
            "x-damestoilet-stages": [[_op(op) for op in stage] for stage in spec.stages],
        }
    )
    return message


def _payload(event: EventType, contracts: ContractSet) -> dict[str, Any]:
    if event.format == "avro":
        schema = _split_names(json.loads(event.source), "")
        return {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": schema}
    text = _proto_text(Path(contracts.root), event.source)
    return {"schemaFormat": PROTOBUF_SCHEMA_FORMAT, "schema": text}


def _split_names(node: Any, namespace: str) -> Any:
    """The resolved Avro schema with each named type's full name split into ``namespace`` and
    ``name``, as AsyncAPI's Avro schema wants (``name`` without dots); references by name
    are left as they are."""
    if isinstance(node, list):
        return [_split_names(item, namespace) for item in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    name = out.get("name")
    if out.get("type") in ("record", "error", "enum", "fixed") and isinstance(name, str):
        space, _, short = name.rpartition(".")
        if space:
            out["name"], out["namespace"] = short, space
        namespace = out.get("namespace", namespace)
    for key in ("fields", "items", "values"):
        if key in out:
            out[key] = _split_names(out[key], namespace)
    if "type" in out and not isinstance(out["type"], str):
        out["type"] = _split_names(out["type"], namespace)
    return out


def _proto_text(root: Path, name: str) -> str:
    module = root / "proto"
    for base in (module, root) if module.is_dir() else (root,):
        path = base / name
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SchemaError(f"{path}: cannot read the schema file: {exc}") from exc
    raise SchemaError(f"{root}: the Protobuf file {name} of an event is not there any more")


def _rule(rule: Rule) -> dict[str, Any]:
    if rule.cache is not None:
        return {"cache": rule.cache}
    assert rule.op is not None and rule.template is not None
    out: dict[str, Any] = {
        rule.op.value: rule.template.source,
        "target": rule.target,
        "mode": rule.mode.value,
    }
    if rule.if_absent is not IfAbsent.ERROR:
        out["if_absent"] = rule.if_absent.value
    return out


def _op(op: OpSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "op": op.op.value,
        "template": op.template.source,
        "target": op.target,
        "mode": op.mode.value,
        "from": op.origin,
    }
    if op.if_absent is not IfAbsent.ERROR:
        out["if_absent"] = op.if_absent.value
    return out


def _graph(graph: FlushGraph) -> dict[str, Any]:
    caches: dict[str, Any] = {}
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        entry: dict[str, Any] = {
            node.op.value: node.template.source,
            "target": node.target,
            "mode": node.mode.value,
        }
        if node.derived_from:
            entry["derived_from"] = list(node.derived_from)
        caches[name] = entry
    targets = {name: {"grace_seconds": graph.grace[name]} for name in sorted(graph.grace)}
    return {"targets": targets, "caches": caches}


def _default_content_type(events: Sequence[EventType]) -> str:
    formats = {e.format for e in events}
    return _CONTENT_TYPES["proto" if formats == {"proto"} else "avro"]
