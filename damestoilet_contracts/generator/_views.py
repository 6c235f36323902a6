"""What the templates see: frozen views of the package to write, every name and line decided.

The naming pass (:mod:`._build`) builds these from the contract model before any template
runs; the templates only lay them out. Code fragments are plain strings (one line each), so a
template never computes a name, an import or an expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from damestoilet_contracts.generator._collect import Header


@dataclass(frozen=True, slots=True)
class EnumMember:
    """One member of a generated enum: Python name, value literal, whether ruff needs a noqa."""

    name: str
    value: str
    mixed_case: bool = False


@dataclass(frozen=True, slots=True)
class EnumView:
    """A generated ``enum.Enum`` for a schema enum."""

    name: str
    full_name: str
    doc: str
    members: tuple[EnumMember, ...]


@dataclass(frozen=True, slots=True)
class FieldView:
    """One dataclass field: schema name, attribute, annotation and its wire conversions."""

    name: str
    attr: str
    annotation: str
    default: str | None
    doc: str
    to_wire: str  # expression over ``self``
    from_wire: str  # expression over ``datum`` (Avro dict) or ``message`` (Protobuf)
    to_json: str  # expression over ``self``: the field's value in the JSON form
    from_json: str  # expression over ``data`` (the checked object) and ``at`` (where it sits)


@dataclass(frozen=True, slots=True)
class EventView:
    """What an event class adds to a record class: contract attributes and the flush plan."""

    type_name: str
    content_type: str
    schema_fingerprint: str
    rules_fingerprint: str
    rules: tuple[str, ...]  # each rule as written, for the docstring
    template_checks: tuple[str, ...]  # __post_init__ lines after the type checks
    key_count: tuple[str, ...]  # body of key_count()
    fanout: bool  # whether the key count depends on the payload (checked at construction)
    plan: tuple[str, ...]  # body of flush_plan(), after the cap is resolved
    avro_schema: str  # Avro: the module constant holding the parsed schema; else ""
    partition_key: tuple[str, ...] = ()  # body of partition_key()
    partition_key_fields: tuple[str, ...] = ()  # the dotted fields it reads, for its docstring


@dataclass(frozen=True, slots=True)
class RecordView:
    """A generated frozen dataclass: a nested record, or an event when ``event`` is set."""

    name: str
    full_name: str
    doc: str
    fields: tuple[FieldView, ...]
    checks: tuple[str, ...]  # __post_init__ lines: type checks and normalisation
    pb_class: str  # Protobuf: the pb2 class expression; Avro: ""
    json_fields: str  # a literal dict: schema field name -> whether the JSON form requires it
    json_at: str  # the ``json_form.At`` of the top of this record's JSON form
    event: EventView | None = None


@dataclass(frozen=True, slots=True)
class AvroSchemaView:
    """A parsed Avro schema held by a module: constant name and the schema as a literal."""

    constant: str
    literal: str


@dataclass(frozen=True, slots=True)
class ModuleView:
    """One namespace module: its imports, enums, records and events, in writing order."""

    path: str  # relative POSIX path inside the package, ``catalog_v1.py``
    header: Header
    namespace: str
    import_blocks: tuple[tuple[str, ...], ...]
    avro_schemas: tuple[AvroSchemaView, ...]
    enums: tuple[EnumView, ...]
    records: tuple[RecordView, ...]
    helpers: tuple[str, ...]  # module-level helper functions to define, sorted
    decode_errors: tuple[str, ...]  # exception classes a decoder raises on bad bytes
    public: tuple[str, ...]  # __all__ of the module, in RUF022 order


@dataclass(frozen=True, slots=True)
class Export:
    """A name the package ``__init__`` re-exports from one of its modules."""

    module: str
    name: str
    alias: str  # equal to ``name`` unless two modules define the same name


@dataclass(frozen=True, slots=True)
class HandlerView:
    """One entry of ``handlers.py``: event type, module, class and handler function names."""

    type_name: str
    module: str
    class_name: str
    alias: str
    function: str


@dataclass(frozen=True, slots=True)
class PackageView:
    """Everything to render for one schema directory."""

    package: str
    header: Header
    modules: tuple[ModuleView, ...]
    exports: tuple[Export, ...]  # sorted by module, then name
    handlers: tuple[HandlerView, ...]  # sorted by type name
    public: tuple[str, ...]  # __all__ of the package, in RUF022 order
    init_imports: tuple[str, ...]  # import lines of __init__.py, in isort order
    handler_import_lines: tuple[str, ...]  # import lines of the event classes in handlers.py
    # type name -> (op, target, mode, template) its plans may hold, sorted by type name
    flush_specs: tuple[tuple[str, tuple[tuple[str, str, str, str], ...]], ...]
    source_fingerprints: tuple[tuple[str, str], ...]  # schema path -> its events' rules hash
