"""The language-neutral pass: which types a contract set generates, where, and from what.

Every target language generates the same things from a contract set: one class per event, one
per record and enum the events use, grouped in one module per namespace (Avro) or package
(Protobuf), each file with a header naming its sources and the fingerprint of their rules.
This module decides those things once; each language's naming pass (:mod:`._build` for
Python, :mod:`._ts_build` for TypeScript) only turns them into its own names and code.
Iteration is over sorted names only, so the result is the same on every run.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Literal

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.generator import _names
from damestoilet_contracts.generator._protobuf import Declared
from damestoilet_contracts.model import ContractSet, EventType, Field, Format, Kind, TypeRef

#: The ``datacontenttype`` of each format's payloads.
CONTENT_TYPES: Mapping[str, str] = {"avro": "avro/binary", "proto": "application/x-protobuf"}
#: The rules fingerprint of a file that defines no event: SHA-256 of nothing.
NO_RULES = hashlib.sha256(b"").hexdigest()

NamedKind = Literal["event", "record", "enum"]


@dataclass(frozen=True, slots=True)
class Header:
    """The ``generated, do not edit`` header of one file."""

    version: str
    sources: tuple[str, ...]  # schema paths relative to the schema root, POSIX, sorted
    rules_fingerprint: str  # SHA-256 over the rule fingerprints of the events in the file


@dataclass(frozen=True, slots=True)
class NamedType:
    """A type to generate (an event, a record or an enum) and, once named, where it goes.

    ``candidates`` are the class names to try, in order (the short name, then the full name
    joined); ``module`` and ``name`` are set by :func:`assign_names`.
    """

    full_name: str
    kind: NamedKind
    format: Format
    type: TypeRef
    namespace: str
    candidates: tuple[str, ...]
    sources: frozenset[str]  # schema paths of the definitions it comes from
    event: EventType | None = None
    module: str = ""
    name: str = ""


@dataclass(slots=True)
class _Pending:
    """A :class:`NamedType` while it is being collected (its sources still grow)."""

    full_name: str
    kind: NamedKind
    format: Format
    type: TypeRef
    namespace: str
    candidates: tuple[str, ...]
    event: EventType | None = None
    sources: set[str] = field(default_factory=set)

    def done(self) -> NamedType:
        return NamedType(
            self.full_name,
            self.kind,
            self.format,
            self.type,
            self.namespace,
            self.candidates,
            frozenset(self.sources),
            self.event,
        )


def collect(
    contracts: ContractSet, declared: Mapping[str, Declared] | None = None
) -> dict[str, NamedType]:
    """Every type generated for ``contracts``, by full name, sorted.

    ``declared`` is protoc's record of where each Protobuf message and enum lives (needed when
    the contracts hold Protobuf events). Raises :class:`CodegenError` when one named type is
    defined twice in different ways.
    """
    root = contracts.root
    pending: dict[str, _Pending] = {}
    for full_name in sorted(contracts.events):
        event = contracts.events[full_name]
        record = TypeRef(Kind.RECORD, name=full_name, fields=event.fields)
        item = _new(full_name, "event", event.format, record, declared)
        item.event = event
        item.sources.add(relative(event.location.path, root))
        pending[full_name] = item
    for full_name in sorted(contracts.events):
        event = contracts.events[full_name]
        _walk(event.fields, event.format, pending, declared, root, pending[full_name])
    return {name: pending[name].done() for name in sorted(pending)}


def _walk(
    fields: Iterable[Field],
    format_: Format,
    pending: dict[str, _Pending],
    declared: Mapping[str, Declared] | None,
    root: str,
    owner: _Pending,
) -> None:
    for item in fields:
        owner.sources.add(relative(item.location.path, root))
        _walk_type(item.type, format_, pending, declared, root, owner)


def _walk_type(
    type_: TypeRef,
    format_: Format,
    pending: dict[str, _Pending],
    declared: Mapping[str, Declared] | None,
    root: str,
    owner: _Pending,
) -> None:
    if type_.items is not None:
        _walk_type(type_.items, format_, pending, declared, root, owner)
        return
    if type_.kind not in (Kind.RECORD, Kind.ENUM) or type_.name is None:
        return
    kind: NamedKind = "record" if type_.kind is Kind.RECORD else "enum"
    existing = pending.get(type_.name)
    if existing is not None:
        if existing.kind == "event" and kind == "record":
            return  # an event used as a field type is generated once, as the event
        if existing.format != format_ or existing.kind != kind:
            raise CodegenError(
                f"type {type_.name} is defined both as {existing.format} {existing.kind} and as "
                f"{format_} {kind}; give one of them another name"
            )
        if kind == "record" and type_.fields and not existing.type.fields:
            existing.type = _plain(type_)  # the earlier one was a cut recursive reference
        elif kind == "record" and type_.fields and _plain(type_) != existing.type:
            raise CodegenError(
                f"record {type_.name} has two different definitions; keep one (damestoilet "
                "lint reports where)"
            )
        return
    item = _new(type_.name, kind, format_, _plain(type_), declared)
    pending[type_.name] = item
    item.sources.update(relative(f.location.path, root) for f in type_.fields)
    _walk(type_.fields, format_, pending, declared, root, owner)


def _plain(type_: TypeRef) -> TypeRef:
    """A named type as declared, not as used: not nullable."""
    return TypeRef(
        type_.kind,
        name=type_.name,
        symbols=type_.symbols,
        fields=type_.fields,
        logical=type_.logical,
    )


def _new(
    full_name: str,
    kind: NamedKind,
    format_: Format,
    type_: TypeRef,
    declared: Mapping[str, Declared] | None,
) -> _Pending:
    if format_ == "proto":
        if declared is None or full_name not in declared:
            raise CodegenError(f"protoc did not declare {full_name}; this is a generator bug")
        where = declared[full_name]
        path = where.attribute.split(".")
        candidates = (path[-1], "".join(_names.pascal_case(p) for p in path))
        return _Pending(full_name, kind, format_, type_, where.package, candidates)
    namespace, _, short = full_name.rpartition(".")
    joined = "".join(_names.pascal_case(p) for p in full_name.split("."))
    return _Pending(full_name, kind, format_, type_, namespace, (short, joined))


@functools.lru_cache(maxsize=4096)
def relative(path: str, root: str) -> str:
    """A schema path relative to the schema root, POSIX; the file name when it is elsewhere."""
    for candidate, anchor in (
        (PurePath(path), PurePath(root)),
        (Path(path).resolve(), Path(root).resolve()),
    ):
        try:
            return candidate.relative_to(anchor).as_posix()
        except ValueError:
            continue
    return PurePath(path).name


# -- names ------------------------------------------------------------------------------------


def assign_names(
    named: Mapping[str, NamedType],
    *,
    module_name: Callable[[str], str],
    class_name: Callable[[str, Collection[str]], str],
    reserved: Collection[str],
) -> dict[str, NamedType]:
    """``named`` with every type's module and class name set, in one language's spelling.

    ``module_name`` spells a namespace as a module; ``class_name`` spells a candidate as a
    class, clear of the names taken; ``reserved`` are names a generated module defines or
    imports itself. Modules are unique (a counter after ``_``), and so are classes within a
    module: events first, then records, then enums, each by full name.
    """
    by_namespace: dict[str, str] = {}
    for namespace in sorted({n.namespace for n in named.values()}):
        by_namespace[namespace] = _names.unique(
            module_name(namespace), by_namespace.values(), separator="_"
        )
    order = {"event": 0, "record": 1, "enum": 2}
    taken: dict[str, set[str]] = {m: set(reserved) for m in by_namespace.values()}
    out: dict[str, NamedType] = {}
    for item in sorted(named.values(), key=lambda n: (order[n.kind], n.full_name)):
        module = by_namespace[item.namespace]
        used = taken[module]
        first = class_name(item.candidates[0], ())
        if first in used and len(item.candidates) > 1:
            first = class_name(item.candidates[1], used)
        name = _names.unique(first, used, separator="")
        used.add(name)
        out[item.full_name] = replace(item, module=module, name=name)
    return dict(sorted(out.items()))


def modules(named: Mapping[str, NamedType]) -> dict[str, list[NamedType]]:
    """The named types of each module, by module name, sorted; types in full-name order."""
    found: dict[str, list[NamedType]] = {}
    for item in named.values():
        found.setdefault(item.module, []).append(item)
    return dict(sorted(found.items()))


def record_order(members: Iterable[NamedType]) -> list[NamedType]:
    """Records before the events that use them, each group sorted by class name."""
    items = list(members)
    records = sorted((m for m in items if m.kind == "record"), key=lambda n: n.name)
    events = sorted((m for m in items if m.kind == "event"), key=lambda n: n.name)
    return records + events


def unique_aliases(named: Mapping[str, NamedType], prefix: Callable[[str], str]) -> dict[str, str]:
    """The name each type is exported under from the package: its class name, or
    ``prefix(module) + name`` when two modules define the same class name."""
    count: dict[str, int] = {}
    for item in named.values():
        count[item.name] = count.get(item.name, 0) + 1
    return {
        item.full_name: item.name if count[item.name] == 1 else prefix(item.module) + item.name
        for item in named.values()
    }


# -- fingerprints and headers -----------------------------------------------------------------


def rules_fingerprint(events: Iterable[EventType]) -> str:
    """SHA-256 over the rule fingerprints of ``events``, sorted by type name."""
    text = "".join(
        f"{e.full_name} {e.rules_fingerprint}\n" for e in sorted(events, key=lambda e: e.full_name)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def header(version: str, members: Iterable[NamedType]) -> Header:
    """The header of a file holding ``members``: their sources and their events' rules."""
    items = list(members)
    return Header(
        version,
        tuple(sorted({s for m in items for s in m.sources})),
        rules_fingerprint(m.event for m in items if m.event is not None),
    )


def source_fingerprints(contracts: ContractSet) -> dict[str, str]:
    """The rules fingerprint of the events of each schema file, by its relative path."""
    by_source: dict[str, list[EventType]] = {}
    for event in contracts.events.values():
        by_source.setdefault(relative(event.location.path, contracts.root), []).append(event)
    return {source: rules_fingerprint(found) for source, found in sorted(by_source.items())}
