"""The partition key: a contract attribute naming the key fields, defaulting to the first rule's
single-valued template fields; loaders check a written key, lint a default one, generated events
render it, and the envelope carries it (CloudEvents ``partitionkey``)."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codegen.catalog_v1 import ProductPriceChanged, ProductStockChanged
from damestoilet_contracts.generator import generate_directory, write_output
from damestoilet_contracts.lint import lint_directory
from damestoilet_contracts.loaders import load_contracts
from damestoilet_contracts.model import partition_key_paths
from damestoilet_contracts.runtime import Envelope

NOW = datetime(2026, 12, 1, tzinfo=UTC)
GRAPH = "targets:\n  default: {grace_seconds: 1}\n"


def _avro(tmp_path: Path, annotation: dict[str, object], fields: list[dict[str, object]]) -> Path:
    schemas = tmp_path / "schemas"
    (schemas / "avro").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text(GRAPH)
    record = {
        "type": "record",
        "name": "Moved",
        "namespace": "t.v1",
        "damestoilet": annotation,
        "fields": fields,
    }
    (schemas / "avro" / "t.v1.Moved.avsc").write_text(json.dumps(record, indent=2))
    return schemas


def _proto(tmp_path: Path, option: str) -> Path:
    schemas = tmp_path / "schemas"
    (schemas / "proto" / "t" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text(GRAPH)
    (schemas / "proto" / "t" / "v1" / "moved.proto").write_text(
        'syntax = "proto3";\npackage t.v1;\nimport "damestoilet/v1/options.proto";\n'
        "message Moved {\n"
        f"  option (damestoilet.v1.event) = {{{option}}};\n"
        "  string item_id = 1;\n  repeated string tags = 2;\n  string shelf = 3;\n}\n"
    )
    return schemas


FIELDS = [
    {"name": "item_id", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "price", "type": "double"},
    {"name": "shelf", "type": "int"},
]


def test_the_reference_events_key_by_their_entity():
    ev = ProductPriceChanged(product_id="p1", store_ids=["s1", "s2"], category_id="c1",
                             price_cents=5)  # fmt: skip
    assert ev.partition_key() == "p1"  # pricing:{store_ids}:{product_id} is not the first rule
    stock = ProductStockChanged(product_id="p1", warehouse_id="w9", quantity=1, changed_at=NOW)
    # its first rule is stock:{product_id}:{warehouse_id}; the contract names key product_id
    assert stock.partition_key() == "p1"


def test_the_envelope_carries_the_events_partition_key():
    stock = ProductStockChanged(product_id="p7", warehouse_id="w9", quantity=1, changed_at=NOW)
    env = Envelope.from_event(stock, source="//t")
    assert env.partitionkey == "p7"
    assert Envelope.from_fields(env.to_fields(version=2)).partitionkey == "p7"


def test_a_written_avro_key_is_read(tmp_path: Path):
    schemas = _avro(
        tmp_path, {"key": ["shelf", "item_id"], "flush": [{"key": "i:{item_id}"}]}, FIELDS
    )
    [event] = load_contracts(schemas).events.values()
    assert event.key == (("shelf",), ("item_id",))
    assert event.key_location is not None and event.key_location.line == 6
    assert lint_directory(schemas) == []


def test_a_written_protobuf_key_is_read(tmp_path: Path):
    schemas = _proto(tmp_path, 'flush: {key: "i:{item_id}:{tags}"} key: "item_id"')
    [event] = load_contracts(schemas).events.values()
    assert event.key == (("item_id",),)
    assert lint_directory(schemas) == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (["item"], "the key of event t.v1.Moved: item names no field 'item'; did you mean"),
        (["tags"], "tags is a repeated field: one event would be several entities"),
        (["price"], "price is float; only strings, integers, booleans, enums or UUIDs make a key"),
        ("item_id", 'must be a list of field names like "key": ["product_id"]'),
        ([], "found an empty list"),
        (["item_id", "item_id"], "names 'item_id' twice"),
    ],
)
def test_a_wrong_avro_key_is_a_problem_at_its_line(tmp_path: Path, key: object, message: str):
    schemas = _avro(tmp_path, {"key": key, "flush": [{"key": "i:{item_id}"}]}, FIELDS)
    problems = lint_directory(schemas)
    assert [p.location.line for p in problems] == [6]
    assert message in problems[0].message
    assert str(problems[0]).startswith(f"{schemas.as_posix()}/avro/t.v1.Moved.avsc:6: ")


def test_a_wrong_protobuf_key_says_how_to_write_one(tmp_path: Path):
    schemas = _proto(tmp_path, 'flush: {key: "i:{item_id}"} key: "tag"')
    [problem] = lint_directory(schemas)
    assert problem.location.line == 5
    assert "tag names no field 'tag'; did you mean 'tags'?" in problem.message


def test_the_default_key_skips_repeated_fields(tmp_path: Path):
    schemas = _avro(tmp_path, {"flush": [{"key": "i:{tags}:{item_id}:{tags}"}]}, FIELDS)
    contracts = load_contracts(schemas)
    [event] = contracts.events.values()
    assert partition_key_paths(event, contracts.graph) == (("item_id",),)
    assert lint_directory(schemas) == []


def test_lint_refuses_a_default_key_from_a_rule_of_repeated_fields_only(tmp_path: Path):
    schemas = _avro(tmp_path, {"flush": [{"key": "i:{tags}"}, {"key": "i:{item_id}"}]}, FIELDS)
    [problem] = lint_directory(schemas)
    assert "would come from its rule key i:{tags}, which names only repeated fields" in (
        problem.message
    )
    assert 'name the key fields in the damestoilet attribute, "key": ["..."]' in problem.message
    fixed = _avro(tmp_path / "fixed", {"key": ["item_id"], "flush": [{"key": "i:{tags}"}]}, FIELDS)
    assert lint_directory(fixed) == []


def test_rules_that_name_no_field_are_passed_over(tmp_path: Path):
    schemas = _avro(tmp_path, {"flush": [{"key": "i:all"}, {"key": "i:{shelf}"}]}, FIELDS)
    contracts = load_contracts(schemas)
    [event] = contracts.events.values()
    assert partition_key_paths(event, contracts.graph) == (("shelf",),)
    assert lint_directory(schemas) == []


def test_an_event_about_no_entity_has_no_key_and_lints_clean(tmp_path: Path):
    schemas = _avro(tmp_path, {"flush": [{"key": "i:all"}]}, FIELDS)
    contracts = load_contracts(schemas)
    [event] = contracts.events.values()
    assert partition_key_paths(event, contracts.graph) == ()
    assert lint_directory(schemas) == []
    package = tmp_path / "pkg" / "nokey_events"
    write_output(generate_directory(schemas, package="nokey_events"), package)
    sys.path.insert(0, str(package.parent))
    try:
        module = importlib.import_module("nokey_events")
    finally:
        sys.path.remove(str(package.parent))
    moved = module.Moved(item_id="i1", tags=[], price=1.0, shelf=3)
    assert moved.partition_key() == ""
    assert Envelope.from_event(moved, source="//t").partitionkey == ""


def test_lint_refuses_a_protobuf_default_key_and_says_the_option(tmp_path: Path):
    schemas = _proto(tmp_path, 'flush: {key: "all:{tags}"} flush: {key: "i:{item_id}"}')
    [problem] = lint_directory(schemas)
    assert 'in the (damestoilet.v1.event) option, key: "..."' in problem.message
