"""What the TypeScript templates see: frozen views, every name and line of code decided.

Built by :mod:`._ts_build` from the collected types (:mod:`._collect`) before any template
runs. Code is plain strings; prettier lays it out afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from damestoilet_contracts.generator._collect import Header


@dataclass(frozen=True, slots=True)
class TsEnumView:
    """A string-literal union and its constant object; Protobuf enums add their numbers."""

    name: str
    full_name: str
    symbols: tuple[str, ...]  # TypeScript string literals
    members: tuple[str, ...]  # `NAME: "NAME"` entries of the constant object
    numbers: tuple[tuple[str, int], ...]  # Protobuf: (symbol literal, number); Avro: ()


@dataclass(frozen=True, slots=True)
class TsFieldView:
    """One member: schema name, member name, types, the check and the wire conversions."""

    name: str
    member: str
    annotation: str  # of the member
    init_annotation: str  # in the Init interface
    optional: bool  # nullable: may be left out of the Init object
    doc: str
    check: str  # expression over ``init.<member>``
    to_wire: str  # Avro datum value or Protobuf init value, over ``this``
    from_wire: str  # over ``datum`` (Avro) or ``message`` (Protobuf)
    number: int | None  # Protobuf field number
    from_json: str  # JSON-form coercion of ``data[<name>]`` at ``at.field(<name>)``
    to_json: str  # the JSON-form value, over ``this``


@dataclass(frozen=True, slots=True)
class TsEventView:
    """What an event class adds to a record class: contract attributes and the flush plan."""

    type_name: str
    content_type: str
    schema_fingerprint: str
    rules_fingerprint: str
    rules: tuple[str, ...]
    template_checks: tuple[str, ...]
    key_count: tuple[str, ...]
    plan: tuple[str, ...]
    partition_key: tuple[str, ...] = ('return "";',)  # body of partitionKey()
    partition_key_fields: tuple[str, ...] = ()  # the dotted fields it reads, for its doc


@dataclass(frozen=True, slots=True)
class TsRecordView:
    """A generated class: a nested record, or an event when ``event`` is set."""

    name: str
    full_name: str
    doc: str
    format: str  # "avro" or "proto"
    fields: tuple[TsFieldView, ...]
    wire_constant: str  # Avro event: its avsc Type; Protobuf: its message descriptor; else ""
    json_fields: str  # the [schema name, required] pairs fromDict() checks the object against
    event: TsEventView | None = None


@dataclass(frozen=True, slots=True)
class TsWireConstant:
    """A module constant: an avsc Type (``avroType(schema)``) or a message descriptor."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class TsModuleView:
    """One namespace module."""

    path: str  # src/catalog_v1.ts
    header: Header
    namespace: str
    imports: tuple[str, ...]  # import lines, sorted
    constants: tuple[TsWireConstant, ...]
    enums: tuple[TsEnumView, ...]
    records: tuple[TsRecordView, ...]


@dataclass(frozen=True, slots=True)
class TsExport:
    """A class the package index re-exports, and the event type when it is an event."""

    module: str
    name: str
    alias: str
    type_name: str  # "" for records and enums
    is_enum: bool


@dataclass(frozen=True, slots=True)
class TsPackageView:
    """Everything to render for one schema directory in TypeScript."""

    package: str
    header: Header
    modules: tuple[TsModuleView, ...]
    exports: tuple[TsExport, ...]
    has_avro: bool
    has_proto: bool
    descriptor_chunks: tuple[str, ...]  # base64 of the FileDescriptorSet, in pieces
