"""The ``partition_key()`` method of a generated event: its key fields' values, rendered as a
key template renders them and joined with ``:``, so that the events of one entity share a
partition of a partitioned bus (docs/kafka.md, the message key). An absent value (a nullable
field, a Protobuf message field not set) renders as empty."""

from __future__ import annotations

from collections.abc import Mapping

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.generator._code import Line, Stmt, flatten, if_
from damestoilet_contracts.generator._flush import resolve
from damestoilet_contracts.model import EventType, FlushGraph, Kind, Placeholder, TypeRef
from damestoilet_contracts.model import partition_key_paths as _paths


def partition_key_code(
    event: EventType, graph: FlushGraph, attrs: Mapping[tuple[str, str], str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The body of ``partition_key()`` (lines at the method's indentation) and the dotted key
    fields it reads.

    An event with no key returns ``""``. Raises :class:`CodegenError` for a key lint refuses
    (a repeated field).
    """
    paths = _paths(event, graph)
    if not paths:
        return ('return ""',), ()  # about no entity: no key, any partition
    body: list[Stmt] = []
    names: list[str] = []
    for index, path in enumerate(paths, 1):
        access = resolve(event, Placeholder(path), attrs)
        if access.fanout:
            raise CodegenError(
                f"event {event.full_name}: key field {access.dotted} is repeated;"
                " run damestoilet lint"
            )
        value = _text(event, access.expr, access.leaf)
        if len(paths) == 1 and not access.nullable:
            return (f"return {value}",), (access.dotted,)
        name = f"k{index}"
        names.append(name)
        if access.nullable:
            present = " and ".join(f"{p} is not None" for p in access.nullable)
            body += [Line(f'{name} = ""'), if_(present, [Line(f"{name} = {value}")])]
        else:
            body.append(Line(f"{name} = {value}"))
    body.append(Line('return f"' + ":".join("{" + n + "}" for n in names) + '"'))
    return tuple(flatten(body)), tuple(".".join(p) for p in paths)


def _text(event: EventType, expr: str, leaf: TypeRef) -> str:
    """The value ``expr`` as text, as a key template renders it (double quotes: not inside an
    f-string)."""
    kind = leaf.kind
    if kind is Kind.STRING:
        return expr
    if kind in (Kind.INT, Kind.UUID):
        return f"str({expr})"
    if kind is Kind.BOOL:
        return f'"true" if {expr} else "false"'
    if kind is Kind.ENUM:
        # Avro enum members hold their symbol; Protobuf members their number.
        return f"{expr}.name" if event.format == "proto" else f"{expr}.value"
    raise CodegenError(
        f"event {event.full_name}: {leaf.describe()} is not key-safe; run damestoilet lint"
    )
