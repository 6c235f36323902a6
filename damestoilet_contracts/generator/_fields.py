"""Field types as Python: annotations, construction-time checks, and wire conversions.

Every function takes a model :class:`TypeRef` and a :class:`TypeNames` context (the Python
names of named types, integer bounds, Protobuf enum numbers) and returns code fragments; what a
fragment needs imported is recorded in the :class:`Imports` passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.generator._code import Imports, Line, Stmt, for_, if_, py_str
from damestoilet_contracts.model import INT_BOUNDS, Format, Kind, TypeRef


@dataclass(frozen=True, slots=True)
class TypeNames:
    """How named types appear in one generated module."""

    format: Format
    module: str  # the module being generated
    classes: Mapping[str, tuple[str, str]]  # full name of a record or enum -> (module, class)


def annotation(type_: TypeRef, names: TypeNames, imports: Imports) -> str:
    """The Python annotation of ``type_``: ``str``, ``Sequence[int]``, ``Address | None``."""
    text = _bare_annotation(type_, names, imports)
    return f"{text} | None" if type_.nullable else text


def _bare_annotation(type_: TypeRef, names: TypeNames, imports: Imports) -> str:
    kind = type_.kind
    simple = {
        Kind.STRING: "str",
        Kind.INT: "int",
        Kind.BOOL: "bool",
        Kind.FLOAT: "float",
        Kind.BYTES: "bytes",
    }
    if kind in simple:
        return simple[kind]
    if kind is Kind.UUID:
        imports.stdlib.add("uuid")
        return "uuid.UUID"
    if kind is Kind.TIMESTAMP:
        imports.stdlib.add("datetime")
        return "datetime.datetime"
    if kind is Kind.DATE:
        imports.stdlib.add("datetime")
        return "datetime.date"
    if kind is Kind.DECIMAL:
        imports.stdlib.add("decimal")
        return "decimal.Decimal"
    if kind in (Kind.RECORD, Kind.ENUM):
        return class_of(type_, names, imports)
    if kind is Kind.ARRAY:
        # Sequence, so that a list type-checks (tags=["x"]); the event stores a tuple.
        imports.abc.add("Sequence")
        return f"Sequence[{annotation(_items(type_), names, imports)}]"
    if kind is Kind.MAP:
        imports.abc.add("Mapping")
        return f"Mapping[str, {annotation(_items(type_), names, imports)}]"
    raise CodegenError(f"type {type_.describe()} has no Python equivalent in generated code")


def class_of(type_: TypeRef, names: TypeNames, imports: Imports | None = None) -> str:
    """The class expression of a record or enum type; a class of another module is reached
    through that module, which ``imports`` then records."""
    if type_.name is None or type_.name not in names.classes:
        raise CodegenError(f"{type_.describe()} has no generated class; this is a generator bug")
    module, name = names.classes[type_.name]
    if module == names.module:
        return name
    if imports is not None:
        imports.local.add(module)
    return f"{module}.{name}"


def _items(type_: TypeRef) -> TypeRef:
    if type_.items is None:
        raise CodegenError(f"{type_.describe()} has no element type; this is a generator bug")
    return type_.items


def _expected(type_: TypeRef, names: TypeNames) -> str:
    """How a type error names the expected type: ``a str``, ``a tuple``."""
    kind = type_.kind
    words = {
        Kind.STRING: "a str",
        Kind.INT: "an int",
        Kind.BOOL: "a bool",
        Kind.FLOAT: "a float",
        Kind.BYTES: "bytes",
        Kind.UUID: "a uuid.UUID",
        Kind.TIMESTAMP: "a timezone-aware datetime.datetime",
        Kind.DATE: "a datetime.date",
        Kind.DECIMAL: "a decimal.Decimal",
        Kind.ARRAY: "a tuple (or list)",
        Kind.MAP: "a mapping",
    }
    if kind in (Kind.RECORD, Kind.ENUM):
        return class_of(type_, names)
    return words[kind]


def checks(
    owner: str,
    attr: str,
    type_: TypeRef,
    names: TypeNames,
    imports: Imports,
) -> list[Stmt]:
    """The ``__post_init__`` statements that check field ``attr`` of class ``owner``.

    Wrong types raise TypeError, integers out of their wire range ValueError, both naming the
    field. A list given for an array is turned into a tuple. Timestamps are normalised to UTC
    (and to milliseconds for Avro timestamp-millis) so that an event equals its round trip.
    """
    expr = f"self.{attr}"
    label = f"{owner}.{attr}"
    body: list[Stmt] = []
    if type_.kind is Kind.ARRAY:
        body.append(
            if_(
                f"isinstance({expr}, list)",
                [Line(f'object.__setattr__(self, "{attr}", tuple({expr}))')],
            )
        )
    body.extend(_value_checks(expr, label, type_, names, imports, depth=0, scope=attr))
    if type_.kind is Kind.TIMESTAMP:
        body.append(Line(f'object.__setattr__(self, "{attr}", {_normalise_time(expr, type_)})'))
    if type_.nullable:
        return [if_(f"{expr} is not None", body)]
    return body


def _normalise_time(expr: str, type_: TypeRef) -> str:
    text = f"{expr}.astimezone(datetime.UTC)"
    if type_.logical == "timestamp-millis":
        text = f"{text}.replace(microsecond={expr}.microsecond // 1000 * 1000)"
    return text


def _value_checks(
    expr: str,
    label: str,
    type_: TypeRef,
    names: TypeNames,
    imports: Imports,
    *,
    depth: int,
    scope: str,
) -> list[Stmt]:
    """Checks of one non-None value ``expr`` of ``type_`` (nullability handled by the caller).

    Loop variables are named after ``scope`` (the field), so that two fields' loops never
    share a variable of two types.
    """
    kind = type_.kind
    wrong = [Line(f"raise _type_error({py_str(label)}, {py_str(_expected(type_, names))}, {expr})")]
    out: list[Stmt] = []
    if kind is Kind.STRING:
        out.append(if_(f"not isinstance({expr}, str)", wrong))
    elif kind is Kind.INT:
        out.append(if_(f"not isinstance({expr}, int) or isinstance({expr}, bool)", wrong))
        wire = type_.width
        if wire is not None and wire in INT_BOUNDS:
            low, high = INT_BOUNDS[wire]
            out.append(
                if_(
                    f"not {low} <= {expr} <= {high}",
                    [Line(f"raise _range_error({py_str(label)}, {py_str(wire)}, {expr})")],
                )
            )
    elif kind is Kind.BOOL:
        out.append(if_(f"not isinstance({expr}, bool)", wrong))
    elif kind is Kind.FLOAT:
        out.append(if_(f"not isinstance({expr}, int | float) or isinstance({expr}, bool)", wrong))
    elif kind is Kind.BYTES:
        out.append(if_(f"not isinstance({expr}, bytes)", wrong))
    elif kind is Kind.UUID:
        imports.stdlib.add("uuid")
        out.append(if_(f"not isinstance({expr}, uuid.UUID)", wrong))
    elif kind is Kind.TIMESTAMP:
        imports.stdlib.add("datetime")
        out.append(
            if_(f"not isinstance({expr}, datetime.datetime) or {expr}.tzinfo is None", wrong)
        )
    elif kind is Kind.DATE:
        imports.stdlib.add("datetime")
        out.append(
            if_(
                f"not isinstance({expr}, datetime.date) or isinstance({expr}, datetime.datetime)",
                wrong,
            )
        )
    elif kind is Kind.DECIMAL:
        imports.stdlib.add("decimal")
        out.append(if_(f"not isinstance({expr}, decimal.Decimal)", wrong))
    elif kind in (Kind.RECORD, Kind.ENUM):
        out.append(if_(f"not isinstance({expr}, {class_of(type_, names, imports)})", wrong))
    elif kind is Kind.ARRAY:
        items = _items(type_)
        item = _loop_name("item", depth, scope)
        out.append(if_(f"not isinstance({expr}, tuple)", wrong))
        inner = _value_checks(
            item, f"{label}[]", items, names, imports, depth=depth + 1, scope=scope
        )
        if items.nullable:
            inner = [if_(f"{item} is not None", inner)] if inner else []
        if inner:
            out.append(for_(item, expr, inner))
    elif kind is Kind.MAP:
        imports.abc.add("Mapping")
        items = _items(type_)
        key, value = _loop_name("key", depth, scope), _loop_name("value", depth, scope)
        out.append(if_(f"not isinstance({expr}, Mapping)", wrong))
        key_wrong = Line(f'raise _type_error({py_str(label + "[key]")}, "a str key", {key})')
        entry: list[Stmt] = [if_(f"not isinstance({key}, str)", [key_wrong])]
        value_checks = _value_checks(
            value, f"{label}[]", items, names, imports, depth=depth + 1, scope=scope
        )
        if items.nullable and value_checks:
            value_checks = [if_(f"{value} is not None", value_checks)]
        entry.extend(value_checks)
        out.append(for_(f"{key}, {value}", f"{expr}.items()", entry))
    else:
        raise CodegenError(f"type {type_.describe()} cannot be checked in generated code")
    return out


def _loop_name(base: str, depth: int, scope: str = "") -> str:
    name = f"{scope}_{base}" if scope else base
    return name if depth == 0 else f"{name}_{depth}"


# -- wire conversions -------------------------------------------------------------------------


def to_wire(expr: str, type_: TypeRef, names: TypeNames, imports: Imports, depth: int = 0) -> str:
    """The wire value of ``expr`` (Avro datum or Protobuf constructor argument)."""
    inner = _to_wire_bare(expr, type_, names, imports, depth)
    if type_.nullable and inner != expr:
        return f"None if {expr} is None else {inner}"
    return inner


def _to_wire_bare(expr: str, type_: TypeRef, names: TypeNames, imports: Imports, depth: int) -> str:
    kind = type_.kind
    proto = names.format == "proto"
    if kind is Kind.ENUM:
        # Protobuf constructors take an enum by name (typed so in the pyi), Avro by symbol.
        return f"{expr}.name" if proto else f"{expr}.value"
    if kind is Kind.RECORD:
        return f"{expr}._to_pb()" if proto else f"{expr}._to_avro()"
    if proto and is_wrapper(type_):
        return f'{{"value": {expr}}}'
    if kind is Kind.ARRAY:
        item = _loop_name("item", depth)
        converted = to_wire(item, _items(type_), names, imports, depth + 1)
        if converted == item:
            return expr if proto else f"list({expr})"
        return f"[{converted} for {item} in {expr}]"
    if kind is Kind.MAP:
        key, value = _loop_name("key", depth), _loop_name("value", depth)
        converted = to_wire(value, _items(type_), names, imports, depth + 1)
        if proto and _items(type_).kind is Kind.ENUM:
            # protoc's stubs type enum map values as the pb2 enum class, which at run time is
            # a plain int; _enum_number hands the number over as Any.
            imports.helpers.add("_enum_number")
            converted = f"_enum_number({value})"
        if converted == value:
            return f"dict({expr})"
        return f"{{{key}: {converted} for {key}, {value} in {expr}.items()}}"
    return expr


def from_wire(
    source: str,
    type_: TypeRef,
    names: TypeNames,
    imports: Imports,
    *,
    presence: str | None = None,
    depth: int = 0,
) -> str:
    """The Python value of the wire value ``source``.

    For Avro ``source`` is a datum (None for null); for Protobuf a message attribute, and
    ``presence`` is the ``HasField`` test for fields with presence.
    """
    inner = _from_wire_bare(source, type_, names, imports, depth)
    if not type_.nullable:
        return inner
    if presence is not None:
        return f"{inner} if {presence} else None"
    if inner == source:
        return source
    return f"None if {source} is None else {inner}"


def _from_wire_bare(
    source: str, type_: TypeRef, names: TypeNames, imports: Imports, depth: int
) -> str:
    kind = type_.kind
    proto = names.format == "proto"
    if kind is Kind.ENUM and proto:
        # Protobuf enums are open: a newer writer may send a number this code does not know.
        imports.helpers.add("_enum_member")
        return f"_enum_member({class_of(type_, names, imports)}, {source})"
    if kind is Kind.ENUM:
        return f"{class_of(type_, names, imports)}({source})"
    if kind is Kind.RECORD:
        method = "_from_pb" if proto else "_from_avro"
        return f"{class_of(type_, names, imports)}.{method}({source})"
    if kind is Kind.TIMESTAMP and proto:
        imports.stdlib.add("datetime")
        return f"{source}.ToDatetime(tzinfo=datetime.UTC)"
    if proto and is_wrapper(type_):
        return f"{source}.value"
    if kind is Kind.ARRAY:
        item = _loop_name("item", depth)
        converted = from_wire(item, _items(type_), names, imports, depth=depth + 1)
        if converted == item:
            return f"tuple({source})"
        return f"tuple({converted} for {item} in {source})"
    if kind is Kind.MAP:
        key, value = _loop_name("key", depth), _loop_name("value", depth)
        converted = from_wire(value, _items(type_), names, imports, depth=depth + 1)
        if converted == value:
            return f"dict({source})"
        return f"{{{key}: {converted} for {key}, {value} in {source}.items()}}"
    return source


def is_wrapper(type_: TypeRef) -> bool:
    """Whether a Protobuf field is a well-known wrapper message, ``google.protobuf.StringValue``."""
    logical = type_.logical or ""
    return logical.startswith("google.protobuf.") and logical.endswith("Value")


# -- the JSON form ----------------------------------------------------------------------------


def from_json(source: str, at: str, type_: TypeRef, names: TypeNames, imports: Imports) -> str:
    """The typed value of the JSON-form value ``source`` at the ``json_form.At`` expression
    ``at``: a call of the shared coercers (``damestoilet_contracts.model.json_form``)."""
    imports.model.add("json_form")
    return f"{json_coercer(type_, names, imports)}({source}, {at})"


def json_coercer(type_: TypeRef, names: TypeNames, imports: Imports) -> str:
    """The expression of the ``json_form`` coercer of ``type_``."""
    inner = _bare_json_coercer(type_, names, imports)
    return f"json_form.nullable({inner})" if type_.nullable else inner


def _bare_json_coercer(type_: TypeRef, names: TypeNames, imports: Imports) -> str:
    kind = type_.kind
    simple = {
        Kind.STRING: "string",
        Kind.BOOL: "boolean",
        Kind.FLOAT: "floating",
        Kind.BYTES: "binary",
        Kind.UUID: "uuid_value",
        Kind.TIMESTAMP: "timestamp",
        Kind.DATE: "date",
        Kind.DECIMAL: "decimal_number",
    }
    if kind in simple:
        return f"json_form.{simple[kind]}"
    if kind is Kind.INT:
        wire = py_str(type_.width) if type_.width is not None else "None"
        return f"json_form.integer({wire})"
    if kind is Kind.ENUM:
        symbol = "name" if names.format == "proto" else "value"
        return f'json_form.enum_of({class_of(type_, names, imports)}, "{symbol}")'
    if kind is Kind.RECORD:
        return f"{class_of(type_, names, imports)}._from_dict"
    if kind is Kind.ARRAY:
        return f"json_form.array_of({json_coercer(_items(type_), names, imports)})"
    if kind is Kind.MAP:
        return f"json_form.map_of({json_coercer(_items(type_), names, imports)})"
    raise CodegenError(f"type {type_.describe()} has no JSON form in generated code")


def to_json(expr: str, type_: TypeRef, names: TypeNames, imports: Imports, depth: int = 0) -> str:
    """The JSON-form value of ``expr``, what ``to_dict()`` holds and ``from_dict()`` takes."""
    inner = _to_json_bare(expr, type_, names, imports, depth)
    if type_.nullable and inner != expr:
        return f"None if {expr} is None else {inner}"
    return inner


def _to_json_bare(expr: str, type_: TypeRef, names: TypeNames, imports: Imports, depth: int) -> str:
    kind = type_.kind
    if kind is Kind.BYTES:
        imports.model.add("json_form")
        return f"json_form.dump_bytes({expr})"
    if kind is Kind.TIMESTAMP:
        imports.model.add("json_form")
        return f"json_form.dump_timestamp({expr})"
    if kind in (Kind.UUID, Kind.DECIMAL):
        return f"str({expr})"
    if kind is Kind.DATE:
        return f"{expr}.isoformat()"
    if kind is Kind.ENUM:
        return f"{expr}.name" if names.format == "proto" else f"{expr}.value"
    if kind is Kind.RECORD:
        return f"{expr}.to_dict()"
    if kind is Kind.ARRAY:
        item = _loop_name("item", depth)
        converted = to_json(item, _items(type_), names, imports, depth + 1)
        if converted == item:
            return f"list({expr})"
        return f"[{converted} for {item} in {expr}]"
    if kind is Kind.MAP:
        key, value = _loop_name("key", depth), _loop_name("value", depth)
        converted = to_json(value, _items(type_), names, imports, depth + 1)
        if converted == value:
            return f"dict({expr})"
        return f"{{{key}: {converted} for {key}, {value} in {expr}.items()}}"
    return expr
