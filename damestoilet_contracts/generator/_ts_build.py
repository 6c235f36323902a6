"""The TypeScript naming pass: the collected types turned into the views the templates render.

The language-neutral decisions (which types, which module, which sources and fingerprints)
come from :mod:`._collect`, exactly as for Python; this pass spells them in TypeScript: class
and member names, imports, checks, wire conversions and the flush plan as code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import replace

from google.protobuf import descriptor_pb2

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts._version import __version__
from damestoilet_contracts.compiler import compile_event
from damestoilet_contracts.generator import _names, _ts_names
from damestoilet_contracts.generator._collect import (
    CONTENT_TYPES,
    NamedType,
    assign_names,
    collect,
    header,
    modules,
    record_order,
    unique_aliases,
)
from damestoilet_contracts.generator._protobuf import OPTIONS_FILE, ProtoOutput
from damestoilet_contracts.generator._ts_flush import plan_code
from damestoilet_contracts.generator._ts_names import ts_str
from damestoilet_contracts.generator._ts_partition import ts_partition_key_code
from damestoilet_contracts.generator._ts_types import (
    TsCodegenError,
    TsImports,
    TsTypes,
    annotation,
    avro_schema_literal,
    check,
    from_avro,
    from_json,
    from_proto,
    to_avro,
    to_json,
    to_proto,
)
from damestoilet_contracts.generator._ts_views import (
    TsEnumView,
    TsEventView,
    TsExport,
    TsFieldView,
    TsModuleView,
    TsPackageView,
    TsRecordView,
    TsWireConstant,
)
from damestoilet_contracts.model import ContractSet, EventType


def build_ts_package(
    contracts: ContractSet, package: str, proto: ProtoOutput | None = None
) -> TsPackageView:
    """The views of the TypeScript package generated from ``contracts``.

    Raises :class:`CodegenError` for a type TypeScript cannot express yet (a Protobuf oneof,
    an Avro ``local-timestamp`` or nanosecond timestamp) or a name collision.
    """
    try:
        return _build(contracts, package, proto)
    except TsCodegenError as exc:
        raise CodegenError(f"TypeScript: {exc}") from exc


def _build(contracts: ContractSet, package: str, proto: ProtoOutput | None) -> TsPackageView:
    named = assign_names(
        collect(contracts, proto.declared if proto is not None else None),
        module_name=_names.module_name,
        class_name=_ts_names.class_name,
        reserved=_ts_names.RESERVED_MODULE_NAMES,
    )
    _check_init_names(named)
    members = _members(named)
    avro_nodes, decimals = _avro_nodes(contracts)
    views = [
        _module_view(module, items, named, members, avro_nodes, decimals, contracts, proto)
        for module, items in modules(named).items()
    ]
    aliases = unique_aliases(named, _names.pascal_case)
    exports = sorted(
        (
            TsExport(
                n.module,
                n.name,
                aliases[n.full_name],
                n.full_name if n.event is not None else "",
                n.kind == "enum",
            )
            for n in named.values()
        ),
        key=lambda e: (e.module, e.name),
    )
    chunks: tuple[str, ...] = ()
    if proto is not None and proto.descriptor_set:
        text = base64.b64encode(_runtime_descriptors(proto.descriptor_set)).decode()
        chunks = tuple(text[i : i + 76] for i in range(0, len(text), 76))
    return TsPackageView(
        package=package,
        header=header(__version__, named.values()),
        modules=tuple(views),
        exports=tuple(exports),
        has_avro=any(n.format == "avro" for n in named.values()),
        has_proto=any(n.format == "proto" for n in named.values()),
        descriptor_chunks=chunks,
    )


def _runtime_descriptors(serialized: bytes) -> bytes:
    """The descriptor set the TypeScript runtime needs: without the damestoilet options file and
    the flush rules in message options (encoding never reads them), so that the embedded bytes
    change only when the messages do, not when the options vocabulary grows."""
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(serialized)
    kept = [f for f in descriptors.file if f.name != OPTIONS_FILE]
    out = descriptor_pb2.FileDescriptorSet()
    for file in kept:
        copy = out.file.add()
        copy.CopyFrom(file)
        names = [d for d in copy.dependency if d != OPTIONS_FILE]
        if len(names) != len(copy.dependency):
            del copy.dependency[:]
            copy.dependency.extend(names)
            del copy.public_dependency[:]
            del copy.weak_dependency[:]
        for message in copy.message_type:
            _strip_options(message)
    out.DiscardUnknownFields()
    return out.SerializeToString(deterministic=True)


def _strip_options(message: descriptor_pb2.DescriptorProto) -> None:
    if message.HasField("options"):
        map_entry = message.options.map_entry
        message.ClearField("options")
        if map_entry:
            message.options.map_entry = True
    for nested in message.nested_type:
        _strip_options(nested)


def _check_init_names(named: Mapping[str, NamedType]) -> None:
    """Each class ``X`` also defines ``XInit``; no other class may be called that."""
    by_module: dict[str, set[str]] = {}
    for item in named.values():
        by_module.setdefault(item.module, set()).add(item.name)
    for module, names in by_module.items():
        for name in sorted(names):
            if f"{name}Init" in names or f"{name}Numbers" in names or f"{name}Symbols" in names:
                raise TsCodegenError(
                    f"module {module}: class {name} would clash with {name}Init, {name}Numbers "
                    "or {name}Symbols; rename one of the types"
                )


def _members(named: Mapping[str, NamedType]) -> dict[tuple[str, str], str]:
    """The member name of every field of every generated record, by (record, field)."""
    found: dict[tuple[str, str], str] = {}
    for item in named.values():
        if item.kind == "enum":
            continue
        taken: set[str] = set()
        for f in item.type.fields:
            member = _ts_names.member_name(f.name, taken)
            taken.add(member)
            found[(item.full_name, f.name)] = member
    return found


def _avro_nodes(
    contracts: ContractSet,
) -> tuple[dict[str, object], dict[tuple[str, str], tuple[int, int | None]]]:
    """Avro named types by full name, and the decimal (scale, fixed size) of each field."""
    nodes: dict[str, object] = {}
    decimals: dict[tuple[str, str], tuple[int, int | None]] = {}

    def visit(node: object, namespace: str) -> None:
        if isinstance(node, list):
            for member in node:
                visit(member, namespace)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = str(node.get("name", ""))
            space = str(node.get("namespace", namespace))
            full = name if "." in name else f"{space}.{name}" if space else name
            nodes[full] = node
            for f in node.get("fields", []) if kind in ("record", "error") else []:
                decimal = _decimal_of(f.get("type"))
                if decimal is not None:
                    decimals[(full, str(f.get("name")))] = decimal
                visit(f.get("type"), full.rpartition(".")[0])
        elif kind in ("array", "map"):
            visit(node.get("items", node.get("values")), namespace)
        elif isinstance(kind, dict | list):
            visit(kind, namespace)

    for event in contracts.events.values():
        if event.format == "avro":
            try:
                visit(json.loads(event.source), event.namespace)
            except ValueError as exc:
                raise TsCodegenError(f"event {event.full_name}: its schema is not JSON") from exc
    return nodes, decimals


def _decimal_of(node: object) -> tuple[int, int | None] | None:
    if isinstance(node, list):
        for member in node:
            found = _decimal_of(member)
            if found is not None:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if node.get("logicalType") == "decimal" and node.get("type") in ("bytes", "fixed"):
        size = int(node["size"]) if node.get("type") == "fixed" else None
        return int(node.get("scale", 0)), size
    if node.get("type") in ("array", "map"):
        return _decimal_of(node.get("items", node.get("values")))
    if isinstance(node.get("type"), dict | list):
        return _decimal_of(node["type"])
    return None


# -- one module -------------------------------------------------------------------------------


def _module_view(
    module: str,
    items: list[NamedType],
    named: Mapping[str, NamedType],
    members: Mapping[tuple[str, str], str],
    avro_nodes: Mapping[str, object],
    decimals: Mapping[tuple[str, str], tuple[int, int | None]],
    contracts: ContractSet,
    proto: ProtoOutput | None,
) -> TsModuleView:
    imports = TsImports()
    classes = {n.full_name: (n.module, n.name) for n in named.values()}
    numbers = proto.enum_numbers if proto is not None else {}
    enums = tuple(
        _enum_view(item, numbers)
        for item in sorted(items, key=lambda n: n.name)
        if item.kind == "enum"
    )
    constants: list[TsWireConstant] = []
    records: list[TsRecordView] = []
    for item in record_order(items):
        names = TsTypes(item.format, module, classes, numbers, avro_nodes, imports)
        view = _record_view(item, names, members, decimals, contracts, proto)
        records.append(view)
        if view.wire_constant:
            constants.append(_wire_constant(item, view.wire_constant, imports))
    return TsModuleView(
        path=f"src/{module}.ts",
        header=header(__version__, items),
        namespace=items[0].namespace if items else "",
        imports=tuple(_import_lines(imports)),
        constants=tuple(constants),
        enums=enums,
        records=tuple(records),
    )


def _wire_constant(item: NamedType, name: str, imports: TsImports) -> TsWireConstant:
    if item.format == "avro":
        assert item.event is not None
        imports.avro.add("avroType")
        return TsWireConstant(
            name, f"avroType({avro_schema_literal(json.loads(item.event.source))})"
        )
    imports.protobuf.add("messageDesc")
    return TsWireConstant(name, f"messageDesc({ts_str(item.full_name)})")


def _import_lines(imports: TsImports) -> list[str]:
    lines: list[str] = []
    for source, names in (
        ("./avro.js", imports.avro),
        ("./protobuf.js", imports.protobuf),
        ("./runtime.js", imports.runtime),
    ):
        if names:
            lines.append(f"import {{ {', '.join(sorted(names))} }} from {ts_str(source)};")
    by_module: dict[str, set[str]] = {}
    for module, name in imports.classes:
        by_module.setdefault(module, set()).add(name)
    for module in sorted(by_module):
        lines.append(
            f"import {{ {', '.join(sorted(by_module[module]))} }} from {ts_str(f'./{module}.js')};"
        )
    return sorted(lines, key=lambda line: line.rpartition(" from ")[2])


def _enum_view(item: NamedType, numbers: Mapping[str, Mapping[str, int]]) -> TsEnumView:
    symbols = item.type.symbols
    pairs: tuple[tuple[str, int], ...] = ()
    if item.format == "proto":
        pairs = tuple((ts_str(s), numbers[item.full_name][s]) for s in symbols)
    return TsEnumView(
        name=item.name,
        full_name=item.full_name,
        symbols=tuple(ts_str(s) for s in symbols),
        members=tuple(f"{ts_str(s)}: {ts_str(s)}" for s in symbols),
        numbers=pairs,
    )


def _record_view(
    item: NamedType,
    names: TsTypes,
    members: Mapping[tuple[str, str], str],
    decimals: Mapping[tuple[str, str], tuple[int, int | None]],
    contracts: ContractSet,
    proto: ProtoOutput | None,
) -> TsRecordView:
    fields: list[TsFieldView] = []
    wire_constant = ""
    if item.format == "proto" or item.event is not None:
        wire_constant = (
            f"{_ts_names.constant_name(item.name)}_{'TYPE' if item.format == 'avro' else 'DESC'}"
        )
    for f in item.type.fields:
        member = members[(item.full_name, f.name)]
        label = f"{item.name}.{member}"
        field_names = replace(names, decimal=decimals.get((item.full_name, f.name)))
        if item.format == "proto":
            assert proto is not None
            if (item.full_name, f.name) in proto.oneofs:
                raise TsCodegenError(
                    f"{item.full_name}.{f.name} is part of a oneof, which the TypeScript "
                    "generator does not support yet; make it a plain field"
                )
            if (item.full_name, f.name) in proto.non_string_keys:
                raise TsCodegenError(
                    f"{item.full_name}.{f.name}: only maps with string keys are supported"
                )
            getter = "protoOptional" if f.type.nullable else "protoGet"
            names.imports.protobuf.add(getter)
            source = f"{getter}(message, {wire_constant}, {f.number})"
            wire_to = to_proto(f"this.{member}", f.type, field_names)
            wire_from = from_proto(source, f.type, field_names)
        else:
            wire_to = to_avro(f"this.{member}", f.type, field_names)
            wire_from = from_avro(f"datum[{ts_str(f.name)}]", f.type, field_names)
        fields.append(
            TsFieldView(
                name=f.name,
                member=member,
                annotation=annotation(f.type, field_names),
                init_annotation=annotation(f.type, field_names, init=True),
                optional=f.type.nullable,
                doc=" ".join(f.doc.split()),
                check=check(f"init.{member}", label, f.type, field_names),
                to_wire=wire_to,
                from_wire=wire_from,
                number=f.number,
                from_json=from_json(
                    f"data[{ts_str(f.name)}]", f"at.field({ts_str(f.name)})", f.type, field_names
                ),
                to_json=to_json(f"this.{member}", f.type, field_names),
            )
        )
    fields_of = item.type.fields
    imports = names.imports
    imports.runtime.update({"At", "jsonRecord"})
    if item.event is not None:
        imports.runtime.update({"jsonText", "parseJson"})
    if item.format == "avro":
        imports.avro.add("AvroDatum")
    else:
        imports.protobuf.update({"ProtoInit", "ProtoMessage", "protoInit"})
    event_view = None
    doc = f"The record {item.full_name}."
    if item.event is not None:
        event_view = _event_view(item.event, names, members, contracts)
        doc = " ".join(item.event.doc.split()) or f"The event {item.full_name}."
        imports.runtime.add("ContractEvent")
        if item.format == "avro":
            imports.avro.update({"encodeAvro", "decodeAvro"})
        else:
            imports.protobuf.update({"encodeProto", "decodeProto"})
    return TsRecordView(
        name=item.name,
        full_name=item.full_name,
        doc=doc,
        format=item.format,
        fields=tuple(fields),
        wire_constant=wire_constant,
        json_fields="["
        + ", ".join(f"[{ts_str(f.name)}, {str(not f.type.nullable).lower()}]" for f in fields_of)
        + "] as const",
        event=event_view,
    )


def _event_view(
    event: EventType,
    names: TsTypes,
    members: Mapping[tuple[str, str], str],
    contracts: ContractSet,
) -> TsEventView:
    spec = compile_event(event, contracts.graph)
    code = plan_code(event, spec, members, names.imports)
    key, key_fields = ts_partition_key_code(event, contracts.graph, members)
    names.imports.runtime.add("fanoutCap")
    return TsEventView(
        type_name=ts_str(event.full_name),
        content_type=ts_str(CONTENT_TYPES[event.format]),
        schema_fingerprint=ts_str(event.schema_fingerprint),
        rules_fingerprint=ts_str(event.rules_fingerprint),
        rules=tuple(rule.describe() for rule in event.rules),
        template_checks=code.template_checks,
        key_count=code.key_count,
        plan=code.plan,
        partition_key=key,
        partition_key_fields=key_fields,
    )
