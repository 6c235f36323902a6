"""Field types as TypeScript: annotations, construction checks and wire conversions.

Each function takes a model :class:`TypeRef` and a :class:`TsTypes` context and returns one
TypeScript expression; what the expression uses is recorded in the :class:`TsImports` of the
module. 64-bit integers (Avro long, Protobuf int64 and its kin, ``time-micros``,
``Int64Value``) are ``bigint``; narrower ones ``number``; timestamps ``Date``; dates
``YYYY-MM-DD`` strings; decimals strings; UUIDs lowercase strings; enums their symbols; bytes
``Uint8Array``; arrays frozen arrays; maps ``ReadonlyMap<string, T>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from damestoilet_contracts.generator._ts_names import ts_str
from damestoilet_contracts.model import INT_BOUNDS, Format, Kind, TypeRef

_WRAPPER_WIDTHS = {
    "google.protobuf.Int32Value": "int32",
    "google.protobuf.UInt32Value": "uint32",
    "google.protobuf.Int64Value": "int64",
    "google.protobuf.UInt64Value": "uint64",
}
_LOGICAL_WIDTHS = {"time-millis": "int", "time-micros": "long"}
_WIDE = frozenset({"long", "int64", "uint64", "sint64", "fixed64", "sfixed64"})
# Avro timestamps: units per millisecond.
_PER_MS = {"timestamp-millis": 1, "timestamp-micros": 1000}


class TsCodegenError(Exception):
    """A type the TypeScript generator cannot express (turned into CodegenError by the caller)."""


@dataclass(slots=True)
class TsImports:
    """What one generated TypeScript module imports, collected while its code is built."""

    runtime: set[str] = field(default_factory=set)
    avro: set[str] = field(default_factory=set)
    protobuf: set[str] = field(default_factory=set)
    classes: set[tuple[str, str]] = field(default_factory=set)  # (module, class)


@dataclass(frozen=True, slots=True)
class TsTypes:
    """How named types and wire details appear in one generated TypeScript module."""

    format: Format
    module: str
    classes: Mapping[str, tuple[str, str]]  # full name -> (module, class)
    enum_numbers: Mapping[str, Mapping[str, int]]  # Protobuf enum -> symbol -> number
    avro_schemas: Mapping[str, object]  # Avro named type full name -> its JSON definition
    imports: TsImports
    decimal: tuple[int, int | None] | None = None  # the field's Avro decimal: scale, fixed size


def width(type_: TypeRef) -> str | None:
    """The wire integer type of an integer type, logical ones included."""
    if type_.width is not None:
        return type_.width
    if type_.logical in _WRAPPER_WIDTHS:
        return _WRAPPER_WIDTHS[type_.logical]
    if type_.logical in _LOGICAL_WIDTHS:
        return _LOGICAL_WIDTHS[type_.logical]
    return None


def is_bigint(type_: TypeRef) -> bool:
    """Whether an integer type is a bigint in TypeScript."""
    return width(type_) in _WIDE


def class_of(type_: TypeRef, names: TsTypes) -> str:
    """The class (or enum type) of a named type, recording its import."""
    assert type_.name is not None
    module, name = names.classes[type_.name]
    if module != names.module:
        names.imports.classes.add((module, name))
    return name


def annotation(type_: TypeRef, names: TsTypes, *, init: bool = False) -> str:
    """The TypeScript type of ``type_``; ``init``: as a constructor takes it (arrays mutable)."""
    text = _bare(type_, names, init)
    return f"{text} | null" if type_.nullable else text


def _bare(type_: TypeRef, names: TsTypes, init: bool) -> str:
    kind = type_.kind
    if kind is Kind.INT:
        return "bigint" if is_bigint(type_) else "number"
    simple = {
        Kind.STRING: "string",
        Kind.BOOL: "boolean",
        Kind.FLOAT: "number",
        Kind.BYTES: "Uint8Array",
        Kind.UUID: "string",
        Kind.DATE: "string",
        Kind.DECIMAL: "string",
        Kind.TIMESTAMP: "Date",
    }
    if kind in simple:
        if kind is Kind.TIMESTAMP and type_.logical not in (
            None,
            *_PER_MS,
            "google.protobuf.Timestamp",
        ):
            raise TsCodegenError(f"{type_.logical} has no TypeScript equivalent yet")
        return simple[kind]
    if kind in (Kind.RECORD, Kind.ENUM):
        return class_of(type_, names)
    if kind is Kind.ARRAY:
        inner = annotation(_items(type_), names, init=init)
        return f"readonly ({inner})[]"
    if kind is Kind.MAP:
        return f"ReadonlyMap<string, {annotation(_items(type_), names, init=init)}>"
    raise TsCodegenError(f"type {type_.describe()} has no TypeScript equivalent")


def _items(type_: TypeRef) -> TypeRef:
    assert type_.items is not None
    return type_.items


# -- construction checks ------------------------------------------------------------------------


def check(expr: str, label: str, type_: TypeRef, names: TsTypes) -> str:
    """An expression that checks ``expr`` (any value) and gives the value to store."""
    if type_.nullable:
        names.imports.runtime.add("checkNullable")
        inner = _check_bare("v", label, type_, names)
        return f"checkNullable({expr}, (v) => {inner})"
    return _check_bare(expr, label, type_, names)


def _check_bare(expr: str, label: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    where = ts_str(label)
    runtime = names.imports.runtime
    if kind is Kind.STRING:
        runtime.add("checkString")
        return f"checkString({where}, {expr})"
    if kind is Kind.BOOL:
        runtime.add("checkBoolean")
        return f"checkBoolean({where}, {expr})"
    if kind is Kind.FLOAT:
        runtime.add("checkNumber")
        return f"checkNumber({where}, {expr})"
    if kind is Kind.INT:
        wire = width(type_)
        low, high = INT_BOUNDS.get(wire or "", (-(2**53) + 1, 2**53 - 1))
        if is_bigint(type_):
            runtime.add("checkBigInt")
            return f"checkBigInt({where}, {expr}, {ts_str(wire or '')}, {low}n, {high}n)"
        runtime.add("checkInt")
        return f"checkInt({where}, {expr}, {ts_str(wire or 'int')}, {low}, {high})"
    if kind is Kind.BYTES:
        runtime.add("checkBytes")
        size = _fixed_size(type_, names)
        return f"checkBytes({where}, {expr}{'' if size is None else f', {size}'})"
    if kind is Kind.UUID:
        runtime.add("uuidText")
        return f"uuidText({where}, {expr})"
    if kind is Kind.DATE:
        runtime.add("dateText")
        return f"dateText({where}, {expr})"
    if kind is Kind.DECIMAL:
        runtime.add("decimalText")
        return f"decimalText({where}, {expr}, {_decimal(type_, names)[0]})"
    if kind is Kind.TIMESTAMP:
        runtime.add("checkDate")
        return f"checkDate({where}, {expr})"
    if kind is Kind.ENUM:
        runtime.add("checkSymbol")
        symbols = ", ".join(ts_str(s) for s in type_.symbols)
        return f"checkSymbol({where}, {expr}, [{symbols}] as const)"
    if kind is Kind.RECORD:
        runtime.add("checkInstance")
        return f"checkInstance({where}, {expr}, {class_of(type_, names)})"
    if kind is Kind.ARRAY:
        runtime.add("checkArray")
        inner = check("v", f"{label}[]", _items(type_), names)
        return f"checkArray({where}, {expr}, (v) => {inner})"
    if kind is Kind.MAP:
        runtime.add("checkMap")
        inner = check("v", f"{label}[]", _items(type_), names)
        return f"checkMap({where}, {expr}, (v) => {inner})"
    raise TsCodegenError(f"type {type_.describe()} cannot be checked in generated code")


def _fixed_size(type_: TypeRef, names: TsTypes) -> int | None:
    """The size of an Avro fixed type, or None."""
    node = names.avro_schemas.get(type_.name or "")
    if isinstance(node, dict) and node.get("type") == "fixed":
        return int(node["size"])
    return None


def _decimal(type_: TypeRef, names: TsTypes) -> tuple[int, int | None]:
    """(scale, fixed size or None) of the field's Avro decimal."""
    if names.decimal is None:
        raise TsCodegenError(f"{type_.describe()} without its Avro schema; this is a generator bug")
    return names.decimal


# -- Avro wire conversions --------------------------------------------------------------------


def to_avro(expr: str, type_: TypeRef, names: TsTypes) -> str:
    """The avsc datum of the TypeScript value ``expr``."""
    if type_.nullable:
        inner = _to_avro_bare("v", type_, names)
        if inner == "v":
            return expr
        names.imports.runtime.add("mapNullable")
        return f"mapNullable({expr}, (v) => {inner})"
    return _to_avro_bare(expr, type_, names)


def _to_avro_bare(expr: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    if kind is Kind.BYTES:
        names.imports.avro.add("avroBytes")
        return f"avroBytes({expr})"
    if kind is Kind.TIMESTAMP:
        per_ms = _PER_MS[type_.logical or ""]
        return f"BigInt({expr}.getTime())" + (f" * {per_ms}n" if per_ms != 1 else "")
    if kind is Kind.DATE:
        names.imports.runtime.add("dateToDays")
        return f"dateToDays({expr})"
    if kind is Kind.DECIMAL:
        scale, size = _decimal(type_, names)
        names.imports.runtime.add("decimalToBytes")
        raw = f"decimalToBytes({expr}, {scale})"
        if size is None:
            names.imports.avro.add("avroBytes")
            return f"avroBytes({raw})"
        names.imports.avro.add("decimalToFixed")
        return f"decimalToFixed({raw}, {size})"
    if kind is Kind.RECORD:
        return f"{expr}.toAvro()"
    if kind is Kind.ARRAY:
        inner = to_avro("v", _items(type_), names)
        return expr if inner == "v" else f"{expr}.map((v) => {inner})"
    if kind is Kind.MAP:
        names.imports.avro.add("avroMap")
        return f"avroMap({expr}, (v) => {to_avro('v', _items(type_), names)})"
    return expr


def from_avro(expr: str, type_: TypeRef, names: TsTypes) -> str:
    """The TypeScript value of the avsc datum ``expr`` (checked again by the constructor)."""
    if type_.nullable:
        names.imports.runtime.add("mapNullable")
        return f"mapNullable({expr} as unknown, (v) => {_from_avro_bare('v', type_, names)})"
    return _from_avro_bare(expr, type_, names)


def _from_avro_bare(expr: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    if kind is Kind.BYTES:
        names.imports.runtime.add("plainBytes")
        return f"plainBytes({expr} as Uint8Array)"
    if kind is Kind.TIMESTAMP:
        names.imports.runtime.add("dateFromUnits")
        return f"dateFromUnits({expr} as bigint, {_PER_MS[type_.logical or '']}n)"
    if kind is Kind.DATE:
        names.imports.runtime.add("daysToDate")
        return f"daysToDate({expr} as number)"
    if kind is Kind.DECIMAL:
        names.imports.runtime.add("bytesToDecimal")
        return f"bytesToDecimal({expr} as Uint8Array, {_decimal(type_, names)[0]})"
    if kind is Kind.RECORD:
        names.imports.avro.add("AvroDatum")
        return f"{class_of(type_, names)}.fromAvro({expr} as AvroDatum)"
    if kind is Kind.ARRAY:
        return f"({expr} as unknown[]).map((v) => {from_avro('v', _items(type_), names)})"
    if kind is Kind.MAP:
        names.imports.avro.add("fromAvroMap")
        return f"fromAvroMap({expr}, (v) => {from_avro('v', _items(type_), names)})"
    return f"{expr} as {_bare(type_, names, False)}"


# -- Protobuf wire conversions ----------------------------------------------------------------


def to_proto(expr: str, type_: TypeRef, names: TsTypes) -> str:
    """The @bufbuild/protobuf init value of ``expr`` (undefined for an absent value)."""
    if type_.nullable:
        return f"{expr} === null ? undefined : {_to_proto_bare(expr, type_, names)}"
    return _to_proto_bare(expr, type_, names)


def _to_proto_bare(expr: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    if kind is Kind.ENUM:
        return f"{_numbers_constant(type_, names)}[{expr}]"
    if kind is Kind.TIMESTAMP:
        names.imports.protobuf.add("timestampInit")
        return f"timestampInit({expr})"
    if kind is Kind.RECORD:
        return f"{expr}.toProto()"
    if kind is Kind.ARRAY:
        inner = _to_proto_bare("v", _items(type_), names)
        return expr if inner == "v" else f"{expr}.map((v) => {inner})"
    if kind is Kind.MAP:
        names.imports.protobuf.add("protoMap")
        return f"protoMap({expr}, (v) => {_to_proto_bare('v', _items(type_), names)})"
    return expr


def from_proto(expr: str, type_: TypeRef, names: TsTypes) -> str:
    """The TypeScript value of the decoded field value ``expr`` (undefined when absent)."""
    if type_.nullable:
        names.imports.runtime.add("mapNullable")
        return f"mapNullable({expr}, (v) => {_from_proto_bare('v', type_, names)})"
    return _from_proto_bare(expr, type_, names)


def _from_proto_bare(expr: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    if kind is Kind.ENUM:
        names.imports.protobuf.add("enumSymbol")
        assert type_.name is not None
        return f"enumSymbol({ts_str(type_.name)}, {_symbols_constant(type_, names)}, {expr})"
    if kind is Kind.TIMESTAMP:
        names.imports.protobuf.add("timestampDate")
        return f"timestampDate({expr})"
    if kind is Kind.BYTES:
        names.imports.runtime.add("plainBytes")
        return f"plainBytes({expr} as Uint8Array)"
    if kind is Kind.RECORD:
        names.imports.protobuf.add("ProtoInit")
        return f"{class_of(type_, names)}.fromProto({expr} as never)"
    if kind is Kind.ARRAY:
        inner = _from_proto_bare("v", _items(type_), names)
        return f"({expr} as unknown[]).map((v) => {inner})"
    if kind is Kind.MAP:
        names.imports.protobuf.add("fromProtoMap")
        return f"fromProtoMap({expr}, (v) => {_from_proto_bare('v', _items(type_), names)})"
    return f"{expr} as {_bare(type_, names, False)}"


def _numbers_constant(type_: TypeRef, names: TsTypes) -> str:
    """The constant mapping an enum's symbols to their numbers (defined beside the enum)."""
    return f"{class_of(type_, names)}Numbers"


def _symbols_constant(type_: TypeRef, names: TsTypes) -> str:
    return f"{class_of(type_, names)}Symbols"


def avro_schema_literal(schema: object) -> str:
    """An Avro schema as a TypeScript literal for avsc: logical types lowered to their base
    types (the generated code converts them), docs, defaults and damestoilet attributes gone."""
    return json.dumps(_lower(schema), ensure_ascii=False, separators=(", ", ": "))


def _lower(node: object) -> object:
    if isinstance(node, list):
        return [_lower(n) for n in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in ("int", "long", "string", "bytes", "boolean", "float", "double", "null"):
        return kind
    out: dict[str, object] = {}
    for key, value in node.items():
        if key in ("doc", "damestoilet", "logicalType", "precision", "scale", "default", "aliases"):
            continue
        if key == "fields" and isinstance(value, list):
            out[key] = [
                {"name": f["name"], "type": _lower(f["type"])} for f in value if isinstance(f, dict)
            ]
        elif key in ("type", "items", "values"):
            out[key] = _lower(value)
        else:
            out[key] = value
    return out


# -- the JSON form ----------------------------------------------------------------------------


def from_json(expr: str, at: str, type_: TypeRef, names: TsTypes) -> str:
    """The TypeScript value of the JSON-form value ``expr`` at the ``At`` expression ``at``: a
    call of the runtime's coercers, as Python's from_dict() calls json_form's."""
    if type_.nullable:
        names.imports.runtime.add("jsonNullable")
        return f"jsonNullable({expr}, {at}, (v, at) => {_from_json_bare('v', 'at', type_, names)})"
    return _from_json_bare(expr, at, type_, names)


def _from_json_bare(expr: str, at: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    runtime = names.imports.runtime
    simple = {
        Kind.STRING: "jsonString",
        Kind.BOOL: "jsonBoolean",
        Kind.FLOAT: "jsonNumber",
        Kind.BYTES: "jsonBytes",
        Kind.UUID: "jsonUuid",
        Kind.TIMESTAMP: "jsonTimestamp",
        Kind.DATE: "jsonDate",
        Kind.DECIMAL: "jsonDecimal",
    }
    if kind in simple:
        runtime.add(simple[kind])
        return f"{simple[kind]}({expr}, {at})"
    if kind is Kind.INT:
        # The range Python's json_form checks: the model's wire type (the constructor checks
        # logical and wrapper types again).
        coercer = "jsonBigInt" if is_bigint(type_) else "jsonInt"
        runtime.add(coercer)
        if type_.width is None:
            return f"{coercer}({expr}, {at}, null, 0n, 0n)"
        low, high = INT_BOUNDS[type_.width]
        return f"{coercer}({expr}, {at}, {ts_str(type_.width)}, {low}n, {high}n)"
    if kind is Kind.ENUM:
        runtime.add("jsonSymbol")
        return f"jsonSymbol({expr}, {at}, {_symbols_list(type_)})"
    if kind is Kind.RECORD:
        return f"{class_of(type_, names)}.fromDictAt({expr}, {at})"
    if kind is Kind.ARRAY:
        runtime.add("jsonArray")
        inner = from_json("v", "at", _items(type_), names)
        return f"jsonArray({expr}, {at}, (v, at) => {inner})"
    if kind is Kind.MAP:
        runtime.add("jsonMap")
        inner = from_json("v", "at", _items(type_), names)
        return f"jsonMap({expr}, {at}, (v, at) => {inner})"
    raise TsCodegenError(f"type {type_.describe()} has no JSON form in generated code")


def _symbols_list(type_: TypeRef) -> str:
    return f"[{', '.join(ts_str(s) for s in type_.symbols)}] as const"


def to_json(expr: str, type_: TypeRef, names: TsTypes) -> str:
    """The JSON-form value of ``expr``, what ``toDict()`` holds and ``fromDict()`` takes
    (bigints stay bigints: ``toJson()`` writes them with every digit)."""
    inner = _to_json_bare("v", type_, names)
    if inner == "v":
        return expr
    if type_.nullable:
        names.imports.runtime.add("mapNullable")
        return f"mapNullable({expr}, (v) => {inner})"
    return _to_json_bare(expr, type_, names)


def _to_json_bare(expr: str, type_: TypeRef, names: TsTypes) -> str:
    kind = type_.kind
    if kind is Kind.BYTES:
        names.imports.runtime.add("bytesText")
        return f"bytesText({expr})"
    if kind is Kind.TIMESTAMP:
        names.imports.runtime.add("timestampText")
        return f"timestampText({expr})"
    if kind is Kind.RECORD:
        return f"{expr}.toDict()"
    if kind is Kind.ARRAY:
        inner = to_json("v", _items(type_), names)
        return f"[...{expr}]" if inner == "v" else f"{expr}.map((v) => {inner})"
    if kind is Kind.MAP:
        names.imports.runtime.add("mapToDict")
        inner = to_json("v", _items(type_), names)
        return f"mapToDict({expr})" if inner == "v" else f"mapToDict({expr}, (v) => {inner})"
    return expr
