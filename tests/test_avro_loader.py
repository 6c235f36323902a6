"""The Avro loader: types, named types across files, locations, fingerprints, problems."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given
from hypothesis import strategies as st

from damestoilet_contracts.loaders._avro import load_avro
from damestoilet_contracts.loaders._jsonpos import JsonArray, JsonObject, loads
from damestoilet_contracts.model import EventType, IfAbsent, Kind, Mode, Op, TypeRef

REPO = Path(__file__).resolve().parent.parent


def _event(
    name: str,
    fields: list[dict[str, Any]],
    flush: list[Any] | None = None,
    namespace: str = "shop.v1",
) -> dict[str, Any]:
    flush = flush if flush is not None else [{"key": "x:{id}"}]
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "damestoilet": {"flush": flush},
        "fields": fields,
    }


def _write(root: Path, files: dict[str, Any]) -> list[Path]:
    """Write ``files`` (name to schema, or to raw text) under ``root``; return their paths."""
    paths = []
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
        paths.append(path)
    return paths


def _load(root: Path, files: dict[str, Any]) -> tuple[dict[str, EventType], list[str]]:
    events, problems = load_avro(_write(root, files), root)
    return {e.full_name: e for e in events}, [str(p) for p in problems]


def _field_type(event: EventType, name: str) -> TypeRef:
    found = event.record.field(name)
    assert found is not None, name
    return found.type


# -- the reference contracts ------------------------------------------------------------------


def test_reference_schemas_load_without_problems() -> None:
    root = REPO / "schemas"
    events, problems = load_avro(sorted(root.rglob("*.avsc")), root)
    assert [str(p) for p in problems] == []
    assert sorted(e.full_name for e in events) == [
        "catalog.v1.CategoryRenamed",
        "catalog.v1.ProductPriceChanged",
        "catalog.v1.ProductStockChanged",
        "users.v1.UserProfileUpdated",
    ]
    price = next(e for e in events if e.name == "ProductPriceChanged")
    assert [r.describe() for r in price.rules] == [
        "key catalog:product:{product_id}",
        "key pricing:{store_ids}:{product_id} target=pricing",
        "prefix catalog:listing:{category_id}:",
        "tag category:{category_id} mode=soft",
        "cache catalog.product",
    ]
    user = next(e for e in events if e.name == "UserProfileUpdated")
    assert user.rules[1].if_absent is IfAbsent.SKIP
    assert user.rules[2].op is Op.TAG and user.rules[2].mode is Mode.SOFT
    assert _field_type(user, "address").field("country") is not None


# -- types ------------------------------------------------------------------------------------


def test_avro_types_map_onto_model_kinds(tmp_path: Path) -> None:
    fields = [
        {"name": "id", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 8}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "maybe", "type": ["null", "int"], "default": None},
        {"name": "maybe_last", "type": ["string", "null"]},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {
            "name": "fixed_amount",
            "type": {
                "type": "fixed",
                "name": "Money",
                "size": 8,
                "logicalType": "decimal",
                "precision": 9,
            },
        },
        # A logical type on the wrong base type is ignored, as the Avro spec says.
        {"name": "odd", "type": {"type": "int", "logicalType": "uuid"}},
    ]
    events, problems = _load(tmp_path, {"e.avsc": _event("AllTypes", fields)})
    assert problems == []
    event = events["shop.v1.AllTypes"]
    kinds = {f.name: f.type.kind for f in event.fields}
    assert kinds == {
        "id": Kind.STRING,
        "i": Kind.INT,
        "l": Kind.INT,
        "b": Kind.BOOL,
        "f": Kind.FLOAT,
        "d": Kind.FLOAT,
        "raw": Kind.BYTES,
        "hash": Kind.BYTES,
        "color": Kind.ENUM,
        "tags": Kind.ARRAY,
        "attrs": Kind.MAP,
        "maybe": Kind.INT,
        "maybe_last": Kind.STRING,
        "uid": Kind.UUID,
        "ms": Kind.TIMESTAMP,
        "us": Kind.TIMESTAMP,
        "day": Kind.DATE,
        "amount": Kind.DECIMAL,
        "fixed_amount": Kind.DECIMAL,
        "odd": Kind.INT,
    }
    assert _field_type(event, "color") == TypeRef(
        Kind.ENUM, name="shop.v1.Color", symbols=("RED", "BLUE")
    )
    assert _field_type(event, "hash").name == "shop.v1.Hash"
    assert _field_type(event, "tags").items == TypeRef(Kind.STRING)
    assert _field_type(event, "attrs").describe() == "map<string, int>"
    assert _field_type(event, "maybe").nullable and _field_type(event, "maybe_last").nullable
    assert not _field_type(event, "id").nullable
    assert _field_type(event, "ms").logical == "timestamp-millis"
    assert _field_type(event, "us").logical == "timestamp-micros"
    assert _field_type(event, "fixed_amount").logical == "decimal"
    assert _field_type(event, "odd").logical is None


def test_avro_integers_keep_their_wire_width(tmp_path: Path) -> None:
    """TypeScript needs int and long apart (number or bigint); so does the range check."""
    fields = [
        {"name": "id", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": {"type": "long"}},
        {"name": "maybe", "type": ["null", "long"], "default": None},
        {"name": "ints", "type": {"type": "array", "items": "int"}},
        {"name": "longs", "type": {"type": "map", "values": "long"}},
        {"name": "ms", "type": {"type": "int", "logicalType": "time-millis"}},
    ]
    events, problems = _load(tmp_path, {"e.avsc": _event("Widths", fields)})
    assert problems == []
    event = events["shop.v1.Widths"]
    assert _field_type(event, "i").width == "int"
    assert _field_type(event, "l").width == "long"
    assert _field_type(event, "maybe") == TypeRef(Kind.INT, nullable=True, width="long")
    assert _field_type(event, "ints").items == TypeRef(Kind.INT, width="int")
    assert _field_type(event, "longs").items == TypeRef(Kind.INT, width="long")
    # under a logical type the width is the logical type's, which ``logical`` names
    assert _field_type(event, "ms") == TypeRef(Kind.INT, logical="time-millis")
    assert _field_type(event, "id").width is None


def test_recursive_record_is_cut_by_name(tmp_path: Path) -> None:
    category = {
        "type": "record",
        "name": "Category",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "parent", "type": ["null", "Category"], "default": None},
        ],
    }
    schema = _event(
        "CategoryMoved",
        [{"name": "id", "type": "string"}, {"name": "category", "type": category}],
        flush=[{"key": "c:{category.id}"}, {"key": "p:{category.parent.id}", "if_absent": "skip"}],
    )
    events, problems = _load(tmp_path, {"e.avsc": schema})
    category_type = _field_type(events["shop.v1.CategoryMoved"], "category")
    parent = category_type.field("parent")
    assert parent is not None
    assert parent.type.kind is Kind.RECORD and parent.type.name == "shop.v1.Category"
    assert parent.type.nullable and parent.type.fields == ()  # cut: the name says which
    # The template walks into the cut record and finds no field there.
    assert len(problems) == 1 and "names no field 'id' of record category.parent" in problems[0]


def test_other_unions_are_refused_with_the_field_named(tmp_path: Path) -> None:
    schema = _event(
        "Paid",
        [{"name": "id", "type": "string"}, {"name": "amount", "type": ["null", "long", "string"]}],
    )
    events, problems = _load(tmp_path, {"e.avsc": schema})
    assert events == {}
    assert len(problems) == 1
    assert "field 'amount' of record shop.v1.Paid: union" in problems[0]
    assert '["null", T]' in problems[0]


# -- named types across files ------------------------------------------------------------------

ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "users.v1",
    "fields": [{"name": "country", "type": "string"}, {"name": "city", "type": "string"}],
}


def _profile(address_ref: str = "users.v1.Address") -> dict[str, Any]:
    return _event(
        "UserProfileUpdated",
        [{"name": "user_id", "type": "string"}, {"name": "address", "type": address_ref}],
        flush=[{"key": "geo:{address.country}:users"}],
        namespace="users.v1",
    )


@pytest.mark.parametrize(
    ("event_file", "type_file"),
    [("a_event.avsc", "z_address.avsc"), ("z_event.avsc", "a_address.avsc")],
    ids=["type-file-sorts-after", "type-file-sorts-before"],
)
@pytest.mark.parametrize("reverse", [False, True], ids=["given-in-order", "given-reversed"])
def test_named_type_from_another_file_resolves_whatever_the_order(
    tmp_path: Path, event_file: str, type_file: str, reverse: bool
) -> None:
    paths = _write(tmp_path, {event_file: _profile(), type_file: ADDRESS})
    events, problems = load_avro(paths[::-1] if reverse else paths, tmp_path)
    assert problems == []
    (event,) = events
    address = _field_type(event, "address")
    assert address.kind is Kind.RECORD and address.name == "users.v1.Address"
    assert [f.name for f in address.fields] == ["country", "city"]
    assert address.fields[0].location.path.endswith(type_file)  # located where defined
    source = json.loads(event.source)
    assert source["fields"][1]["type"]["name"] == "users.v1.Address"  # inlined


def test_results_do_not_depend_on_the_order_of_the_files(tmp_path: Path) -> None:
    paths = _write(tmp_path, {"b.avsc": _profile(), "a.avsc": ADDRESS})
    forward = load_avro(paths, tmp_path)
    backward = load_avro(paths[::-1], tmp_path)
    assert forward == backward


def test_relative_name_resolves_in_the_enclosing_namespace(tmp_path: Path) -> None:
    events, problems = _load(tmp_path, {"e.avsc": _profile("Address"), "t.avsc": ADDRESS})
    assert problems == []
    assert _field_type(events["users.v1.UserProfileUpdated"], "address").name == (
        "users.v1.Address"
    )


def test_shared_type_is_inlined_once_and_named_after(tmp_path: Path) -> None:
    schema = _event(
        "Moved",
        [
            {"name": "id", "type": "string"},
            {"name": "old", "type": "users.v1.Address"},
            {"name": "new", "type": "users.v1.Address"},
        ],
    )
    events, problems = _load(tmp_path, {"e.avsc": schema, "t.avsc": ADDRESS})
    assert problems == []
    source = json.loads(events["shop.v1.Moved"].source)
    assert isinstance(source["fields"][1]["type"], dict)
    assert source["fields"][2]["type"] == "users.v1.Address"
    assert _field_type(events["shop.v1.Moved"], "new").field("city") is not None


def test_unresolved_type_is_reported_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    text = """{
  "type": "record", "name": "UserProfileUpdated", "namespace": "users.v1",
  "damestoilet": {"flush": [{"key": "u:{user_id}"}]},
  "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "address",
     "type": "users.v1.Adress"}
  ]
}"""
    events, problems = _load(tmp_path, {"avro/e.avsc": text, "avro/t.avsc": ADDRESS})
    assert events == {}
    assert problems == [
        f"{tmp_path.as_posix()}/avro/e.avsc:7: field 'address' of record "
        "users.v1.UserProfileUpdated has unknown type 'users.v1.Adress'; "
        "did you mean 'users.v1.Address'?"
    ]


def test_event_using_a_broken_type_of_another_file_adds_no_second_problem(
    tmp_path: Path,
) -> None:
    broken = dict(ADDRESS, fields=[{"name": "country", "type": "string", "default": 3}])
    events, problems = _load(tmp_path, {"e.avsc": _profile(), "t.avsc": broken})
    assert events == {}
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path.as_posix()}/t.avsc:1: invalid Avro schema: ")
    assert "must match schema type" in problems[0]


def test_types_of_two_files_that_use_each_other_both_report_their_failure(
    tmp_path: Path,
) -> None:
    a = {
        "type": "record",
        "name": "shop.v1.A",
        "fields": [
            {"name": "id", "type": "string", "default": 3},
            {"name": "b", "type": ["null", "shop.v1.B"]},
        ],
    }
    b = {"type": "record", "name": "shop.v1.B", "fields": [{"name": "a", "type": "shop.v1.A"}]}
    _, problems = _load(tmp_path, {"a.avsc": a, "b.avsc": b})
    # Each file needs the other, so neither failure explains the other away.
    assert [p.split(":")[0].rsplit("/", 1)[1] for p in problems] == ["a.avsc", "b.avsc"]


def test_named_type_defined_twice_is_reported_once_at_the_later_file(tmp_path: Path) -> None:
    _, problems = _load(tmp_path, {"a.avsc": ADDRESS, "b.avsc": ADDRESS})
    assert problems == [
        f"{tmp_path.as_posix()}/b.avsc:1: named type users.v1.Address is defined twice: here "
        f"and at {tmp_path.as_posix()}/a.avsc:1; keep one definition and refer to it by name"
    ]


def test_event_record_nested_in_another_schema_is_an_event(tmp_path: Path) -> None:
    outer = {
        "type": "record",
        "name": "Wrapper",
        "namespace": "shop.v1",
        "fields": [{"name": "inner", "type": _event("Inner", [{"name": "id", "type": "string"}])}],
    }
    events, problems = _load(tmp_path, {"w.avsc": outer})
    assert problems == []
    assert list(events) == ["shop.v1.Inner"]


# -- locations --------------------------------------------------------------------------------

LOCATED = """{
  "type": "record",
  "name": "Located",
  "namespace": "shop.v1",
  "damestoilet": {
    "flush": [
      {"key": "ok:{id}"},
      {
        "key": "bad:{idd}"
      }
    ]
  },
  "fields": [
    {"name": "id", "type": "string"},
    {
      "name": "other", "type": "int"
    }
  ]
}
"""


def test_locations_give_the_line_of_the_rule_field_and_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "schemas", {"avro/located.avsc": LOCATED})
    monkeypatch.chdir(tmp_path)
    root = Path("schemas")  # relative, as the CLI gets it
    events, problems = load_avro([root / "avro" / "located.avsc"], root)
    assert [str(p) for p in problems] == [
        "schemas/avro/located.avsc:8: template 'bad:{idd}' of event shop.v1.Located: "
        "{idd} names no field 'idd' of shop.v1.Located; did you mean 'id'?"
    ]
    (event,) = events
    assert str(event.location) == "schemas/avro/located.avsc:1"
    assert [str(f.location) for f in event.fields] == [
        "schemas/avro/located.avsc:14",
        "schemas/avro/located.avsc:15",
    ]
    assert [str(r.location) for r in event.rules] == ["schemas/avro/located.avsc:7"]


def test_invalid_json_keeps_the_parsers_line_and_column_and_loses_nothing_else(
    tmp_path: Path,
) -> None:
    broken = '{\n  "type": "record",\n  "name": "X" "fields": []\n}\n'
    events, problems = _load(
        tmp_path,
        {"broken.avsc": broken, "good.avsc": _event("Good", [{"name": "id", "type": "string"}])},
    )
    assert list(events) == ["shop.v1.Good"]
    assert problems == [
        f"{tmp_path.as_posix()}/broken.avsc:3: invalid JSON at line 3 column 15: "
        "Expecting ',' delimiter"
    ]


def test_a_file_that_is_not_a_schema_object_is_reported(tmp_path: Path) -> None:
    events, problems = _load(tmp_path, {"x.avsc": '"string"'})
    assert events == {}
    assert problems == [
        f"{tmp_path.as_posix()}/x.avsc:1: an .avsc file must hold a schema object (or a list of "
        "them); found the string 'string'"
    ]


# -- fingerprints and source ------------------------------------------------------------------


def _price(flush: list[Any], price_type: str = "long") -> dict[str, Any]:
    return _event(
        "PriceChanged",
        [{"name": "id", "type": "string"}, {"name": "price", "type": price_type}],
        flush=flush,
    )


def _fingerprints(root: Path, schema: dict[str, Any]) -> tuple[str, str]:
    events, problems = _load(root, {"e.avsc": schema})
    assert problems == []
    event = events["shop.v1.PriceChanged"]
    return event.schema_fingerprint, event.rules_fingerprint


def test_schema_fingerprint_ignores_the_annotation_and_rules_fingerprint_does_not(
    tmp_path: Path,
) -> None:
    base = _fingerprints(tmp_path, _price([{"key": "p:{id}"}]))
    assert base == _fingerprints(tmp_path, _price([{"key": "p:{id}"}]))  # stable
    changed_rule = _fingerprints(tmp_path, _price([{"key": "p:{id}", "mode": "soft"}]))
    assert changed_rule[0] == base[0]
    assert changed_rule[1] != base[1]
    removed_rule = _fingerprints(tmp_path, _price([{"key": "p:{id}"}, {"tag": "t:{id}"}]))
    assert removed_rule[0] == base[0] and removed_rule[1] != base[1]
    changed_field = _fingerprints(tmp_path, _price([{"key": "p:{id}"}], price_type="int"))
    assert changed_field[0] != base[0] and changed_field[1] == base[1]


def test_schema_fingerprint_is_fastavros_crc64_of_the_canonical_form(tmp_path: Path) -> None:
    schema = _price([{"key": "p:{id}"}])
    plain = {k: v for k, v in schema.items() if k != "damestoilet"}
    expected = fingerprint(to_parsing_canonical_form(parse_schema(plain)), "CRC-64-AVRO")
    assert _fingerprints(tmp_path, schema)[0] == expected
    assert len(expected) == 16


def test_source_is_the_resolved_schema_as_compact_sorted_json(tmp_path: Path) -> None:
    events, _ = _load(tmp_path, {"e.avsc": _profile(), "t.avsc": ADDRESS})
    event = events["users.v1.UserProfileUpdated"]
    data = json.loads(event.source)
    assert event.source == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert data["damestoilet"] == {"flush": [{"key": "geo:{address.country}:users"}]}
    schema = parse_schema(data)
    buffer = io.BytesIO()
    record = {"user_id": "u1", "address": {"country": "NL", "city": "Utrecht"}}
    schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    assert schemaless_reader(buffer, schema, schema) == record


# -- problems ---------------------------------------------------------------------------------


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    fields = [{"name": "id", "type": "string"}, {"name": "score", "type": "double"}]
    files = {
        "a.avsc": _event("A", fields, flush=[{"key": "a:{idd}"}, {"key": "a:{score}"}]),
        "b.avsc": _event("B", fields, flush=[{"key": "b:{id}", "mode": "hard"}, {}]),
        "c.avsc": "{ not json",
        "d.avsc": _event("D", [{"name": "x", "type": "Nowhere"}]),
        "e.avsc": _event("E", fields, flush=[]),
    }
    events, problems = _load(tmp_path, files)
    assert len(problems) == 7, problems
    assert [p.split(":")[0].rsplit("/", 1)[1] for p in problems] == [
        "a.avsc",
        "a.avsc",
        "b.avsc",
        "b.avsc",
        "c.avsc",
        "d.avsc",
        "e.avsc",
    ]
    assert sorted(events) == ["shop.v1.A", "shop.v1.B", "shop.v1.E"]
    assert events["shop.v1.A"].rules == ()  # the bad rules are dropped, not half-built


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ("[]", "the damestoilet attribute of record shop.v1.X must be an object"),
        ('{"rules": []}', "has no flush list"),
        ('{"flush": {"key": "k"}}', "flush of record shop.v1.X must be a list of rules"),
        ('{"flush": []}', "flush of record shop.v1.X is empty"),
        ('{"flush": ["k:{id}"]}', "rule 1 of record shop.v1.X must be an object"),
    ],
)
def test_malformed_annotation_is_reported(tmp_path: Path, annotation: str, expected: str) -> None:
    text = (
        '{"type": "record", "name": "X", "namespace": "shop.v1",\n'
        f' "damestoilet": {annotation},\n'
        ' "fields": [{"name": "id", "type": "string"}]}'
    )
    _, problems = _load(tmp_path, {"x.avsc": text})
    assert any(expected in p and p.split(":")[1] == "2" for p in problems), problems


def test_unknown_annotation_attribute_gets_a_suggestion(tmp_path: Path) -> None:
    schema = _event("X", [{"name": "id", "type": "string"}])
    schema["damestoilet"]["flsuh"] = []
    _, problems = _load(tmp_path, {"x.avsc": schema})
    assert (
        len(problems) == 1 and "'flsuh'" in problems[0] and "did you mean 'flush'?" in problems[0]
    )


def test_invalid_avro_is_reported_with_fastavros_message(tmp_path: Path) -> None:
    schema = _event("X", [{"name": "id", "type": "string", "default": 5}])
    events, problems = _load(tmp_path, {"x.avsc": schema})
    assert events == {}
    assert len(problems) == 1 and "invalid Avro schema: Default value <5>" in problems[0]


# -- the position-keeping JSON parser ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, -3e2, true, null, "x\\u00e9"], "b": {}}', "[]", '"s"', "0", '{"a": {}}'],
)
def test_jsonpos_returns_what_json_loads_returns(text: str) -> None:
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ['{"a":1,}', '{"a" 1}', "[1 2]", "{}x", "", "[1,]", '{"a\\q":1}'])
def test_jsonpos_fails_like_json_loads(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        loads(text)
    assert (got.value.msg, got.value.lineno, got.value.colno) == (
        expected.value.msg,
        expected.value.lineno,
        expected.value.colno,
    )


def test_jsonpos_keeps_lines_of_objects_keys_and_items() -> None:
    value = loads('{\n "a":\n  {"b": [\n   1,\n   {"c": 2}]}}')
    assert isinstance(value, JsonObject) and value.line == 1 and value.line_of("a") == 2
    inner = value["a"]
    assert isinstance(inner, JsonObject) and inner.line == 3 and inner.column == 3
    items = inner["b"]
    assert isinstance(items, JsonArray) and items.item_lines == [4, 5]
    assert items[1].line == 5


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON, st.sampled_from([None, 0, 2]))
def test_jsonpos_agrees_with_json_loads_on_any_document(value: Any, indent: int | None) -> None:
    text = json.dumps(value, indent=indent)
    assert loads(text) == json.loads(text)


@given(st.text(alphabet='{}[]",: \n0-1.etruflasn\\x', max_size=30))
def test_jsonpos_agrees_with_json_loads_on_any_text(text: str) -> None:
    try:
        expected: Any = json.dumps(json.loads(text))
    except json.JSONDecodeError as exc:
        expected = (exc.msg, exc.lineno, exc.colno)
    try:
        got: Any = json.dumps(loads(text))
    except json.JSONDecodeError as exc:
        got = (exc.msg, exc.lineno, exc.colno)
    assert got == expected


def test_annotation_is_checked_even_when_the_types_are_wrong(tmp_path: Path) -> None:
    schema = _event("X", [{"name": "id", "type": "Nowhere"}], flush=[])
    events, problems = _load(tmp_path, {"x.avsc": schema})
    assert events == {}
    assert len(problems) == 2
    assert any("unknown type 'Nowhere'" in p for p in problems)
    assert any("flush of record shop.v1.X is empty" in p for p in problems)


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "x.avsc"
    text = json.dumps(_event("X", [{"name": "id", "type": "string"}]))
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    events, problems = load_avro([path], tmp_path)
    assert problems == [] and [e.full_name for e in events] == ["shop.v1.X"]
