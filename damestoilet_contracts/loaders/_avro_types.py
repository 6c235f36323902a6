"""Avro named types: one table of them across files, inlined into schemas, mapped onto TypeRef.

:class:`NameTable` holds every named type (record, enum, fixed) of every file by full name.
:class:`Resolver` turns a schema into self-contained JSON for fastavro: every name full, a
named type of another file inlined where first used and named after. :class:`Mapper` turns a
schema that fastavro accepted into the model's :class:`TypeRef`, cutting recursion by name.
Both walk the position-keeping JSON of :mod:`._jsonpos`, so their problems carry lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from damestoilet_contracts._errors import Problem, SourceLocation
from damestoilet_contracts.loaders._jsonpos import JsonArray, JsonObject
from damestoilet_contracts.loaders._rules import did_you_mean
from damestoilet_contracts.model import Field, Kind, TypeRef

PRIMITIVES: dict[str, Kind] = {
    "null": Kind.NULL,
    "boolean": Kind.BOOL,
    "int": Kind.INT,
    "long": Kind.INT,
    "float": Kind.FLOAT,
    "double": Kind.FLOAT,
    "bytes": Kind.BYTES,
    "string": Kind.STRING,
}
NAMED = ("record", "error", "enum", "fixed")
# (logicalType, underlying type) -> kind. Any other pair is ignored, as the Avro spec says.
LOGICAL: dict[tuple[str, str], Kind] = {
    ("uuid", "string"): Kind.UUID,
    ("timestamp-millis", "long"): Kind.TIMESTAMP,
    ("timestamp-micros", "long"): Kind.TIMESTAMP,
    ("timestamp-nanos", "long"): Kind.TIMESTAMP,
    ("local-timestamp-millis", "long"): Kind.TIMESTAMP,
    ("local-timestamp-micros", "long"): Kind.TIMESTAMP,
    ("date", "int"): Kind.DATE,
    ("time-millis", "int"): Kind.INT,
    ("time-micros", "long"): Kind.INT,
    ("decimal", "bytes"): Kind.DECIMAL,
    ("decimal", "fixed"): Kind.DECIMAL,
    ("duration", "fixed"): Kind.BYTES,
}


@dataclass(frozen=True, slots=True)
class Named:
    """A named type as defined in a file, with the namespace its relative names resolve in."""

    full_name: str
    node: JsonObject
    enclosing: str  # the namespace around the definition
    path: str
    top: int  # index of the top-level schema that holds it

    @property
    def namespace(self) -> str:
        return self.full_name.rpartition(".")[0]

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.path, self.node.line, self.node.column)


@dataclass(slots=True)
class NameTable:
    """Every named type of a set of files, by full name; the first definition wins."""

    names: dict[str, Named] = field(default_factory=dict)

    def lookup(self, ref: str, namespace: str) -> Named | None:
        """The named type ``ref`` means inside ``namespace``, or None."""
        if "." not in ref and namespace:
            found = self.names.get(f"{namespace}.{ref}")
            if found is not None:
                return found
        return self.names.get(ref)


class Resolver:
    """Builds the self-contained JSON of a schema: every name full, named types inlined once."""

    def __init__(self, table: NameTable) -> None:
        self.table = table
        self.emitted: set[str] = set()  # named types already written out in this schema
        self.deps: set[str] = set()  # named types this schema uses or defines
        self.problems: list[Problem] = []
        self.where = "the schema"  # what the type being resolved belongs to, for messages
        self.record = ""  # the record whose fields are being resolved

    def resolve(self, node: Any, namespace: str, path: str, line: int) -> Any:
        if isinstance(node, str):
            return self.reference(node, namespace, path, line)
        if isinstance(node, JsonArray):
            return [
                self.resolve(item, namespace, path, node.line_of(i)) for i, item in enumerate(node)
            ]
        if not isinstance(node, JsonObject):
            return plain(node)
        kind = node.get("type")
        if kind in NAMED:
            if isinstance(node.get("name"), str):
                return self.definition(node, namespace, path)
            return plain(node)  # nameless: fastavro says what is wrong
        out = {k: plain(v) for k, v in node.items()}
        if kind == "array" and "items" in node:
            out["items"] = self.resolve(node["items"], namespace, path, node.line_of("items"))
        elif kind == "map" and "values" in node:
            out["values"] = self.resolve(node["values"], namespace, path, node.line_of("values"))
        elif "type" in node:
            out["type"] = self.resolve(kind, namespace, path, node.line_of("type"))
        return out

    def reference(self, ref: str, namespace: str, path: str, line: int) -> Any:
        if ref in PRIMITIVES:
            return ref
        named = self.table.lookup(ref, namespace)
        if named is None:
            self.problems.append(Problem(SourceLocation(path, line), self.unknown(ref, namespace)))
            return ref
        if named.full_name in self.emitted:
            return named.full_name
        return self.definition(named.node, named.enclosing, named.path)

    def unknown(self, ref: str, namespace: str) -> str:
        names = sorted(self.table.names)
        full = qualify(ref, namespace)
        hint = did_you_mean(full, names) or did_you_mean(ref, [*names, *PRIMITIVES])
        read_as = f" (read as {full!r} in namespace {namespace})" if full != ref else ""
        advice = hint or (
            "; define it as a named type in an .avsc file of the schema directory, or use a "
            "primitive type"
        )
        return f"{self.where} has unknown type {ref!r}{read_as}{advice}"

    def definition(self, node: JsonObject, enclosing: str, path: str) -> Any:
        full = full_name(node, enclosing)
        if full in self.emitted:
            return full
        self.emitted.add(full)
        self.deps.add(full)
        namespace = full.rpartition(".")[0]
        skip = ("name", "namespace", "fields", "aliases")
        out: dict[str, Any] = {k: plain(v) for k, v in node.items() if k not in skip}
        out["name"] = full
        aliases = node.get("aliases")
        if isinstance(aliases, JsonArray):
            out["aliases"] = [qualify(a, namespace) if isinstance(a, str) else a for a in aliases]
        elif aliases is not None:
            out["aliases"] = plain(aliases)
        fields = node.get("fields")
        if isinstance(fields, JsonArray):
            outer, self.record = self.record, full
            out["fields"] = [self.field(f, namespace, path) for f in fields]
            self.record = outer
        elif fields is not None:
            out["fields"] = plain(fields)
        return out

    def field(self, node: Any, namespace: str, path: str) -> Any:
        if not isinstance(node, JsonObject):
            return plain(node)
        out = {k: plain(v) for k, v in node.items()}
        if "type" in node:
            outer = self.where
            self.where = f"field {node.get('name')!r} of record {self.record}"
            out["type"] = self.resolve(node["type"], namespace, path, node.line_of("type"))
            self.where = outer
        return out


class Mapper:
    """Maps a resolved-valid Avro schema onto :class:`TypeRef`, cutting recursion by name."""

    def __init__(self, table: NameTable) -> None:
        self.table = table
        self.stack: list[str] = []
        self.problems: list[Problem] = []
        self.where = "the schema"  # the field being mapped, for messages

    def map(self, node: Any, namespace: str, path: str, line: int) -> TypeRef | None:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return _primitive(node)
            named = self.table.lookup(node, namespace)
            if named is None:  # reported by the resolver already
                return None
            return self.map(named.node, named.enclosing, named.path, named.node.line)
        if isinstance(node, JsonArray):
            return self.union(node, namespace, path, line)
        if not isinstance(node, JsonObject):
            return None
        kind = node.get("type")
        logical = node.get("logicalType")
        if kind in ("record", "error"):
            return self.record(node, namespace, path)
        if kind == "enum":
            symbols = node.get("symbols")
            return TypeRef(
                Kind.ENUM,
                name=full_name(node, namespace),
                symbols=tuple(s for s in symbols if isinstance(s, str))
                if isinstance(symbols, JsonArray)
                else (),
            )
        if kind == "fixed":
            found = LOGICAL.get((logical, "fixed")) if isinstance(logical, str) else None
            return TypeRef(
                found or Kind.BYTES,
                name=full_name(node, namespace),
                logical=logical if found else None,
            )
        if kind == "array":
            items = self.map(node.get("items"), namespace, path, node.line_of("items"))
            return None if items is None else TypeRef(Kind.ARRAY, items=items)
        if kind == "map":
            values = self.map(node.get("values"), namespace, path, node.line_of("values"))
            return None if values is None else TypeRef(Kind.MAP, items=values)
        if isinstance(kind, str) and kind in PRIMITIVES:
            found = LOGICAL.get((logical, kind)) if isinstance(logical, str) else None
            if found is not None:
                return TypeRef(found, logical=logical)
            return _primitive(kind)
        return self.map(kind, namespace, path, node.line_of("type"))

    def union(self, node: JsonArray, namespace: str, path: str, line: int) -> TypeRef | None:
        branches = [b for b in node if b != "null"]
        if not branches:
            return TypeRef(Kind.NULL, nullable=True)
        if len(branches) > 1:
            shown = ", ".join(_describe(b) for b in node)
            self.problems.append(
                Problem(
                    SourceLocation(path, line),
                    f"{self.where}: union [{shown}] is not supported; only a type or its "
                    'optional form ["null", T] is (split the field, or use a record per '
                    "alternative)",
                )
            )
            return None
        index = node.index(branches[0])
        inner = self.map(branches[0], namespace, path, node.line_of(index))
        if inner is None:
            return None
        return replace(inner, nullable=True) if len(node) > 1 else inner

    def record(self, node: JsonObject, namespace: str, path: str) -> TypeRef | None:
        full = full_name(node, namespace)
        if full in self.stack:
            return TypeRef(Kind.RECORD, name=full)  # recursion cut: the name says which
        self.stack.append(full)
        own = full.rpartition(".")[0]
        fields: list[Field] = []
        raw_fields = node.get("fields")
        ok = True
        for f in raw_fields if isinstance(raw_fields, JsonArray) else ():
            if not isinstance(f, JsonObject) or not isinstance(f.get("name"), str):
                continue
            outer, self.where = self.where, f"field {f['name']!r} of record {full}"
            mapped = self.map(f.get("type"), own, path, f.line_of("type"))
            self.where = outer
            if mapped is None:
                ok = False
                continue
            doc = f.get("doc")
            fields.append(
                Field(
                    f["name"],
                    mapped,
                    SourceLocation(path, f.line, f.column),
                    doc=doc if isinstance(doc, str) else "",
                )
            )
        self.stack.pop()
        return TypeRef(Kind.RECORD, name=full, fields=tuple(fields)) if ok else None


def full_name(node: JsonObject, enclosing: str) -> str:
    """The full name a definition gets: its own dotted name, its namespace, or the enclosing."""
    name = str(node["name"])
    if "." in name:
        return name
    namespace = node.get("namespace")
    if not isinstance(namespace, str):
        namespace = enclosing
    return f"{namespace}.{name}" if namespace else name


def qualify(name: str, namespace: str) -> str:
    """``name`` made full in ``namespace`` unless it has a dot already."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def plain(value: Any) -> Any:
    """``value`` with positions dropped: plain dicts and lists, for fastavro and json.dumps."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _describe(branch: Any) -> str:
    if isinstance(branch, str):
        return f'"{branch}"'
    if isinstance(branch, dict):
        name = branch.get("name")
        return str(name) if isinstance(name, str) else str(branch.get("type"))
    return "[...]"


def _primitive(name: str) -> TypeRef:
    """The type of a primitive; ``int`` and ``long`` keep their width."""
    kind = PRIMITIVES[name]
    return TypeRef(kind, width=name if kind is Kind.INT else None)
