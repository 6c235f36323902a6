"""The Avro loader: ``.avsc`` files to event types of the contract model.

Every record that carries a ``damestoilet`` attribute is an event type; every other named type
(record, enum, fixed) is a type events may use, from any file. Loading runs in passes, so the
order of the files never matters:

1. parse each file with :mod:`._jsonpos`, which keeps the line of every object and key;
2. collect every named type of every file into one table by full name;
3. resolve each top-level schema against the table (named types of other files inlined where
   first used, later uses by name) and let fastavro validate the result;
4. for each event record: its resolved schema (kept as :attr:`EventType.source`), its
   fingerprint, its fields mapped onto :class:`TypeRef`, its rules through :func:`build_rules`.

Problems are collected, never raised, so lint reports every one of them in one run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastavro.schema import (
    SchemaParseException,
    fingerprint,
    parse_schema,
    to_parsing_canonical_form,
)

from damestoilet_contracts._errors import Problem, SourceLocation
from damestoilet_contracts.loaders import _jsonpos
from damestoilet_contracts.loaders._jsonpos import JsonArray, JsonObject
from damestoilet_contracts.loaders._rules import (
    RawRule,
    build_rules,
    did_you_mean,
    rules_fingerprint,
)
from damestoilet_contracts.model import EventType, Field, Kind, TypeRef

#: The record attribute that holds the flush rules.
ANNOTATION = "damestoilet"

_PRIMITIVES: dict[str, Kind] = {
    "null": Kind.NULL,
    "boolean": Kind.BOOL,
    "int": Kind.INT,
    "long": Kind.INT,
    "float": Kind.FLOAT,
    "double": Kind.FLOAT,
    "bytes": Kind.BYTES,
    "string": Kind.STRING,
}
_NAMED = ("record", "error", "enum", "fixed")
# (logicalType, underlying type) -> kind. Any other pair is ignored, as the Avro spec says.
_LOGICAL: dict[tuple[str, str], Kind] = {
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
class _Named:
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
class _Top:
    """One top-level schema of a file (a file holding a union has several)."""

    path: str
    node: JsonObject
    failed: bool = False


@dataclass(slots=True)
class _Loader:
    """The state of one :func:`load_avro` call."""

    problems: list[Problem] = field(default_factory=list)
    tops: list[_Top] = field(default_factory=list)
    table: dict[str, _Named] = field(default_factory=dict)

    def problem(self, path: str, line: int, message: str, column: int = 0) -> None:
        self.problems.append(Problem(SourceLocation(path, line, column), message))

    # -- pass 1: files -------------------------------------------------------------------------

    def read(self, path: str, file: Path) -> None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(path, 1, f"cannot read the schema file: {exc}")
            return
        try:
            value = _jsonpos.loads(text)
        except json.JSONDecodeError as exc:
            self.problem(
                path,
                exc.lineno,
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                exc.colno,
            )
            return
        except RecursionError:
            self.problem(path, 1, "invalid JSON: nested too deeply")
            return
        if isinstance(value, JsonObject):
            self.tops.append(_Top(path, value))
        elif isinstance(value, JsonArray) and all(isinstance(v, JsonObject) for v in value):
            self.tops.extend(_Top(path, v) for v in value)
        else:
            line = value.line if isinstance(value, JsonArray) else 1
            self.problem(
                path,
                line,
                "an .avsc file must hold a schema object (or a list of them); "
                f"found {_json_kind(value)}",
            )

    # -- pass 2: named types -------------------------------------------------------------------

    def collect(self, node: Any, enclosing: str, path: str, top: int) -> None:
        if isinstance(node, JsonArray):
            for item in node:
                self.collect(item, enclosing, path, top)
            return
        if not isinstance(node, JsonObject):
            return
        kind = node.get("type")
        if kind in _NAMED and isinstance(node.get("name"), str):
            full = _full_name(node, enclosing)
            named = _Named(full, node, enclosing, path, top)
            first = self.table.get(full)
            if first is not None:
                # Worded as the directory loader words a type defined in two formats.
                what = "event type" if ANNOTATION in node else "named type"
                self.problem(
                    path,
                    node.line,
                    f"{what} {full} is defined twice: here and at {first.location}; "
                    "keep one definition and refer to it by name",
                    node.column,
                )
            else:
                self.table[full] = named
            if ANNOTATION in node and kind not in ("record", "error"):
                self.problem(
                    path,
                    node.line_of(ANNOTATION),
                    f"{kind} {full} carries a {ANNOTATION} attribute; only records can be events",
                )
            fields = node.get("fields")
            if isinstance(fields, JsonArray):
                for f in fields:
                    if isinstance(f, JsonObject):
                        self.collect(f.get("type"), named.namespace, path, top)
        elif kind == "array":
            self.collect(node.get("items"), enclosing, path, top)
        elif kind == "map":
            self.collect(node.get("values"), enclosing, path, top)
        else:
            self.collect(kind, enclosing, path, top)

    def lookup(self, ref: str, namespace: str) -> _Named | None:
        """The named type ``ref`` means inside ``namespace``, or None."""
        if "." not in ref and namespace:
            found = self.table.get(f"{namespace}.{ref}")
            if found is not None:
                return found
        return self.table.get(ref)

    # -- pass 3: resolution --------------------------------------------------------------------

    def validate(self) -> None:
        """Resolve every top-level schema and let fastavro check it; mark the failed ones.

        A schema that fails only because a type it uses from another file fails is not
        reported again: the problem is reported where that type is defined.
        """
        errors: dict[int, str] = {}
        uses: dict[int, set[int]] = {}
        for index, top in enumerate(self.tops):
            resolver = _Resolver(self)
            resolved = resolver.resolve(top.node, "", top.path, top.node.line)
            uses[index] = {self.table[d].top for d in resolver.deps if d in self.table} - {index}
            if resolver.problems:
                self.problems.extend(resolver.problems)  # repeats of one problem merge later
                top.failed = True
                continue
            try:
                parse_schema(resolved, named_schemas={})
            except Exception as exc:  # fastavro raises ValueError, SchemaParseException, ...
                errors[index] = f"invalid Avro schema: {_fastavro_message(exc)}"
                top.failed = True
        for index, message in errors.items():
            # Explained by another failed file, unless that file also uses this one.
            explained = any(other in errors and index not in uses[other] for other in uses[index])
            if not explained:
                top = self.tops[index]
                self.problem(top.path, top.node.line, message, top.node.column)

    # -- pass 4: events ------------------------------------------------------------------------

    def event(self, named: _Named) -> EventType | None:
        resolver = _Resolver(self)
        resolved = resolver.resolve(named.node, named.enclosing, named.path, named.node.line)
        if resolver.problems or any(self.tops[self.table[d].top].failed for d in resolver.deps):
            return None  # the cause is reported where the failing type is defined
        try:
            canonical = to_parsing_canonical_form(parse_schema(resolved, named_schemas={}))
        except Exception as exc:  # as in validate(); reached only for a nested event record
            self.problem(named.path, named.node.line, f"invalid Avro schema: {exc}")
            return None
        mapper = _Mapper(self)
        record = mapper.map(named.node, named.enclosing, named.path, named.node.line)
        if mapper.problems or record is None:
            self.problems.extend(mapper.problems)
            return None
        raw_rules = self.annotation(named)
        rules, problems = build_rules(named.full_name, record, raw_rules)
        self.problems.extend(problems)
        doc = named.node.get("doc")
        return EventType(
            full_name=named.full_name,
            format="avro",
            fields=record.fields,
            rules=rules,
            location=named.location,
            schema_fingerprint=fingerprint(canonical, "CRC-64-AVRO"),
            rules_fingerprint=rules_fingerprint(rules),
            doc=doc if isinstance(doc, str) else "",
            source=json.dumps(resolved, sort_keys=True, separators=(",", ":")),
        )

    def annotation(self, named: _Named) -> list[RawRule]:
        """The rules of an event's annotation, reporting an annotation of the wrong shape."""
        path, node, what = named.path, named.node, f"record {named.full_name}"
        value = node[ANNOTATION]
        line = node.line_of(ANNOTATION)
        example = '{"flush": [{"key": "..."}]}'
        if not isinstance(value, JsonObject):
            self.problem(
                path,
                line,
                f"the {ANNOTATION} attribute of {what} must be an object like {example}; "
                f"found {_json_kind(value)}",
            )
            return []
        for key in value:
            if key != "flush":
                self.problem(
                    path,
                    value.line_of(key),
                    f"unknown attribute {key!r} in the {ANNOTATION} attribute of {what}"
                    f"{did_you_mean(key, ['flush'])} (allowed: flush)",
                )
        if "flush" not in value:
            self.problem(
                path,
                value.line,
                f"the {ANNOTATION} attribute of {what} has no flush list; write it as {example}",
            )
            return []
        flush = value["flush"]
        if not isinstance(flush, JsonArray):
            self.problem(
                path,
                value.line_of("flush"),
                f"flush of {what} must be a list of rules; found {_json_kind(flush)}",
            )
            return []
        if not flush:
            self.problem(
                path,
                flush.line,
                f"flush of {what} is empty; give at least one rule, or drop the "
                f"{ANNOTATION} attribute if the record is not an event",
            )
        raw: list[RawRule] = []
        for index, rule in enumerate(flush):
            if not isinstance(rule, JsonObject):
                self.problem(
                    path,
                    flush.line_of(index),
                    f"rule {index + 1} of {what} must be an object like "
                    f'{{"key": "..."}}; found {_json_kind(rule)}',
                )
                continue
            location = SourceLocation(path, rule.line, rule.column)
            raw.append(RawRule(location, {k: _plain(v) for k, v in rule.items()}))
        return raw


class _Resolver:
    """Builds the self-contained JSON of a schema: every name full, named types inlined once."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
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
            return _plain(node)
        kind = node.get("type")
        if kind in _NAMED:
            if isinstance(node.get("name"), str):
                return self.definition(node, namespace, path)
            return _plain(node)  # nameless: fastavro says what is wrong
        out = {k: _plain(v) for k, v in node.items()}
        if kind == "array" and "items" in node:
            out["items"] = self.resolve(node["items"], namespace, path, node.line_of("items"))
        elif kind == "map" and "values" in node:
            out["values"] = self.resolve(node["values"], namespace, path, node.line_of("values"))
        elif "type" in node:
            out["type"] = self.resolve(kind, namespace, path, node.line_of("type"))
        return out

    def reference(self, ref: str, namespace: str, path: str, line: int) -> Any:
        if ref in _PRIMITIVES:
            return ref
        named = self.loader.lookup(ref, namespace)
        if named is None:
            self.problems.append(Problem(SourceLocation(path, line), self.unknown(ref, namespace)))
            return ref
        if named.full_name in self.emitted:
            return named.full_name
        return self.definition(named.node, named.enclosing, named.path)

    def unknown(self, ref: str, namespace: str) -> str:
        names = sorted(self.loader.table)
        full = _qualify(ref, namespace)
        hint = did_you_mean(full, names) or did_you_mean(ref, [*names, *_PRIMITIVES])
        read_as = f" (read as {full!r} in namespace {namespace})" if full != ref else ""
        advice = hint or (
            "; define it as a named type in an .avsc file of the schema directory, or use a "
            "primitive type"
        )
        return f"{self.where} has unknown type {ref!r}{read_as}{advice}"

    def definition(self, node: JsonObject, enclosing: str, path: str) -> Any:
        full = _full_name(node, enclosing)
        if full in self.emitted:
            return full
        self.emitted.add(full)
        self.deps.add(full)
        namespace = full.rpartition(".")[0]
        skip = ("name", "namespace", "fields", "aliases")
        out: dict[str, Any] = {k: _plain(v) for k, v in node.items() if k not in skip}
        out["name"] = full
        aliases = node.get("aliases")
        if isinstance(aliases, JsonArray):
            out["aliases"] = [_qualify(a, namespace) if isinstance(a, str) else a for a in aliases]
        elif aliases is not None:
            out["aliases"] = _plain(aliases)
        fields = node.get("fields")
        if isinstance(fields, JsonArray):
            outer, self.record = self.record, full
            out["fields"] = [self.field(f, namespace, path) for f in fields]
            self.record = outer
        elif fields is not None:
            out["fields"] = _plain(fields)
        return out

    def field(self, node: Any, namespace: str, path: str) -> Any:
        if not isinstance(node, JsonObject):
            return _plain(node)
        out = {k: _plain(v) for k, v in node.items()}
        if "type" in node:
            outer = self.where
            self.where = f"field {node.get('name')!r} of record {self.record}"
            out["type"] = self.resolve(node["type"], namespace, path, node.line_of("type"))
            self.where = outer
        return out


class _Mapper:
    """Maps a resolved-valid Avro schema onto :class:`TypeRef`, cutting recursion by name."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.stack: list[str] = []
        self.problems: list[Problem] = []
        self.where = "the schema"  # the field being mapped, for messages

    def map(self, node: Any, namespace: str, path: str, line: int) -> TypeRef | None:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return TypeRef(_PRIMITIVES[node])
            named = self.loader.lookup(node, namespace)
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
                name=_full_name(node, namespace),
                symbols=tuple(s for s in symbols if isinstance(s, str))
                if isinstance(symbols, JsonArray)
                else (),
            )
        if kind == "fixed":
            found = _LOGICAL.get((logical, "fixed")) if isinstance(logical, str) else None
            return TypeRef(
                found or Kind.BYTES,
                name=_full_name(node, namespace),
                logical=logical if found else None,
            )
        if kind == "array":
            items = self.map(node.get("items"), namespace, path, node.line_of("items"))
            return None if items is None else TypeRef(Kind.ARRAY, items=items)
        if kind == "map":
            values = self.map(node.get("values"), namespace, path, node.line_of("values"))
            return None if values is None else TypeRef(Kind.MAP, items=values)
        if isinstance(kind, str) and kind in _PRIMITIVES:
            found = _LOGICAL.get((logical, kind)) if isinstance(logical, str) else None
            if found is not None:
                return TypeRef(found, logical=logical)
            return TypeRef(_PRIMITIVES[kind])
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
                    "optional form "
                    '["null", T] is (split the field, or use a record per alternative)',
                )
            )
            return None
        index = node.index(branches[0])
        inner = self.map(branches[0], namespace, path, node.line_of(index))
        if inner is None:
            return None
        return replace(inner, nullable=True) if len(node) > 1 else inner

    def record(self, node: JsonObject, namespace: str, path: str) -> TypeRef | None:
        full = _full_name(node, namespace)
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


def load_avro(paths: Sequence[Path], root: Path) -> tuple[list[EventType], list[Problem]]:
    """Load the ``.avsc`` files ``paths`` (under ``root``) into event types.

    Named types may be shared across files, in any order. Locations read
    ``<root>/<path relative to root>:<line>``. Returns the event types, sorted by location, and
    every problem found, sorted; a file that does not parse costs only its own events. Raises
    nothing for a wrong schema.
    """
    loader = _Loader()
    for path, file in sorted((_display(p, root), p) for p in paths):
        loader.read(path, file)
    for index, top in enumerate(loader.tops):
        loader.collect(top.node, "", top.path, index)
    loader.validate()
    events: list[EventType] = []
    for named in sorted(loader.table.values(), key=lambda n: n.location):
        if named.node.get("type") not in ("record", "error") or ANNOTATION not in named.node:
            continue
        if loader.tops[named.top].failed:
            continue
        event = loader.event(named)
        if event is not None:
            events.append(event)
    return events, sorted(set(loader.problems))


def _display(path: Path, root: Path) -> str:
    """``root`` joined with ``path`` relative to it, POSIX separators: how locations read."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        try:
            relative = path.resolve().relative_to(root.resolve())
        except ValueError:
            return path.as_posix()
    return (root / relative).as_posix()


def _full_name(node: JsonObject, enclosing: str) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    namespace = node.get("namespace")
    if not isinstance(namespace, str):
        namespace = enclosing
    return f"{namespace}.{name}" if namespace else name


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _plain(value: Any) -> Any:
    """``value`` with positions dropped: plain dicts and lists, for fastavro and json.dumps."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "null"
    return f"the {type(value).__name__} {value!r}"


def _describe(branch: Any) -> str:
    if isinstance(branch, str):
        return f'"{branch}"'
    if isinstance(branch, dict):
        name = branch.get("name")
        return str(name) if isinstance(name, str) else str(branch.get("type"))
    return "[...]"


def _fastavro_message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError | SchemaParseException):
        return text
    return f"{type(exc).__name__}: {text}"  # an unexpected kind of failure: say which
