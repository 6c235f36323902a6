"""``damestoilet asyncapi``: the AsyncAPI 3.0 document, validated against the official JSON
schema of the ``@asyncapi/specs`` npm package (``tests/asyncapi/``, installed by
scripts/setup.sh with ``npm ci``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from damestoilet_contracts.cli import main
from damestoilet_contracts.compiler import compile_event
from damestoilet_contracts.describe import asyncapi_document, parse_bus
from damestoilet_contracts.lint import load_linted

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SPEC = (
    ROOT / "tests" / "asyncapi" / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
)
BUSES = ["redis://127.0.0.1:6379/0", "nats://127.0.0.1:4222", "kafka://broker:9092"]


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    assert SPEC.is_file(), f"{SPEC} is missing: run npm ci --prefix tests/asyncapi (setup.sh does)"
    schema = json.loads(SPEC.read_text())
    resource = Resource.from_contents(schema, default_specification=DRAFT7)
    # The bundled schema embeds every definition under its own $id; crawl finds them offline.
    registry = Registry().with_resource(schema["$id"], resource).crawl()
    return Draft7Validator(schema, registry=registry)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    buses = [parse_bus(url, "damestoilet:events") for url in BUSES]
    return asyncapi_document(load_linted(SCHEMAS), buses, title="shop invalidation events")


def _errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_the_document_validates_against_the_official_asyncapi_3_schema(
    validator: Draft7Validator, document: dict[str, Any]
) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert _errors(validator, document) == []


def test_the_validator_is_live_it_refuses_a_broken_document(
    validator: Draft7Validator, document: dict[str, Any]
) -> None:
    """A test that cannot fail proves nothing: each of these breaks one rule of the spec."""
    broken = json.loads(json.dumps(document))
    broken["operations"]["emit_redis"]["action"] = "publish"  # AsyncAPI 2's word
    assert _errors(validator, broken)
    broken = json.loads(json.dumps(document))
    message = broken["components"]["messages"]["catalog.v1.ProductPriceChanged"]
    message["payload"]["schema"]["name"] = "catalog.v1.ProductPriceChanged"  # dots in an Avro name
    assert _errors(validator, broken)
    broken = json.loads(json.dumps(document))
    del broken["servers"]["nats"]["protocol"]
    assert _errors(validator, broken)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def test_every_reference_resolves_and_operations_use_their_channels_messages(
    document: dict[str, Any],
) -> None:
    refs = _refs(document)
    assert refs
    for ref in refs:
        _resolve(document, ref)
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        assert all(m["$ref"].startswith(channel + "/messages/") for m in operation["messages"]), (
            name
        )


def test_one_message_per_event_with_its_schema_rules_and_stages(document: dict[str, Any]) -> None:
    contracts = load_linted(SCHEMAS)
    messages = document["components"]["messages"]
    assert sorted(messages) == sorted(contracts.events)
    for name, event in contracts.events.items():
        message = messages[name]
        assert message["x-damestoilet-event-type"] == name
        assert (
            message["x-damestoilet-dataschema"]
            == f"urn:damestoilet:schema:{event.schema_fingerprint}"
        )
        assert message["x-damestoilet-rules-fingerprint"] == event.rules_fingerprint
        assert len(message["x-damestoilet-flush"]) == len(event.rules)
        stages = compile_event(event, contracts.graph).stages
        assert [[op["template"] for op in stage] for stage in message["x-damestoilet-stages"]] == [
            [op.template.source for op in stage] for stage in stages
        ]
        payload = message["payload"]
        if event.format == "avro":
            assert message["contentType"] == "avro/binary"
            # Names split for AsyncAPI, yet the very schema the events are encoded with.
            canonical = to_parsing_canonical_form(parse_schema(payload["schema"]))
            assert fingerprint(canonical, "CRC-64-AVRO") == event.schema_fingerprint
        else:
            assert message["contentType"] == "application/x-protobuf"
            assert payload["schemaFormat"] == "application/vnd.google.protobuf;version=3"
            assert f"message {event.name} {{" in payload["schema"]


def test_buses_give_servers_channels_and_send_receive_operations(document: dict[str, Any]) -> None:
    assert document["servers"] == {
        "redis": {"host": "127.0.0.1:6379", "protocol": "redis", "pathname": "/0"},
        "nats": {"host": "127.0.0.1:4222", "protocol": "nats"},
        "kafka": {"host": "broker:9092", "protocol": "kafka"},
    }
    assert {c["address"] for c in document["channels"].values()} == {"damestoilet:events"}
    actions = {name: op["action"] for name, op in document["operations"].items()}
    assert actions == {
        "emit_redis": "send", "purge_redis": "receive",
        "emit_nats": "send", "purge_nats": "receive",
        "emit_kafka": "send", "purge_kafka": "receive",
    }  # fmt: skip


def test_the_flush_graph_and_its_cascades_are_extensions(document: dict[str, Any]) -> None:
    graph = document["x-damestoilet-flush-graph"]
    assert graph["caches"]["search.product"]["derived_from"] == ["catalog.product"]
    assert graph["targets"]["default"]["grace_seconds"] > 0
    stages = document["components"]["messages"]["catalog.v1.ProductPriceChanged"][
        "x-damestoilet-stages"
    ]
    assert len(stages) >= 2  # catalog.product, then what derives from it


def test_cli_writes_yaml_and_json_of_the_same_document(tmp_path: Path, validator) -> None:
    runner = CliRunner()
    as_yaml = runner.invoke(main, ["asyncapi", str(SCHEMAS), "--title", "t"])
    assert as_yaml.exit_code == 0, as_yaml.output
    out = tmp_path / "asyncapi.json"
    as_json = runner.invoke(
        main, ["asyncapi", str(SCHEMAS), "--title", "t", "--format", "json", "--out", str(out)]
    )
    assert as_json.exit_code == 0, as_json.output
    assert "AsyncAPI 3.0.0, 8 messages" in as_json.output
    parsed = yaml.safe_load(as_yaml.output)
    assert parsed == json.loads(out.read_text())
    assert _errors(validator, parsed) == []
    again = runner.invoke(main, ["asyncapi", str(SCHEMAS), "--title", "t"])
    assert again.output == as_yaml.output  # deterministic


def test_cli_refuses_a_bad_bus_with_usage_and_bad_schemas_with_1(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_bus = runner.invoke(main, ["asyncapi", str(SCHEMAS), "--bus", "amqp://x"])
    assert bad_bus.exit_code == 2
    assert "has no known scheme" in bad_bus.output
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "bad.avsc").write_text("{")
    broken = runner.invoke(main, ["asyncapi", str(tmp_path / "s")])
    assert broken.exit_code == 1
    assert "invalid JSON" in broken.output
