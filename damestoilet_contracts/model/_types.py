"""Field types of the contract model, common to Avro and Protobuf.

A loader maps its format's types onto :class:`TypeRef`; everything after the loaders (lint,
plan compiler, generator) sees only these.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from damestoilet_contracts._errors import SourceLocation


class Kind(enum.Enum):
    """What a field holds, independent of the schema format."""

    STRING = "string"
    INT = "int"  # any integer width; Avro int/long, Protobuf (s|u|)int32/64, fixed32/64
    BOOL = "bool"
    FLOAT = "float"  # float or double: never key-safe
    BYTES = "bytes"  # bytes or Avro fixed: never key-safe
    ENUM = "enum"
    UUID = "uuid"  # Avro logicalType uuid
    TIMESTAMP = "timestamp"  # Avro timestamp-millis/micros, google.protobuf.Timestamp
    DATE = "date"
    DECIMAL = "decimal"
    RECORD = "record"  # Avro record, Protobuf message
    ARRAY = "array"  # Avro array, Protobuf repeated
    MAP = "map"  # Avro map, Protobuf map<string, V>
    NULL = "null"


#: The range of each integer wire type (Avro int/long, every Protobuf integer type).
INT_BOUNDS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "int": (-(2**31), 2**31 - 1),
        "long": (-(2**63), 2**63 - 1),
        "int32": (-(2**31), 2**31 - 1),
        "sint32": (-(2**31), 2**31 - 1),
        "sfixed32": (-(2**31), 2**31 - 1),
        "int64": (-(2**63), 2**63 - 1),
        "sint64": (-(2**63), 2**63 - 1),
        "sfixed64": (-(2**63), 2**63 - 1),
        "uint32": (0, 2**32 - 1),
        "fixed32": (0, 2**32 - 1),
        "uint64": (0, 2**64 - 1),
        "fixed64": (0, 2**64 - 1),
    }
)

#: Kinds whose values may appear in a key template, and how they render there.
KEY_SAFE_KINDS = frozenset({Kind.STRING, Kind.INT, Kind.BOOL, Kind.ENUM, Kind.UUID})


@dataclass(frozen=True, slots=True)
class TypeRef:
    """The type of a field.

    ``nullable`` is true for Avro unions with null and Protobuf fields with presence
    (``optional`` scalars, message fields). ``items`` is the element type of an array and the
    value type of a map. ``name`` is the full name of a record or enum; ``symbols`` are an
    enum's symbols; ``fields`` are a record's fields, resolved (named types across files are
    inlined by the loader, recursion is cut by ``name``). ``width`` is the wire type of a
    plain integer (:data:`INT_BOUNDS` names them); None for other kinds and for integers under
    a logical type (``time-millis``, ``google.protobuf.Int64Value``), whose ``logical`` says it.
    """

    kind: Kind
    nullable: bool = False
    name: str | None = None
    items: TypeRef | None = None
    symbols: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()
    logical: str | None = None  # the format's own logical type name, e.g. "timestamp-millis"
    width: str | None = None  # a plain integer's wire type: "long", "int32", "uint64" ...

    def field(self, name: str) -> Field | None:
        """The record field called ``name``, or None."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def describe(self) -> str:
        """A short human name, as used in error messages: ``array<string>``, ``optional int``."""
        if self.kind is Kind.ARRAY and self.items is not None:
            text = f"array<{self.items.describe()}>"
        elif self.kind is Kind.MAP and self.items is not None:
            text = f"map<string, {self.items.describe()}>"
        elif self.name is not None:
            text = f"{self.kind.value} {self.name}"
        else:
            text = self.kind.value
        return f"optional {text}" if self.nullable else text


@dataclass(frozen=True, slots=True)
class Field:
    """A named field of an event or record, with where it was declared."""

    name: str
    type: TypeRef
    location: SourceLocation
    doc: str = ""
    number: int | None = field(default=None)  # Protobuf field number; None for Avro
