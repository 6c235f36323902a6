"""The JSON form of a payload: JSON-shaped values checked and turned into typed ones, and back.

One set of rules (docs/codegen.md, "The JSON form") for every way a payload comes in as JSON:
the generated ``from_dict()`` / ``from_json()`` call the coercers here field by field, and
``damestoilet plan`` and ``damestoilet emit`` (through :func:`payload_from_json`, which builds
the same coercers from the contract model) check their ``--json`` with them. So one payload is
accepted, or refused with the same message, by all three.

A coercer takes a value and where it sits (:class:`At`) and returns the typed value, or raises
:class:`PayloadError` naming the field, what it must be and what it got. A value that already
has the field's Python type (a ``datetime``, a ``uuid.UUID``, an enum member, ``bytes``) is
taken as it is, so Python callers may pass either form.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import difflib
import enum
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from damestoilet_contracts._errors import PayloadError
from damestoilet_contracts.model._contract import EventType
from damestoilet_contracts.model._types import INT_BOUNDS, Kind, TypeRef

__all__ = [
    "At",
    "Coercer",
    "array_of",
    "binary",
    "boolean",
    "date",
    "decimal_number",
    "dump_bytes",
    "dump_timestamp",
    "enum_of",
    "floating",
    "integer",
    "map_of",
    "nullable",
    "payload_from_json",
    "payload_to_json",
    "record_fields",
    "string",
    "symbol_of",
    "timestamp",
    "uuid_value",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339: a date, "T" (or a space), a time, then Z or an offset; fromisoformat reads it.
_TIMESTAMP_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class At:
    """Where a value sits: the event it belongs to and the path of its field in the payload
    (``address.city``, ``store_ids[1]``, ``labels['en']``)."""

    owner: str  # "event catalog.v1.ProductPriceChanged"
    path: str = ""

    @classmethod
    def event(cls, type_name: str) -> At:
        """The top of a payload of the event ``type_name``."""
        return cls(f"event {type_name}")

    def field(self, name: str) -> At:
        """The field ``name`` of the record here."""
        return At(self.owner, f"{self.path}.{name}" if self.path else name)

    def item(self, index: int) -> At:
        """Element ``index`` of the array here."""
        return At(self.owner, f"{self.path}[{index}]")

    def key(self, key: str) -> At:
        """The value under ``key`` of the map here."""
        return At(self.owner, f"{self.path}[{key!r}]")

    def wrong(self, expected: str, value: object) -> PayloadError:
        """The error for ``value``, which is not ``expected``."""
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        where = f"field {self.path!r}" if self.path else "the payload"
        return PayloadError(
            f"{self.owner}: {where} must be {expected}, got {_json_type(value)} {shown}"
        )


#: Turns a JSON-shaped value at a place into the typed value, or raises PayloadError.
Coercer = Callable[[object, At], T]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


# -- records ----------------------------------------------------------------------------------


def record_fields(value: object, at: At, fields: Mapping[str, bool]) -> Mapping[str, Any]:
    """``value`` as the object of a record whose fields are ``fields`` (name -> required).

    Raises :class:`PayloadError` when it is not an object, names a field the record does not
    have (with the closest one), or lacks a required field or holds null in one.
    """
    if not isinstance(value, Mapping):
        raise at.wrong("an object (the fields by name)", value)
    unknown = sorted(str(name) for name in value if name not in fields)
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, list(fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        others = f" (and {', '.join(repr(n) for n in unknown[1:])})" if unknown[1:] else ""
        where = f" of {at.path!r}" if at.path else ""
        raise PayloadError(
            f"{at.owner}: unknown field {name!r}{where}{others}{hint} "
            f"(the fields are: {', '.join(fields)})"
        )
    for name, required in fields.items():
        if required and value.get(name) is None:
            state = "missing" if name not in value else "null"
            raise PayloadError(
                f"{at.owner}: required field {at.field(name).path!r} is {state}; give it a value"
            )
    return value


# -- scalars ----------------------------------------------------------------------------------


def string(value: object, at: At) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise at.wrong("a string", value)
    return value


def integer(wire: str | None) -> Coercer[int]:
    """A coercer of integers of the wire type ``wire`` (``long``, ``uint32``; None: any): a
    JSON integer, or decimal text as Protobuf's JSON writes 64-bit integers (``"-12"``)."""
    bounds = INT_BOUNDS.get(wire) if wire is not None else None

    def coerce(value: object, at: At) -> int:
        number = int(value) if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value) else value
        if isinstance(number, bool) or not isinstance(number, int):
            raise at.wrong("an integer (a JSON number or decimal text)", value)
        if bounds is not None and not bounds[0] <= number <= bounds[1]:
            raise PayloadError(
                f"{at.owner}: field {at.path!r} = {number} does not fit the wire type {wire} "
                f"({bounds[0]} to {bounds[1]})"
            )
        return number

    return coerce


def boolean(value: object, at: At) -> bool:
    """JSON true or false."""
    if not isinstance(value, bool):
        raise at.wrong("true or false", value)
    return value


def floating(value: object, at: At) -> float:
    """A JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise at.wrong("a number", value)
    return float(value)


def binary(value: object, at: At) -> bytes:
    """Base64 text (standard alphabet, padded), or bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    raise at.wrong("base64 text", value)


def dump_bytes(value: bytes) -> str:
    """Bytes in the JSON form: base64 text."""
    return base64.b64encode(value).decode("ascii")


def uuid_value(value: object, at: At) -> uuid.UUID:
    """A UUID as text, 8-4-4-4-12 hex digits in either case, or a ``uuid.UUID``."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _UUID_TEXT.fullmatch(value):
        return uuid.UUID(value)
    raise at.wrong("a UUID (8-4-4-4-12 hex digits)", value)


def timestamp(value: object, at: At) -> datetime.datetime:
    """An RFC 3339 timestamp with its offset (``2026-01-02T03:04:05.123Z``), or an aware
    ``datetime``; a time without an offset is refused, not guessed."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str) and _TIMESTAMP_TEXT.fullmatch(value):
        try:
            return datetime.datetime.fromisoformat(_micros(value))
        except ValueError:
            pass
    raise at.wrong("an RFC 3339 timestamp with an offset, such as 2026-01-02T03:04:05Z", value)


def _micros(text: str) -> str:
    # Python keeps microseconds: more digits (Protobuf's nanoseconds) are cut, not rounded.
    return re.sub(r"\.([0-9]{6})[0-9]+", r".\1", text)


def dump_timestamp(value: datetime.datetime) -> str:
    """A timestamp in the JSON form: RFC 3339, ``Z`` for UTC."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def date(value: object, at: At) -> datetime.date:
    """A date as ``YYYY-MM-DD``, or a ``datetime.date`` (not a datetime)."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise at.wrong("a date as YYYY-MM-DD", value)


def decimal_number(value: object, at: At) -> decimal.Decimal:
    """A decimal as text (``"12.30"``: a JSON number would already have lost digits), or a
    finite ``decimal.Decimal``."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return value
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return decimal.Decimal(value)
    raise at.wrong('a decimal as text, such as "12.30"', value)


def enum_of(enum_class: type[E], symbol: Literal["name", "value"]) -> Coercer[E]:
    """A coercer of a generated enum: its symbol as text, or a member. ``symbol`` says which
    attribute of a member is the schema's symbol (Avro members hold it, Protobuf ones are it)."""
    members = {str(getattr(m, symbol)): m for m in enum_class}

    def coerce(value: object, at: At) -> E:
        if isinstance(value, enum_class):
            return value
        member = members.get(value) if isinstance(value, str) else None
        if member is None:
            raise at.wrong(_symbols_text(members), value)
        return member

    return coerce


def symbol_of(symbols: Iterable[str]) -> Coercer[str]:
    """A coercer of an enum known by its symbols only (no generated class): the symbol."""
    known = tuple(symbols)

    def coerce(value: object, at: At) -> str:
        if isinstance(value, enum.Enum):
            value = value.name
        if not isinstance(value, str) or value not in known:
            raise at.wrong(_symbols_text(known), value)
        return value

    return coerce


def _symbols_text(symbols: Iterable[str]) -> str:
    return f"one of the symbols {', '.join(symbols)}"


# -- containers -------------------------------------------------------------------------------


def array_of(item: Coercer[T]) -> Coercer[tuple[T, ...]]:
    """A coercer of a JSON array whose elements ``item`` coerces; gives a tuple."""

    def coerce(value: object, at: At) -> tuple[T, ...]:
        if not isinstance(value, list | tuple):
            raise at.wrong("an array", value)
        return tuple(item(element, at.item(index)) for index, element in enumerate(value))

    return coerce


def map_of(item: Coercer[T]) -> Coercer[dict[str, T]]:
    """A coercer of a JSON object with string keys whose values ``item`` coerces."""

    def coerce(value: object, at: At) -> dict[str, T]:
        if not isinstance(value, Mapping):
            raise at.wrong("an object (a map with string keys)", value)
        out: dict[str, T] = {}
        for key, element in value.items():
            if not isinstance(key, str):
                raise at.wrong("an object with string keys", key)
            out[key] = item(element, at.key(key))
        return out

    return coerce


def nullable(inner: Coercer[T]) -> Coercer[T | None]:
    """A coercer that lets null (None) through and hands other values to ``inner``."""

    def coerce(value: object, at: At) -> T | None:
        return None if value is None else inner(value, at)

    return coerce


# -- from the contract model, for payloads without generated code -----------------------------


def payload_from_json(event: EventType, data: object) -> dict[str, Any]:
    """``data``, a JSON-shaped payload of ``event``, checked and typed by the JSON form.

    Returns every field of the event by its schema name (None for an absent nullable one):
    records as dicts, arrays as tuples, enums by symbol, timestamps as aware datetimes,
    UUIDs, dates, decimals and bytes as their Python types. Raises :class:`PayloadError` as
    the generated ``from_dict()`` of the event would.
    """
    result: dict[str, Any] = _coercer(event.record)(data, At.event(event.full_name))
    return result


def payload_to_json(event: EventType, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload as :func:`payload_from_json` gives it, back in the JSON form (what the
    generated ``to_dict()`` gives, and what Protobuf's JSON parser reads)."""
    result: dict[str, Any] = _dumper(event.record)(payload)
    return result


def _coercer(type_: TypeRef) -> Coercer[Any]:
    inner = _bare_coercer(type_)
    return nullable(inner) if type_.nullable else inner


def _bare_coercer(type_: TypeRef) -> Coercer[Any]:
    kind = type_.kind
    simple: dict[Kind, Coercer[Any]] = {
        Kind.STRING: string,
        Kind.BOOL: boolean,
        Kind.FLOAT: floating,
        Kind.BYTES: binary,
        Kind.UUID: uuid_value,
        Kind.TIMESTAMP: timestamp,
        Kind.DATE: date,
        Kind.DECIMAL: decimal_number,
    }
    if kind in simple:
        return simple[kind]
    if kind is Kind.INT:
        return integer(type_.width)
    if kind is Kind.ENUM:
        return symbol_of(type_.symbols)
    if kind is Kind.ARRAY and type_.items is not None:
        return array_of(_coercer(type_.items))
    if kind is Kind.MAP and type_.items is not None:
        return map_of(_coercer(type_.items))
    if kind is Kind.RECORD:
        return _record_coercer(type_)
    raise PayloadError(f"a field of type {type_.describe()} has no JSON form")


def _record_coercer(type_: TypeRef) -> Coercer[dict[str, Any]]:
    required = {f.name: not f.type.nullable for f in type_.fields}
    cache: dict[str, Coercer[Any]] = {}

    def coerce(value: object, at: At) -> dict[str, Any]:
        data = record_fields(value, at, required)
        out: dict[str, Any] = {}
        for f in type_.fields:
            # Built on first use: a recursive record would otherwise never finish building.
            if f.name not in cache:
                cache[f.name] = _coercer(f.type)
            out[f.name] = cache[f.name](data.get(f.name), at.field(f.name))
        return out

    return coerce


def _dumper(type_: TypeRef) -> Callable[[Any], Any]:
    inner = _bare_dumper(type_)
    if type_.nullable:
        return lambda value: None if value is None else inner(value)
    return inner


def _bare_dumper(type_: TypeRef) -> Callable[[Any], Any]:
    kind = type_.kind
    if kind is Kind.BYTES:
        return dump_bytes
    if kind is Kind.TIMESTAMP:
        return dump_timestamp
    if kind in (Kind.UUID, Kind.DECIMAL):
        return str
    if kind is Kind.DATE:
        return lambda value: value.isoformat()
    if kind in (Kind.ARRAY, Kind.MAP) and type_.items is not None:
        item = _dumper(type_.items)
        if kind is Kind.ARRAY:
            return lambda value: [item(v) for v in value]
        return lambda value: {k: item(v) for k, v in value.items()}
    if kind is Kind.RECORD:
        fields = type_.fields
        return lambda value: {f.name: _dumper(f.type)(value.get(f.name)) for f in fields}
    return lambda value: value
