"""The ``partitionKey()`` method of a generated TypeScript event, with the Python
``partition_key()``'s semantics (:mod:`._partition`): the key fields' values rendered as a key
template renders them (integers in decimal, booleans ``true``/``false``, enums by symbol, UUIDs
lowercase) and joined with ``:``; an absent value (a nullable field) renders as empty; an event
with no key gives ``""``."""

from __future__ import annotations

from collections.abc import Mapping

from damestoilet_contracts.generator._ts_flush import resolve
from damestoilet_contracts.generator._ts_types import TsCodegenError
from damestoilet_contracts.model import EventType, FlushGraph, Kind, Placeholder, TypeRef
from damestoilet_contracts.model import partition_key_paths as _paths


def ts_partition_key_code(
    event: EventType, graph: FlushGraph, members: Mapping[tuple[str, str], str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The body of ``partitionKey()`` (lines, unindented) and the dotted key fields it reads.

    Raises :class:`TsCodegenError` for a key lint refuses (a repeated or not key-safe field)."""
    paths = _paths(event, graph)
    if not paths:
        return ('return "";',), ()
    lines: list[str] = []
    names: list[str] = []
    for index, path in enumerate(paths, 1):
        access = resolve(event, Placeholder(path), members)
        if access.fanout:
            raise TsCodegenError(
                f"event {event.full_name}: key field {access.dotted} is repeated;"
                " run damestoilet lint"
            )
        value = _text(event, access.expr, access.leaf)
        if len(paths) == 1 and not access.nullable:
            return (f"return {value};",), (access.dotted,)
        name = f"k{index}"
        names.append(name)
        if access.nullable:
            present = " && ".join(f"{p} !== null" for p in access.nullable)
            lines.append(f'const {name} = {present} ? {value} : "";')
        else:
            lines.append(f"const {name} = {value};")
    lines.append("return `" + ":".join("${" + n + "}" for n in names) + "`;")
    return tuple(lines), tuple(".".join(p) for p in paths)


def _text(event: EventType, expr: str, leaf: TypeRef) -> str:
    kind = leaf.kind
    if kind in (Kind.STRING, Kind.UUID, Kind.ENUM):
        return expr  # UUIDs are held lowercase, enum members as their symbols
    if kind is Kind.INT:
        return f"String({expr})"
    if kind is Kind.BOOL:
        return f'({expr} ? "true" : "false")'
    raise TsCodegenError(
        f"event {event.full_name}: {leaf.describe()} is not key-safe; run damestoilet lint"
    )
