"""The ``key`` attribute of an event annotation: the fields its partition key is made of.

Avro: ``"damestoilet": {"key": ["product_id"], "flush": [...]}``. Protobuf: ``key:
"product_id"`` in the event option, once per field. Each entry is a field path as in a template
(``address.country``), ending on a key-safe scalar; not a repeated field, which would make
one event several entities. A nullable field may be part of it (a Protobuf message field
always is): an absent value counts as empty.
"""

from __future__ import annotations

from damestoilet_contracts._errors import Problem, SourceLocation
from damestoilet_contracts.loaders._rules import Spelling, did_you_mean
from damestoilet_contracts.model import KEY_SAFE_KINDS, Kind, TypeRef

_EXAMPLE: dict[Spelling, str] = {
    "avro": '"key": ["product_id"]',
    "proto": 'key: "product_id"',
}


def build_key(
    event_name: str,
    record: TypeRef,
    raw: object,
    location: SourceLocation,
    *,
    spelling: Spelling = "avro",
) -> tuple[tuple[tuple[str, ...], ...], list[Problem]]:
    """The key paths written as ``raw`` (a list of field paths), checked against ``record``.

    Returns the paths (empty when any is wrong) and the problems, located at ``location``.
    """
    what = f"the key of event {event_name}"
    example = _EXAMPLE[spelling]
    if not isinstance(raw, list | tuple) or not raw:
        shown = "an empty list" if isinstance(raw, list | tuple) else repr(raw)
        return (), [Problem(location, f"{what} must be a list of field names like {example}; "
                                      f"found {shown}")]  # fmt: skip
    problems: list[Problem] = []
    paths: list[tuple[str, ...]] = []
    for entry in raw:
        if not isinstance(entry, str) or not entry:
            problems.append(Problem(location, f"{what}: {entry!r} is not a field name"))
            continue
        path = tuple(entry.split("."))
        if path in paths:
            problems.append(Problem(location, f"{what} names {entry!r} twice"))
            continue
        message = _check(record, path)
        if message is not None:
            problems.append(Problem(location, f"{what}: {message}"))
            continue
        paths.append(path)
    return (() if problems else tuple(paths)), problems


def check_key_path(record: TypeRef, path: tuple[str, ...]) -> str | None:
    """Why ``path`` cannot be part of a partition key of ``record`` (None: it can)."""
    return _check(record, path)


def _check(record: TypeRef, path: tuple[str, ...]) -> str | None:
    dotted = ".".join(path)
    current = record
    for segment in path:
        if current.kind is not Kind.RECORD:
            return f"{dotted}: only records can be walked into, not {current.describe()}"
        field = current.field(segment)
        if field is None:
            names = [f.name for f in current.fields]
            return f"{dotted} names no field {segment!r}{did_you_mean(segment, names)}"
        current = field.type
        if current.kind is Kind.ARRAY:
            return (
                f"{dotted} is a repeated field: one event would be several entities; "
                "name a field with one value"
            )
    if current.kind is Kind.RECORD:
        return f"{dotted} is a record; name one of its fields"
    if current.kind not in KEY_SAFE_KINDS:
        return (
            f"{dotted} is {current.describe()}; only strings, integers, booleans, enums or "
            "UUIDs make a key"
        )
    return None
