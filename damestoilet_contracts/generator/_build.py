"""The naming pass: a contract set turned into the views the templates render.

Everything a template prints is decided here, in one pass over the frozen model and before any
template runs: module and class names (unique, CapWords, clear of what a module imports), field
attributes, the imports each module needs, the code of every check and flush plan, the header.
Iteration is over sorted names only, so the views, and so the files, are the same on every run.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Mapping

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts._version import __version__
from damestoilet_contracts.compiler import compile_event, flush_specs
from damestoilet_contracts.generator import _names
from damestoilet_contracts.generator._code import (
    Imports,
    Stmt,
    flatten,
    py_literal,
    py_str,
    relative_import_lines,
    split_text,
    wrapped_str,
)
from damestoilet_contracts.generator._collect import (
    CONTENT_TYPES,
    NamedType,
    assign_names,
    collect,
    header,
    modules,
    record_order,
    source_fingerprints,
    unique_aliases,
)
from damestoilet_contracts.generator._fields import (
    TypeNames,
    annotation,
    checks,
    from_json,
    from_wire,
    to_json,
    to_wire,
)
from damestoilet_contracts.generator._flush import plan_code
from damestoilet_contracts.generator._partition import partition_key_code
from damestoilet_contracts.generator._protobuf import ProtoOutput, pb2_alias, pb2_module
from damestoilet_contracts.generator._views import (
    AvroSchemaView,
    EnumMember,
    EnumView,
    EventView,
    Export,
    FieldView,
    HandlerView,
    ModuleView,
    PackageView,
    RecordView,
)
from damestoilet_contracts.model import ContractSet, EventType

# Attributes every enum member has; a symbol may not shadow them.
_ENUM_ATTRIBUTES = frozenset({"name", "value", "mro"})


def build_package(
    contracts: ContractSet, package: str, proto: ProtoOutput | None = None
) -> PackageView:
    """The views of the package generated from ``contracts``.

    ``package`` is the import name of the output (pb2 imports use it); ``proto`` is protoc's
    output when the contracts hold Protobuf events. Raises :class:`CodegenError` when a type
    has no Python equivalent or two definitions of one named type differ.
    """
    named = assign_names(
        collect(contracts, proto.declared if proto is not None else None),
        module_name=_names.module_name,
        class_name=_names.class_name,
        reserved=_names.RESERVED_MODULE_NAMES,
    )
    attrs = _attrs(named)
    views = [
        _module_view(module, members, named, attrs, contracts, proto)
        for module, members in modules(named).items()
    ]
    exports = _exports(named)
    handlers = _handlers(named, exports)
    public = _names.all_order([e.alias for e in exports] + ["EVENTS", "FLUSH_SPECS", "HANDLERS"])
    init_imports = relative_import_lines(
        [(e.module, e.name, e.alias) for e in exports]
        + [("handlers", name, name) for name in ("EVENTS", "FLUSH_SPECS", "HANDLERS")]
    )
    handler_lines = relative_import_lines((h.module, h.class_name, h.alias) for h in handlers)
    return PackageView(
        package=package,
        header=header(__version__, named.values()),
        modules=tuple(views),
        exports=tuple(exports),
        handlers=tuple(handlers),
        public=tuple(public),
        init_imports=tuple(init_imports),
        handler_import_lines=tuple(handler_lines),
        source_fingerprints=tuple(source_fingerprints(contracts).items()),
        flush_specs=tuple(flush_specs(contracts).items()),
    )


# -- names ------------------------------------------------------------------------------------


def _attrs(named: Mapping[str, NamedType]) -> dict[tuple[str, str], str]:
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
    members: list[NamedType],
    named: Mapping[str, NamedType],
    attrs: Mapping[tuple[str, str], str],
    contracts: ContractSet,
    proto: ProtoOutput | None,
) -> ModuleView:
    imports = Imports()
    classes = {item.full_name: (item.module, item.name) for item in named.values()}
    avro_schemas: list[AvroSchemaView] = []
    enums = tuple(
        _enum_view(item, proto)
        for item in sorted(members, key=lambda n: n.name)
        if item.kind == "enum"
    )
    if enums:
        imports.stdlib.add("enum")
    records: list[RecordView] = []
    for item in record_order(members):
        names = TypeNames(item.format, module, classes)
        record_view = _record_view(item, names, attrs, imports, contracts, proto)
        records.append(record_view)
        if record_view.event is not None and record_view.event.avro_schema:
            assert item.event is not None
            avro_schemas.append(
                AvroSchemaView(record_view.event.avro_schema, _schema_literal(item.event))
            )
    decode_errors = _module_imports(imports, records, members, proto)
    events = [m.event for m in members if m.event is not None]
    public = _names.all_order(
        [*(e.name for e in enums), *(r.name for r in records), *(["FANOUT_CAP"] if events else [])]
    )
    namespace = members[0].namespace if members else ""
    return ModuleView(
        path=f"{module}.py",
        header=header(__version__, members),
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
    members: list[NamedType],
    proto: ProtoOutput | None,
) -> set[str]:
    """Record the imports the module's classes need beyond their fields; returns the exception
    classes its decoders catch."""
    events = [r for r in records if r.event is not None]
    if records:
        imports.stdlib.add("dataclasses")
        imports.typing.add("Any")  # to_dict() gives dict[str, Any]
        imports.abc.add("Mapping")  # from_dict() takes Mapping[str, Any]
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
        imports.stdlib.add("json")  # to_json(), from_json()
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


def _enum_view(item: NamedType, proto: ProtoOutput | None) -> EnumView:
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
    item: NamedType,
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
        body.extend(checks(item.name, attr, f.type, names, imports))
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
                to_json=to_json(f"self.{attr}", f.type, names, imports),
                from_json=from_json(
                    f"data.get({py_str(f.name)})" if f.type.nullable else f"data[{py_str(f.name)}]",
                    f"at.field({py_str(f.name)})",
                    f.type,
                    names,
                    imports,
                ),
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
        key_expr, key_fields = partition_key_code(event, contracts.graph, attrs)
        schema_constant = ""
        if event.format == "avro":
            schema_constant = f"_{_names.constant_name(item.name)}_SCHEMA"
        event_view = EventView(
            type_name=event.full_name,
            content_type=CONTENT_TYPES[event.format],
            schema_fingerprint=event.schema_fingerprint,
            rules_fingerprint=event.rules_fingerprint,
            rules=tuple(rule.describe() for rule in event.rules),
            template_checks=code.template_checks,
            key_count=code.key_count,
            fanout=code.fanout,
            plan=code.plan,
            avro_schema=schema_constant,
            partition_key=key_expr,
            partition_key_fields=key_fields,
        )
    imports.model.add("json_form")
    required = (f"{py_str(f.name)}: {not f.type.nullable}" for f in item.type.fields)
    json_fields = "{" + ", ".join(required) + "}"
    owner = "event" if item.event is not None else "record"
    return RecordView(
        name=item.name,
        full_name=item.full_name,
        doc=doc,
        fields=tuple(fields),
        checks=tuple(flatten(body)),
        pb_class=pb_class,
        json_fields=json_fields,
        json_at=f"json_form.At({wrapped_str(owner + ' ' + item.full_name)})",
        event=event_view,
    )


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


def _exports(named: Mapping[str, NamedType]) -> list[Export]:
    aliases = unique_aliases(named, _names.pascal_case)
    exports = [Export(n.module, n.name, aliases[n.full_name]) for n in named.values()]
    return sorted(exports, key=lambda e: (e.module, e.name))


def _handlers(named: Mapping[str, NamedType], exports: list[Export]) -> list[HandlerView]:
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
