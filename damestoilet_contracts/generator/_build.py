"""The naming pass: a contract set turned into the views the templates render.

Everything a template prints is decided here, in one pass over the frozen model and before any
template runs: module and class names (unique, CapWords, clear of what a module imports), field
attributes, the imports each module needs, the code of every check and flush plan, the header.
Iteration is over sorted names only, so the views, and so the files, are the same on every run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import keyword
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts._version import __version__
from damestoilet_contracts.compiler import compile_event
from damestoilet_contracts.generator import _names
from damestoilet_contracts.generator._code import (
    Imports,
    Stmt,
    flatten,
    py_literal,
    py_str,
    relative_import_lines,
    split_text,
)
from damestoilet_contracts.generator._fields import (
    TypeNames,
    annotation,
    checks,
    from_wire,
    to_wire,
)
from damestoilet_contracts.generator._flush import plan_code
from damestoilet_contracts.generator._protobuf import ProtoOutput, pb2_alias, pb2_module
from damestoilet_contracts.generator._views import (
    AvroSchemaView,
    EnumMember,
    EnumView,
    EventView,
    Export,
    FieldView,
    HandlerView,
    Header,
    ModuleView,
    PackageView,
    RecordView,
)
from damestoilet_contracts.model import ContractSet, EventType, Field, Format, Kind, TypeRef

_CONTENT_TYPES = {"avro": "avro/binary", "proto": "application/x-protobuf"}
# Attributes every enum member has; a symbol may not shadow them.
_ENUM_ATTRIBUTES = frozenset({"name", "value", "mro"})


@dataclass(slots=True)
class _Named:
    """A class to generate: an event, a record or an enum, with where it goes."""

    full_name: str
    kind: str  # "event", "record" or "enum"
    format: Format
    type: TypeRef
    namespace: str
    candidates: tuple[str, ...]  # class names to try, in order
    module: str = ""
    name: str = ""
    event: EventType | None = None
    sources: set[str] = field(default_factory=set)


def build_package(
    contracts: ContractSet, package: str, proto: ProtoOutput | None = None
) -> PackageView:
    """The views of the package generated from ``contracts``.

    ``package`` is the import name of the output (pb2 imports use it); ``proto`` is protoc's
    output when the contracts hold Protobuf events. Raises :class:`CodegenError` when a type
    has no Python equivalent or two definitions of one named type differ.
    """
    root = contracts.root
    named = _collect(contracts, proto, root)
    modules = _assign_modules(named)
    attrs = _attrs(named)
    views: list[ModuleView] = []
    for module in sorted(modules):
        members = [n for n in named.values() if n.module == module]
        views.append(_module_view(module, members, named, attrs, contracts, proto))
    exports = _exports(named)
    handlers = _handlers(named, exports)
    public = _names.all_order([e.alias for e in exports] + ["EVENTS", "HANDLERS"])
    events = [n.event for n in named.values() if n.event is not None]
    header = Header(
        __version__,
        tuple(sorted({s for n in named.values() for s in n.sources})),
        _rules_fingerprint(events),
    )
    init_imports = relative_import_lines(
        [(e.module, e.name, e.alias) for e in exports]
        + [("handlers", "EVENTS", "EVENTS"), ("handlers", "HANDLERS", "HANDLERS")]
    )
    handler_lines = relative_import_lines((h.module, h.class_name, h.alias) for h in handlers)
    by_source: dict[str, list[EventType]] = {}
    for event in events:
        by_source.setdefault(_relative(event.location.path, root), []).append(event)
    return PackageView(
        package=package,
        header=header,
        modules=tuple(views),
        exports=tuple(exports),
        handlers=tuple(handlers),
        public=tuple(public),
        init_imports=tuple(init_imports),
        handler_import_lines=tuple(handler_lines),
        source_fingerprints=tuple(
            sorted((source, _rules_fingerprint(found)) for source, found in by_source.items())
        ),
    )


# -- collecting the named types ---------------------------------------------------------------


def _collect(contracts: ContractSet, proto: ProtoOutput | None, root: str) -> dict[str, _Named]:
    named: dict[str, _Named] = {}
    for full_name in sorted(contracts.events):
        event = contracts.events[full_name]
        record = TypeRef(Kind.RECORD, name=full_name, fields=event.fields)
        item = _new_named(full_name, "event", event.format, record, proto)
        item.event = event
        item.sources.add(_relative(event.location.path, root))
        named[full_name] = item
    for full_name in sorted(contracts.events):
        event = contracts.events[full_name]
        _walk(event.fields, event.format, named, proto, root, named[full_name])
    return dict(sorted(named.items()))


def _walk(
    fields: Iterable[Field],
    format_: Format,
    named: dict[str, _Named],
    proto: ProtoOutput | None,
    root: str,
    owner: _Named,
) -> None:
    for item in fields:
        owner.sources.add(_relative(item.location.path, root))
        _walk_type(item.type, format_, named, proto, root, owner)


def _walk_type(
    type_: TypeRef,
    format_: Format,
    named: dict[str, _Named],
    proto: ProtoOutput | None,
    root: str,
    owner: _Named,
) -> None:
    if type_.items is not None:
        _walk_type(type_.items, format_, named, proto, root, owner)
        return
    if type_.kind not in (Kind.RECORD, Kind.ENUM) or type_.name is None:
        return
    kind = "record" if type_.kind is Kind.RECORD else "enum"
    existing = named.get(type_.name)
    if existing is not None:
        if existing.kind == "event" and kind == "record":
            return  # an event used as a field type is generated once, as the event
        if existing.format != format_ or existing.kind != kind:
            raise CodegenError(
                f"type {type_.name} is defined both as {existing.format} {existing.kind} and as "
                f"{format_} {kind}; give one of them another name"
            )
        if kind == "record" and type_.fields and not existing.type.fields:
            existing.type = _plain(type_)  # the earlier one was a cut recursive reference
        elif kind == "record" and type_.fields and _plain(type_) != existing.type:
            raise CodegenError(
                f"record {type_.name} has two different definitions; keep one (damestoilet "
                "lint reports where)"
            )
        return
    item = _new_named(type_.name, kind, format_, _plain(type_), proto)
    named[type_.name] = item
    item.sources.update(_relative(f.location.path, root) for f in type_.fields)
    _walk(type_.fields, format_, named, proto, root, owner)


def _plain(type_: TypeRef) -> TypeRef:
    """A named type as declared, not as used: not nullable."""
    return TypeRef(
        type_.kind,
        name=type_.name,
        symbols=type_.symbols,
        fields=type_.fields,
        logical=type_.logical,
    )


def _new_named(
    full_name: str, kind: str, format_: Format, type_: TypeRef, proto: ProtoOutput | None
) -> _Named:
    if format_ == "proto":
        if proto is None or full_name not in proto.declared:
            raise CodegenError(f"protoc did not declare {full_name}; this is a generator bug")
        declared = proto.declared[full_name]
        path = declared.attribute.split(".")
        candidates = (path[-1], "".join(_names.pascal_case(p) for p in path))
        return _Named(full_name, kind, format_, type_, declared.package, candidates)
    namespace, _, short = full_name.rpartition(".")
    joined = "".join(_names.pascal_case(p) for p in full_name.split("."))
    return _Named(full_name, kind, format_, type_, namespace, (short, joined))


@functools.lru_cache(maxsize=4096)
def _relative(path: str, root: str) -> str:
    """A schema path relative to the schema root, POSIX; the file name when it is elsewhere."""
    for candidate, anchor in (
        (PurePath(path), PurePath(root)),
        (Path(path).resolve(), Path(root).resolve()),
    ):
        try:
            return candidate.relative_to(anchor).as_posix()
        except ValueError:
            continue
    return PurePath(path).name


# -- names ------------------------------------------------------------------------------------


def _assign_modules(named: dict[str, _Named]) -> set[str]:
    by_namespace: dict[str, str] = {}
    for namespace in sorted({n.namespace for n in named.values()}):
        by_namespace[namespace] = _names.unique(
            _names.module_name(namespace), by_namespace.values(), separator="_"
        )
    modules = set(by_namespace.values())
    order = {"event": 0, "record": 1, "enum": 2}
    taken: dict[str, set[str]] = {m: set(_names.RESERVED_MODULE_NAMES) for m in modules}
    for item in sorted(named.values(), key=lambda n: (order[n.kind], n.full_name)):
        item.module = by_namespace[item.namespace]
        used = taken[item.module]
        first = _names.class_name(item.candidates[0])
        if first in used and len(item.candidates) > 1:
            first = _names.class_name(item.candidates[1], used)
        item.name = _names.unique(first, used, separator="")
        used.add(item.name)
    return modules


def _attrs(named: Mapping[str, _Named]) -> dict[tuple[str, str], str]:
    """The attribute of every field of every generated record, by (record, field)."""
    attrs: dict[tuple[str, str], str] = {}
    for item in named.values():
        if item.kind == "enum":
            continue
        taken: set[str] = set()
        for f in item.type.fields:
            attr = _names.attribute_name(f.name, taken)
            taken.add(attr)
            attrs[(item.full_name, f.name)] = attr
    return attrs


# -- one module -------------------------------------------------------------------------------


def _module_view(
    module: str,
    members: list[_Named],
    named: Mapping[str, _Named],
    attrs: Mapping[tuple[str, str], str],
    contracts: ContractSet,
    proto: ProtoOutput | None,
) -> ModuleView:
    imports = Imports()
    classes = {item.full_name: (item.module, item.name) for item in named.values()}
    int_types: dict[tuple[str, str], str] = dict(proto.int_types) if proto is not None else {}
    avro_schemas: list[AvroSchemaView] = []
    for item in members:
        if item.format == "avro" and item.event is not None:
            int_types.update(_avro_int_types(item.event))
    enums = tuple(
        _enum_view(item, proto)
        for item in sorted(members, key=lambda n: n.name)
        if item.kind == "enum"
    )
    if enums:
        imports.stdlib.add("enum")
    records: list[RecordView] = []
    for item in _record_order(members):
        names = TypeNames(item.format, module, classes, int_types)
        record_view = _record_view(item, names, attrs, imports, contracts, proto)
        records.append(record_view)
        if record_view.event is not None and record_view.event.avro_schema:
            assert item.event is not None
            avro_schemas.append(
                AvroSchemaView(record_view.event.avro_schema, _schema_literal(item.event))
            )
    decode_errors = _module_imports(imports, records, members, proto)
    events = [m.event for m in members if m.event is not None]
    sources = sorted({s for m in members for s in m.sources})
    public = _names.all_order(
        [*(e.name for e in enums), *(r.name for r in records), *(["FANOUT_CAP"] if events else [])]
    )
    namespace = members[0].namespace if members else ""
    return ModuleView(
        path=f"{module}.py",
        header=Header(__version__, tuple(sources), _rules_fingerprint(events)),
        namespace=namespace,
        import_blocks=imports.blocks(),
        avro_schemas=tuple(avro_schemas),
        enums=enums,
        records=tuple(records),
        helpers=tuple(sorted(imports.helpers)),
        decode_errors=tuple(sorted(decode_errors)),
        public=tuple(public),
    )


def _module_imports(
    imports: Imports,
    records: list[RecordView],
    members: list[_Named],
    proto: ProtoOutput | None,
) -> set[str]:
    """Record the imports the module's classes need beyond their fields; returns the exception
    classes its decoders catch."""
    events = [r for r in records if r.event is not None]
    if records:
        imports.stdlib.add("dataclasses")
    if any(not r.pb_class for r in records):
        imports.typing.add("Any")  # _to_avro/_from_avro take and give dict[str, Any]
    if "_enum_number" in imports.helpers:
        imports.stdlib.add("enum")
        imports.typing.add("Any")
    if "_enum_member" in imports.helpers:
        imports.stdlib.add("enum")
        imports.typing.add("TypeVar")
        imports.errors.add("PayloadError")
    decode_errors: set[str] = set()
    if events:
        imports.typing.update({"ClassVar", "Final"})
        imports.model.update({"DEFAULT_FANOUT_CAP", "FlushOp", "Plan"})
        imports.errors.add("PayloadError")
    if any(not r.pb_class for r in events):
        decode_errors.update({"EOFError", "IndexError", "KeyError", "ValueError"})
        imports.stdlib.add("io")
        imports.typing.update({"Any", "cast"})
        imports.third_party.add("import fastavro")
    if any(r.pb_class for r in events):
        decode_errors.add("DecodeError")
        imports.third_party.add("from google.protobuf.message import DecodeError")
    for item in members:
        if item.format == "proto" and item.kind != "enum" and proto is not None:
            module = pb2_module(proto.declared[item.full_name].file)
            folder, _, name = module.rpartition(".")
            imports.pb2.add((f".{folder}", name, pb2_alias(proto.declared[item.full_name].file)))
    return decode_errors


def _record_order(members: list[_Named]) -> list[_Named]:
    """Records before the events that use them, each group sorted by class name."""
    records = sorted((m for m in members if m.kind == "record"), key=lambda n: n.name)
    events = sorted((m for m in members if m.kind == "event"), key=lambda n: n.name)
    return records + events


def _enum_view(item: _Named, proto: ProtoOutput | None) -> EnumView:
    members: list[EnumMember] = []
    for symbol in item.type.symbols:
        clash = keyword.iskeyword(symbol) or symbol in _ENUM_ATTRIBUTES
        if item.format == "proto":
            assert proto is not None
            if clash:
                # Generated code renders a Protobuf enum by member name, so it must be the symbol.
                raise CodegenError(
                    f"enum {item.full_name}: value {symbol} cannot be a Python enum member; "
                    "rename it"
                )
            number = proto.enum_numbers[item.full_name][symbol]
            members.append(EnumMember(symbol, str(number), _names.is_mixed_case(symbol)))
        else:
            name = f"{symbol}_" if clash else symbol
            members.append(EnumMember(name, py_str(symbol), _names.is_mixed_case(name)))
    return EnumView(item.name, item.full_name, f"The enum {item.full_name}.", tuple(members))


def _record_view(
    item: _Named,
    names: TypeNames,
    attrs: Mapping[tuple[str, str], str],
    imports: Imports,
    contracts: ContractSet,
    proto: ProtoOutput | None,
) -> RecordView:
    fields: list[FieldView] = []
    body: list[Stmt] = []
    for f in item.type.fields:
        attr = attrs[(item.full_name, f.name)]
        body.extend(checks(item.name, item.full_name, f.name, attr, f.type, names, imports))
        if item.format == "proto":
            assert proto is not None
            if (item.full_name, f.name) in proto.non_string_keys or keyword.iskeyword(f.name):
                raise CodegenError(
                    f"{item.full_name}.{f.name}: the generator supports Protobuf maps with "
                    "string keys and field names that are not Python keywords; change the field"
                )
            presence = f'message.HasField("{f.name}")' if f.type.nullable else None
            wire_from = from_wire(f"message.{f.name}", f.type, names, imports, presence=presence)
        else:
            wire_from = from_wire(f'datum["{f.name}"]', f.type, names, imports)
        fields.append(
            FieldView(
                name=f.name,
                attr=attr,
                annotation=annotation(f.type, names, imports),
                default="None" if f.type.nullable else None,
                doc=" ".join(f.doc.split()),
                to_wire=to_wire(f"self.{attr}", f.type, names, imports),
                from_wire=wire_from,
            )
        )
    if body:
        imports.helpers.add("_type_error")
    if any("_range_error" in line for line in flatten(body)):
        imports.helpers.add("_range_error")
    pb_class = ""
    if item.format == "proto":
        assert proto is not None
        declared = proto.declared[item.full_name]
        pb_class = f"{pb2_alias(declared.file)}.{declared.attribute}"
    event_view = None
    doc = f"The record {item.full_name}."
    if item.event is not None:
        event = item.event
        doc = " ".join(event.doc.split()) or f"The event {event.full_name}."
        spec = compile_event(event, contracts.graph)
        code = plan_code(event, spec, attrs, imports)
        schema_constant = ""
        if event.format == "avro":
            schema_constant = f"_{_names.constant_name(item.name)}_SCHEMA"
        event_view = EventView(
            type_name=event.full_name,
            content_type=_CONTENT_TYPES[event.format],
            schema_fingerprint=event.schema_fingerprint,
            rules_fingerprint=event.rules_fingerprint,
            rules=tuple(rule.describe() for rule in event.rules),
            template_checks=code.template_checks,
            key_count=code.key_count,
            fanout=code.fanout,
            plan=code.plan,
            avro_schema=schema_constant,
        )
    return RecordView(
        name=item.name,
        full_name=item.full_name,
        doc=doc,
        fields=tuple(fields),
        checks=tuple(flatten(body)),
        pb_class=pb_class,
        event=event_view,
    )


def _avro_int_types(event: EventType) -> dict[tuple[str, str], str]:
    """``int`` or ``long`` of every integer field of the Avro records in an event's schema."""
    found: dict[tuple[str, str], str] = {}

    def visit(node: object, namespace: str) -> None:
        if isinstance(node, list):
            for member in node:
                visit(member, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind == "record":
                name = str(node.get("name", ""))
                space = str(node.get("namespace", namespace))
                full = name if "." in name else f"{space}.{name}" if space else name
                for f in node.get("fields", []):
                    width = _int_width(f.get("type"))
                    if width is not None:
                        found[(full, str(f.get("name")))] = width
                    visit(f.get("type"), full.rpartition(".")[0])
            elif kind in ("array", "map"):
                visit(node.get("items", node.get("values")), namespace)

    try:
        visit(json.loads(event.source), event.namespace)
    except ValueError as exc:
        raise CodegenError(f"event {event.full_name}: its Avro schema is not JSON: {exc}") from exc
    return found


def _int_width(node: object) -> str | None:
    if node in ("int", "long"):
        return str(node)
    if isinstance(node, list):
        for member in node:
            width = _int_width(member)
            if width is not None:
                return width
    if isinstance(node, dict):
        if node.get("type") in ("int", "long") and "logicalType" not in node:
            return str(node["type"])
        if node.get("type") == "array":
            return _int_width(node.get("items"))
        if node.get("type") == "map":
            return _int_width(node.get("values"))
    return None


def _schema_literal(event: EventType) -> str:
    """The event's Avro schema as a Python literal, long strings split for the line limit."""
    return _literal(json.loads(event.source))


def _literal(value: object) -> str:
    if isinstance(value, str) and len(value) > 60:
        return "(" + " ".join(py_str(p) for p in split_text(value, 60)) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    return py_literal(value)


# -- package ----------------------------------------------------------------------------------


def _exports(named: Mapping[str, _Named]) -> list[Export]:
    count: dict[str, int] = {}
    for item in named.values():
        count[item.name] = count.get(item.name, 0) + 1
    exports: list[Export] = []
    for item in named.values():
        alias = item.name
        if count[item.name] > 1:
            alias = _names.pascal_case(item.module) + item.name
        exports.append(Export(item.module, item.name, alias))
    return sorted(exports, key=lambda e: (e.module, e.name))


def _handlers(named: Mapping[str, _Named], exports: list[Export]) -> list[HandlerView]:
    alias_of = {(e.module, e.name): e.alias for e in exports}
    handlers: list[HandlerView] = []
    for item in named.values():
        if item.event is None:
            continue
        alias = alias_of[(item.module, item.name)]
        handlers.append(
            HandlerView(
                type_name=item.full_name,
                module=item.module,
                class_name=item.name,
                alias=alias,
                function=f"_plan_{_names.snake_case(alias)}",
            )
        )
    return sorted(handlers, key=lambda h: h.type_name)


def _rules_fingerprint(events: Iterable[EventType]) -> str:
    """SHA-256 over the rule fingerprints of ``events``, sorted by type name."""
    text = "".join(
        f"{e.full_name} {e.rules_fingerprint}\n" for e in sorted(events, key=lambda e: e.full_name)
    )
    return hashlib.sha256(text.encode()).hexdigest()
