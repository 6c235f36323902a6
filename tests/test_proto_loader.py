"""The Protobuf loader: types, rules read through the options module, locations, problems."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from damestoilet_contracts import Problem
from damestoilet_contracts.loaders._proto import load_proto
from damestoilet_contracts.loaders._protoc import compile_protos, proto_include_dirs
from damestoilet_contracts.model import EventType, IfAbsent, Kind, Mode, Op, TypeRef

REPO = Path(__file__).resolve().parent.parent
HEADER = 'syntax = "proto3";\n\npackage demo.v1;\n\nimport "damestoilet/v1/options.proto";\n'


def write(root: Path, name: str, text: str) -> Path:
    path = root / "proto" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def event_message(name: str, key: str = "", *, rule: str = "") -> str:
    """One line: a message with a string ``id`` and one rule (``key: "..."`` unless ``rule``)."""
    rule = rule or f'key: "{key}"'
    option = f"option (damestoilet.v1.event) = {{flush: {{{rule}}}}};"
    return f"message {name} {{ {option} string id = 1; }}\n"


def load(root: Path) -> tuple[dict[str, EventType], list[Problem]]:
    events, problems = load_proto(sorted(root.rglob("*.proto")), root)
    return {e.full_name: e for e in events}, problems


def load_one(tmp_path: Path, body: str, *, header: str = HEADER) -> EventType:
    write(tmp_path, "demo/v1/demo.proto", header + textwrap.dedent(body))
    events, problems = load(tmp_path)
    assert problems == []
    (event,) = events.values()
    return event


def field_type(event: EventType, name: str) -> TypeRef:
    found = event.record.field(name)
    assert found is not None, name
    return found.type


# -- the reference contracts ------------------------------------------------------------------


def test_reference_protobuf_events_load_without_problems() -> None:
    root = REPO / "schemas"
    events, problems = load_proto(sorted(root.rglob("*.proto")), root)
    assert problems == []
    assert [e.full_name for e in events] == [
        "assets.v1.AssetReplaced",
        "carts.v1.CartUpdated",
        "orders.v1.OrderStatusChanged",
        "pricing.v1.PromotionStarted",
    ]
    assert {e.source for e in events} == {
        "assets/v1/assets.proto",
        "carts/v1/carts.proto",
        "orders/v1/orders.proto",
        "pricing/v1/pricing.proto",
    }
    cart = next(e for e in events if e.name == "CartUpdated")
    assert [r.describe() for r in cart.rules] == [
        "key cart:{cart_id}",
        "key cart:summary:{customer_id}",
        "key coupon:{coupon_code}:carts if_absent=skip",
    ]
    assert cart.location.path == str(root / "proto/carts/v1/carts.proto")
    assert cart.doc == "A cart's lines or coupon changed."


# -- types ------------------------------------------------------------------------------------


def test_scalar_types_map_onto_model_kinds(tmp_path: Path) -> None:
    event = load_one(
        tmp_path,
        """
        message Scalars {
          option (damestoilet.v1.event) = {flush: {key: "s:{s}"}};
          string s = 1;
          int32 i32 = 2;
          int64 i64 = 3;
          uint32 u32 = 4;
          uint64 u64 = 5;
          sint32 si32 = 6;
          sint64 si64 = 7;
          fixed32 f32 = 8;
          fixed64 f64 = 9;
          sfixed32 sf32 = 10;
          sfixed64 sf64 = 11;
          bool b = 12;
          float fl = 13;
          double d = 14;
          bytes by = 15;
        }
        """,
    )
    kinds = {f.name: f.type.kind for f in event.fields}
    assert kinds["s"] is Kind.STRING
    assert {kinds[n] for n in ("i32", "i64", "u32", "u64", "si32", "si64")} == {Kind.INT}
    assert {kinds[n] for n in ("f32", "f64", "sf32", "sf64")} == {Kind.INT}
    assert (kinds["b"], kinds["fl"], kinds["d"], kinds["by"]) == (
        Kind.BOOL,
        Kind.FLOAT,
        Kind.FLOAT,
        Kind.BYTES,
    )
    assert not any(f.type.nullable for f in event.fields)
    assert [f.number for f in event.fields] == list(range(1, 16))
    widths = {f.name: f.type.width for f in event.fields if f.type.width is not None}
    assert widths == {
        "i32": "int32",
        "i64": "int64",
        "u32": "uint32",
        "u64": "uint64",
        "si32": "sint32",
        "si64": "sint64",
        "f32": "fixed32",
        "f64": "fixed64",
        "sf32": "sfixed32",
        "sf64": "sfixed64",
    }


def test_containers_enums_messages_and_presence_map_onto_model_types(tmp_path: Path) -> None:
    event = load_one(
        tmp_path,
        """
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";

        enum Color {
          COLOR_UNSPECIFIED = 0;
          COLOR_RED = 1;
        }

        message Inner {
          string id = 1;
          Color color = 2;
        }

        message Containers {
          option (damestoilet.v1.event) = {flush: {key: "c:{id}"}};
          string id = 1;
          repeated string tags = 2;
          map<string, int64> counts = 3;
          Color color = 4;
          Inner inner = 5;
          repeated Inner inners = 6;
          optional string maybe = 7;
          google.protobuf.Timestamp at = 8;
          google.protobuf.StringValue wrapped = 9;
          oneof choice {
            string left = 10;
            int32 right = 11;
          }
        }
        """,
    )
    assert field_type(event, "tags") == TypeRef(Kind.ARRAY, items=TypeRef(Kind.STRING))
    assert field_type(event, "counts") == TypeRef(Kind.MAP, items=TypeRef(Kind.INT, width="int64"))
    color = field_type(event, "color")
    assert (color.kind, color.name, color.symbols, color.nullable) == (
        Kind.ENUM,
        "demo.v1.Color",
        ("COLOR_UNSPECIFIED", "COLOR_RED"),
        False,
    )
    inner = field_type(event, "inner")
    assert (inner.kind, inner.name, inner.nullable) == (Kind.RECORD, "demo.v1.Inner", True)
    assert [(f.name, f.type.kind) for f in inner.fields] == [
        ("id", Kind.STRING),
        ("color", Kind.ENUM),
    ]
    inners = field_type(event, "inners")
    assert inners.kind is Kind.ARRAY and inners.items is not None
    assert (inners.items.kind, inners.items.nullable) == (Kind.RECORD, False)
    assert field_type(event, "maybe") == TypeRef(Kind.STRING, nullable=True)
    at = field_type(event, "at")
    assert (at.kind, at.nullable) == (Kind.TIMESTAMP, True)
    wrapped = field_type(event, "wrapped")
    assert (wrapped.kind, wrapped.nullable) == (Kind.STRING, True)
    assert field_type(event, "left").nullable and field_type(event, "right").nullable
    assert not field_type(event, "id").nullable


def test_recursive_messages_are_cut_by_name(tmp_path: Path) -> None:
    event = load_one(
        tmp_path,
        """
        message Node {
          string id = 1;
          Node parent = 2;
        }

        message Moved {
          option (damestoilet.v1.event) = {flush: {key: "n:{node.id}" if_absent: IF_ABSENT_SKIP}};
          Node node = 1;
        }
        """,
    )
    parent = field_type(event, "node").field("parent")
    assert parent is not None
    # The first repeat of a name on the path is cut: named, nullable, without fields.
    assert parent.type == TypeRef(Kind.RECORD, nullable=True, name="demo.v1.Node")


def test_editions_fields_have_explicit_presence_unless_told_otherwise(tmp_path: Path) -> None:
    event = load_one(
        tmp_path,
        """
        message Edition {
          option (damestoilet.v1.event) = {flush: {key: "e:{plain}"}};
          string plain = 1 [features.field_presence = IMPLICIT];
          string present = 2;
        }
        """,
        header=HEADER.replace('syntax = "proto3";', 'edition = "2023";'),
    )
    assert not field_type(event, "plain").nullable
    assert field_type(event, "present").nullable


# -- rules ------------------------------------------------------------------------------------


def test_rules_are_read_with_enums_lowered_to_the_vocabulary(tmp_path: Path) -> None:
    event = load_one(
        tmp_path,
        """
        message Changed {
          option (damestoilet.v1.event) = {
            flush: {key: "a:{id}"}
            flush: {prefix: "b:{id}:" target: "cdn" mode: MODE_SOFT}
            flush: {tag: "c:{maybe}" if_absent: IF_ABSENT_SKIP mode: MODE_DELETE}
            flush: {key: "d:{maybe}" if_absent: IF_ABSENT_ERROR}
            flush: {cache: "catalog.product"}
            flush: {key: "e:{id}" mode: MODE_UNSPECIFIED}
          };
          string id = 1;
          optional string maybe = 2;
        }
        """,
    )
    rules = event.rules
    assert [r.op for r in rules] == [Op.KEY, Op.PREFIX, Op.TAG, Op.KEY, None, Op.KEY]
    assert rules[1].target == "cdn" and rules[1].mode is Mode.SOFT
    assert rules[2].if_absent is IfAbsent.SKIP and rules[2].mode is Mode.DELETE
    assert rules[3].if_absent is IfAbsent.ERROR
    assert rules[4].cache == "catalog.product"
    assert rules[5].mode is Mode.DELETE  # *_UNSPECIFIED counts as not given


def test_if_absent_unspecified_counts_as_not_given(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER
        + """
message Changed {
  option (damestoilet.v1.event) = {flush: {key: "d:{maybe}" if_absent: IF_ABSENT_UNSPECIFIED}};
  optional string maybe = 1;
}
""",
    )
    _, problems = load(tmp_path)
    assert len(problems) == 1
    assert "{maybe} is nullable; say what to do when it is absent" in problems[0].message


def test_rules_are_read_in_a_fresh_interpreter_through_the_options_module() -> None:
    """The loader imports the options module itself: a bare process still sees every rule."""
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from damestoilet_contracts.loaders._proto import load_proto
        root = Path(sys.argv[1])
        events, problems = load_proto(sorted(root.rglob("*.proto")), root)
        print(json.dumps({e.full_name: [r.describe() for r in e.rules] for e in events}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "schemas")],
        capture_output=True,
        text=True,
        check=True,
    )
    rules = json.loads(done.stdout)
    assert rules["assets.v1.AssetReplaced"] == [
        "cache assets.asset",
        "key /assets/{asset_id}/{variant_ids} target=cdn",
    ]
    assert sum(len(r) for r in rules.values()) == 11


def test_without_the_options_module_the_option_is_an_unknown_field(tmp_path: Path) -> None:
    """Why the loader imports it first: parsed without it, the rules are silently not there."""
    root = REPO / "schemas"
    compiled = compile_protos([root / "proto/carts/v1/carts.proto"], root)
    assert compiled.problems == []
    data = tmp_path / "set.binpb"
    data.write_bytes(compiled.descriptors.SerializeToString())
    script = textwrap.dedent(
        """
        import sys
        from google.protobuf import descriptor_pb2
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
        (file,) = [f for f in fds.file if f.name == "carts/v1/carts.proto"]
        options = [m.options for m in file.message_type if m.name == "CartUpdated"][0]
        print(len(options.ListFields()), len(options.SerializeToString()) > 0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0", "True"]


# -- locations --------------------------------------------------------------------------------


def test_locations_of_message_fields_and_each_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER
        + """
// Something changed.
message Changed {                                       // line 8
  option (damestoilet.v1.event) = {
    flush: {key: "a:{id}"}                              // line 10
    flush: [{key: "b:{id}"},                            // line 11
            {key: "c:{id}"}]                            // line 12
    /* a comment mentioning flush: {key: "x"} */
    flush
    {
      tag: "d:{id}"                                     // rule at line 14
    }
  };
  option (damestoilet.v1.event).flush = {key: "e:{id}"};   // line 19

  string id = 1;                                        // line 21
  \tint64 at = 2;                                       // line 22
}
""",
    )
    events, problems = load(tmp_path)
    assert problems == []
    event = events["demo.v1.Changed"]
    assert (event.location.path, event.location.line) == (str(path), 8)
    assert [(f.name, f.location.line) for f in event.fields] == [("id", 21), ("at", 22)]
    assert [r.template.source for r in event.rules if r.template] == [
        "a:{id}",
        "b:{id}",
        "c:{id}",
        "d:{id}",
        "e:{id}",
    ]
    assert [r.location.line for r in event.rules] == [10, 11, 12, 14, 19]
    assert event.doc == "Something changed."


def test_a_hash_in_the_option_value_is_reported_since_protoc_drops_what_follows(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER
        + """
message A {
  option (damestoilet.v1.event) = {
    flush: {key: "a:{id}"}  # protoc reads the rest of the value as this comment
    flush: {key: "b:{id}"}
  };
  string id = 1;
}
""",
    )
    events, problems = load(tmp_path)
    assert [r.describe() for r in events["demo.v1.A"].rules] == ["key a:{id}"]
    assert [(p.location.line, p.message.split(" (protoc")[0]) for p in problems] == [
        (9, "'#' in the (damestoilet.v1.event) value of demo.v1.A comments out the rest of it")
    ]


def test_nested_messages_can_be_events_with_their_own_locations(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER
        + """
message Outer {
  message Inner {
    option (damestoilet.v1.event) = {flush: {key: "i:{id}"}};
    string id = 1;
  }
  Inner inner = 1;
}
""",
    )
    events, problems = load(tmp_path)
    assert problems == []
    inner = events["demo.v1.Outer.Inner"]
    assert (inner.location.line, inner.rules[0].location.line, inner.fields[0].location.line) == (
        8,
        9,
        10,
    )


def test_files_outside_a_proto_folder_are_imported_relative_to_the_schema_dir(
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo.proto"
    path.write_text(
        HEADER
        + 'message A { option (damestoilet.v1.event) = {flush: {key: "a:{id}"}}; string id = 1; }\n'
    )
    events, problems = load_proto([path], tmp_path)
    assert problems == []
    assert [(e.full_name, e.source, e.location.path) for e in events] == [
        ("demo.v1.A", "demo.proto", str(path))
    ]


# -- problems ---------------------------------------------------------------------------------


def test_protoc_syntax_error_keeps_protocs_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER + "\nmessage Broken {\n  string id = 1\n}\n",
    )
    events, problems = load(tmp_path)
    assert events == {}
    assert len(problems) == 1
    location = problems[0].location
    assert (location.path, location.line, location.column) == (str(path), 9, 1)
    assert problems[0].message == 'Expected ";". (protoc, column 1)'


def test_every_broken_file_is_reported_and_the_others_still_load(tmp_path: Path) -> None:
    write(
        tmp_path, "a/v1/a.proto", 'syntax = "proto3";\npackage a.v1;\nmessage A { string id = 1 }\n'
    )
    write(tmp_path, "b/v1/b.proto", 'syntax = "proto3";\npackage b.v1;\nmessage B { int32 = 1; }\n')
    write(
        tmp_path,
        "c/v1/c.proto",
        HEADER.replace("demo.v1", "c.v1") + event_message("C", "c:{id}"),
    )
    events, problems = load(tmp_path)
    assert list(events) == ["c.v1.C"]
    assert sorted((Path(p.location.path).name, p.location.line) for p in problems) == [
        ("a.proto", 3),
        ("b.proto", 3),
    ]


def test_a_file_importing_a_broken_file_is_reported_too(tmp_path: Path) -> None:
    write(
        tmp_path, "a/v1/a.proto", 'syntax = "proto3";\npackage a.v1;\nmessage A { string id = 1 }\n'
    )
    write(
        tmp_path,
        "b/v1/b.proto",
        HEADER.replace("demo.v1", "b.v1").replace(
            'import "damestoilet', 'import "a/v1/a.proto";\nimport "damestoilet'
        )
        + 'message B { option (damestoilet.v1.event) = {flush: {key: "b:{a.id}"'
        + " if_absent: IF_ABSENT_SKIP}}; a.v1.A a = 1; }\n",
    )
    events, problems = load(tmp_path)
    assert events == {}
    messages = [f"{Path(p.location.path).name}: {p.message}" for p in problems]
    assert messages.count('a.proto: Expected ";". (protoc, column 27)') == 1
    assert 'b.proto: Import "a/v1/a.proto" was not found or had errors. (protoc, column 1)' in (
        messages
    )


def test_option_without_import_is_reported_with_the_line_to_add(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "demo/v1/demo.proto",
        """\
        syntax = "proto3";
        package demo.v1;
        // (damestoilet.v1.event) in a comment does not count
        message A {
          option ( damestoilet.v1.event ) = {flush: {key: "a:{id}"}};
          string id = 1;
        }
        """,
    )
    events, problems = load(tmp_path)
    assert events == {}
    assert [str(p) for p in problems] == [
        f"{path}:5: uses option (damestoilet.v1.event) but does not import "
        '"damestoilet/v1/options.proto"; add: import "damestoilet/v1/options.proto";'
    ]


def test_option_imported_publicly_through_another_file_is_not_a_missing_import(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "demo/v1/common.proto",
        'syntax = "proto3";\npackage demo.v1;\nimport public "damestoilet/v1/options.proto";\n',
    )
    write(
        tmp_path,
        "demo/v1/demo.proto",
        'syntax = "proto3";\npackage demo.v1;\nimport "demo/v1/common.proto";\n'
        'message A { option (damestoilet.v1.event) = {flush: {key: "a:{id}"}}; string id = 1; }\n',
    )
    events, problems = load(tmp_path)
    assert problems == []
    assert list(events) == ["demo.v1.A"]


@pytest.mark.parametrize(
    ("rule", "hint"),
    [
        ('keys: "a:{id}"', "did you mean 'key'? (allowed: key, prefix, tag, cache, target, mode"),
        ('key: "a:{id}" mode: SOFT', "did you mean MODE_SOFT? (values: MODE_DELETE, MODE_SOFT)"),
        (
            'key: "a:{id}" if_absent: skip',
            "(values: IF_ABSENT_ERROR, IF_ABSENT_SKIP)",
        ),
    ],
)
def test_protoc_errors_about_the_vocabulary_get_a_hint(
    tmp_path: Path, rule: str, hint: str
) -> None:
    write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER + event_message("A", rule=rule),
    )
    _, problems = load(tmp_path)
    assert len(problems) == 1
    assert hint in problems[0].message
    assert problems[0].message.endswith(f"(protoc, column {problems[0].location.column})")


def test_an_option_without_rules_is_reported_at_the_option(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER + "\nmessage A {\n  string id = 1;\n  option (damestoilet.v1.event) = {};\n}\n",
    )
    events, problems = load(tmp_path)
    assert events["demo.v1.A"].rules == ()
    assert [(p.location.line, p.message) for p in problems] == [
        (
            9,
            "the (damestoilet.v1.event) option of message demo.v1.A has no flush rule; give at "
            "least one, or drop the option if the message is not an event",
        )
    ]


def test_without_grpcio_tools_the_loader_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "demo/v1/demo.proto", HEADER + event_message("A", "a:{id}"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "grpc_tools" else real_find_spec(name, *a),
    )
    events, problems = load(tmp_path)
    assert events == {}
    assert [str(p) for p in problems] == [
        f"{path}:1: reading .proto files needs grpcio-tools; install it with "
        "pip install 'damestoilet-contracts[codegen]'"
    ]


def test_rule_problems_come_from_the_shared_rule_checks(tmp_path: Path) -> None:
    write(
        tmp_path,
        "demo/v1/demo.proto",
        HEADER
        + """
message A {
  option (damestoilet.v1.event) = {
    flush: {key: "a:{id}" prefix: "a:"}
    flush: {target: "cdn"}
    flush: {key: ""}
    flush: {key: "a:{idd}"}
  };
  string id = 1;
}
""",
    )
    events, problems = load(tmp_path)
    assert events["demo.v1.A"].rules == ()
    assert [(p.location.line, p.message.split(";")[0]) for p in problems] == [
        (9, "a rule of event demo.v1.A has several of key, prefix"),
        (10, "a rule of event demo.v1.A has none of key, prefix, tag, cache"),
        (11, "rule attribute 'key' in event demo.v1.A must be a non-empty string"),
        (12, "template 'a:{idd}' of event demo.v1.A: {idd} names no field 'idd' of demo.v1.A"),
    ]


# -- fingerprints -----------------------------------------------------------------------------

BASE = """
message Inner {
  string id = 1;
}

// An event.
message Changed {
  option (damestoilet.v1.event) = {flush: {key: "a:{ref}"}};
  string id = 1;
  Inner inner = 2;
  string ref = 3;
}
"""


def fingerprints(tmp_path: Path, name: str, body: str) -> tuple[str, str]:
    root = tmp_path / name
    event = load_one(root, body)
    return event.schema_fingerprint, event.rules_fingerprint


def test_schema_fingerprint_ignores_rules_comments_and_layout(tmp_path: Path) -> None:
    schema, rules = fingerprints(tmp_path, "base", BASE)
    assert len(schema) == 64 and int(schema, 16) >= 0
    changed_rule = BASE.replace('{key: "a:{ref}"}', '{key: "b:{ref}" mode: MODE_SOFT}')
    other_schema, other_rules = fingerprints(tmp_path, "rule", changed_rule)
    assert other_schema == schema
    assert other_rules != rules
    relaid = BASE.replace("// An event.", "// Another comment.\n\n").replace(
        "  string id", "string  id"
    )
    assert fingerprints(tmp_path, "layout", relaid) == (schema, rules)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("string id = 1;\n  Inner", "int64 id = 1;\n  Inner"),  # a field's type
        ("string id = 1;\n  Inner", "string key = 1;\n  Inner"),  # a field's name
        ("Inner inner = 2;", "Inner inner = 4;"),  # a field's number
        ("message Inner {\n  string id = 1;", "message Inner {\n  bytes id = 1;"),  # a used type
        ("string id = 1;\n  Inner", "optional string id = 1;\n  Inner"),  # presence
    ],
)
def test_schema_fingerprint_changes_with_the_message_and_the_types_it_uses(
    tmp_path: Path, old: str, new: str
) -> None:
    assert old in BASE
    schema, rules = fingerprints(tmp_path, "base", BASE)
    other_schema, other_rules = fingerprints(tmp_path, "changed", BASE.replace(old, new, 1))
    assert other_schema != schema
    assert other_rules == rules


# -- the shipped options file -----------------------------------------------------------------


def test_committed_options_module_equals_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_options_pb2.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    committed = REPO / "damestoilet_contracts" / "proto" / "damestoilet" / "v1"
    for name in ("options_pb2.py", "options_pb2.pyi"):
        fresh = (tmp_path / "damestoilet" / "v1" / name).read_text()
        assert (committed / name).read_text() == fresh, (
            f"{name} drifted: run scripts/gen_options_pb2.sh"
        )


def test_the_options_file_ships_inside_the_package_and_is_on_every_include_path(
    tmp_path: Path,
) -> None:
    shipped, well_known = proto_include_dirs(tmp_path)[-2:]
    assert (shipped / "damestoilet" / "v1" / "options.proto").is_file()
    assert shipped.is_relative_to(REPO / "damestoilet_contracts")
    assert (well_known / "google" / "protobuf" / "descriptor.proto").is_file()
    assert proto_include_dirs(tmp_path)[0] == tmp_path.resolve()
