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

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from damestoilet_contracts.loaders._avro_types import (
    NAMED,
    Mapper,
    Named,
    NameTable,
    Resolver,
    full_name,
    plain,
)
from damestoilet_contracts.loaders._jsonpos import JsonArray, JsonObject
from damestoilet_contracts.loaders._key import build_key
from damestoilet_contracts.loaders._rules import (
    RawRule,
    build_rules,
    did_you_mean,
    rules_fingerprint,
)
from damestoilet_contracts.model import EventType, TypeRef

#: The record attribute that holds the flush rules.
ANNOTATION = "damestoilet"
#: The attributes of the annotation: the rules, and the fields of the partition key.
_ANNOTATION_ATTRS = ["flush", "key"]
# The attributes the Avro specification gives a record and a field: never a near miss.
_AVRO_RECORD_ATTRS = frozenset({"type", "name", "namespace", "doc", "aliases", "fields"})
_AVRO_FIELD_ATTRS = frozenset({"name", "type", "doc", "default", "order", "aliases"})


def _looks_like_annotation(key: str) -> bool:
    """Whether an unknown attribute is likely a misspelling of :data:`ANNOTATION`."""
    folded = key.lower().replace("_", "").replace("-", "")
    if folded == ANNOTATION or folded.startswith(ANNOTATION):
        return True
    return bool(difflib.get_close_matches(folded, [ANNOTATION], n=1, cutoff=0.8))


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
    names: NameTable = field(default_factory=NameTable)

    def problem(self, path: str, line: int, message: str, column: int = 0) -> None:
        self.problems.append(Problem(SourceLocation(path, line, column), message))

    # -- pass 1: files -------------------------------------------------------------------------

    def read(self, path: str, file: Path) -> None:
        try:
            text = file.read_text(encoding="utf-8-sig")  # tolerate a BOM, as editors write one
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
        if kind in NAMED and isinstance(node.get("name"), str):
            full = full_name(node, enclosing)
            named = Named(full, node, enclosing, path, top)
            first = self.names.names.get(full)
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
                self.names.names[full] = named
            if kind in ("record", "error") and ANNOTATION not in node:
                self.near_misses(node, full, path)
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
                        self.misplaced_on_field(f, full, path)
                        self.collect(f.get("type"), named.namespace, path, top)
        elif kind == "array":
            self.collect(node.get("items"), enclosing, path, top)
        elif kind == "map":
            self.collect(node.get("values"), enclosing, path, top)
        else:
            self.collect(kind, enclosing, path, top)

    def near_misses(self, node: JsonObject, full: str, path: str) -> None:
        """Report what looks meant as flush rules on a record without the annotation.

        A misspelled attribute or rules written at the record's top level would otherwise
        leave the record a plain type: the event silently disappears and lint says nothing.
        """
        for key in node:
            if key in _AVRO_RECORD_ATTRS:
                continue
            if key == "flush":
                self.problem(
                    path,
                    node.line_of(key),
                    f"record {full} has a top-level flush attribute, which is not read: "
                    f"flush rules go inside the {ANNOTATION} attribute, write "
                    f'"{ANNOTATION}": {{"flush": [...]}}',
                )
            elif _looks_like_annotation(key):
                self.problem(
                    path,
                    node.line_of(key),
                    f"record {full} has an attribute {key!r}, which is not read, so the record "
                    f"is not an event; did you mean {ANNOTATION!r}?",
                )

    def misplaced_on_field(self, field_node: JsonObject, record: str, path: str) -> None:
        """Report an annotation written on a field instead of on its record."""
        for key in field_node:
            if key == ANNOTATION or (key not in _AVRO_FIELD_ATTRS and _looks_like_annotation(key)):
                name = field_node.get("name")
                self.problem(
                    path,
                    field_node.line_of(key),
                    f"field {name!r} of record {record} carries a {key!r} attribute, which is "
                    f"not read on a field; move the {ANNOTATION} attribute to the record",
                )

    # -- pass 3: resolution --------------------------------------------------------------------

    def tops_of(self, names: set[str]) -> set[int]:
        """The top-level schemas that define the named types ``names``."""
        return {self.names.names[n].top for n in names if n in self.names.names}

    def validate(self) -> None:
        """Resolve every top-level schema and let fastavro check it; mark the failed ones.

        A schema that fails only because a type it uses from another file fails is not
        reported again: the problem is reported where that type is defined.
        """
        errors: dict[int, str] = {}
        uses: dict[int, set[int]] = {}
        for index, top in enumerate(self.tops):
            resolver = Resolver(self.names)
            resolved = resolver.resolve(top.node, "", top.path, top.node.line)
            uses[index] = self.tops_of(resolver.deps) - {index}
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

    def event(self, named: Named) -> EventType | None:
        """The event type of record ``named``, or None when its schema is wrong (reported)."""
        raw_rules = self.annotation(named)  # its shape is checked even if the types are wrong
        if self.tops[named.top].failed:
            return None
        resolver = Resolver(self.names)
        resolved = resolver.resolve(named.node, named.enclosing, named.path, named.node.line)
        if resolver.problems or any(self.tops[t].failed for t in self.tops_of(resolver.deps)):
            return None  # the cause is reported where the failing type is defined
        try:
            canonical = to_parsing_canonical_form(parse_schema(resolved, named_schemas={}))
        except Exception as exc:  # as in validate(); reached only for a nested event record
            message = f"invalid Avro schema: {_fastavro_message(exc)}"
            self.problem(named.path, named.node.line, message, named.node.column)
            return None
        mapper = Mapper(self.names)
        record = mapper.map(named.node, named.enclosing, named.path, named.node.line)
        if mapper.problems or record is None:
            self.problems.extend(mapper.problems)
            return None
        rules, problems = build_rules(named.full_name, record, raw_rules)
        self.problems.extend(problems)
        key, key_location = self.key(named, record)
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
            key=key,
            key_location=key_location,
        )

    def key(
        self, named: Named, record: TypeRef
    ) -> tuple[tuple[tuple[str, ...], ...], SourceLocation | None]:
        """The partition key the annotation names, if it names one (docs/kafka.md)."""
        value = named.node[ANNOTATION]
        if not isinstance(value, JsonObject) or "key" not in value:
            return (), None
        location = SourceLocation(named.path, value.line_of("key"))
        key, problems = build_key(named.full_name, record, plain(value["key"]), location)
        self.problems.extend(problems)
        return key, location

    def annotation(self, named: Named) -> list[RawRule]:
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
            if key not in _ANNOTATION_ATTRS:
                self.problem(
                    path,
                    value.line_of(key),
                    f"unknown attribute {key!r} in the {ANNOTATION} attribute of {what}"
                    f"{did_you_mean(key, _ANNOTATION_ATTRS)} (allowed: flush, key)",
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
            raw.append(RawRule(location, {k: plain(v) for k, v in rule.items()}))
        return raw


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
    for named in sorted(loader.names.names.values(), key=lambda n: n.location):
        if named.node.get("type") not in ("record", "error") or ANNOTATION not in named.node:
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


def _fastavro_message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError | SchemaParseException):
        return text
    return f"{type(exc).__name__}: {text}"  # an unexpected kind of failure: say which
