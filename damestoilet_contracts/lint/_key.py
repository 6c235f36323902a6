"""Lint of partition keys: an event without ``key`` takes the single-valued fields of its first
rule that names a field, and lint says when that rule names only repeated ones (docs/kafka.md,
the message key)."""

from __future__ import annotations

from damestoilet_contracts._errors import Problem
from damestoilet_contracts.model import (
    EventType,
    FlushGraph,
    Kind,
    TypeRef,
    key_rule,
    partition_key_paths,
)

_HOW = {
    "avro": 'name the key fields in the damestoilet attribute, "key": ["..."]',
    "proto": 'name the key fields in the (damestoilet.v1.event) option, key: "..."',
}


def check_partition_key(event: EventType, graph: FlushGraph) -> list[Problem]:
    """The problems of ``event``'s default partition key (a written ``key`` is checked when
    it is loaded; a cache rule naming an unknown node is reported elsewhere)."""
    if event.key_location is not None:
        return []  # a written key, right or reported by the loader
    found = key_rule(event, graph)
    if found is None or partition_key_paths(event, graph):
        return []  # about no entity (no rule names a field), or a key was found
    rule, template = found
    if not all(_resolves(event.record, p.path) for p in template.placeholders):
        return []  # the template's own problem says so
    return [
        Problem(
            rule.location,
            f"the partition key of event {event.full_name} would come from its rule "
            f"{rule.describe()}, which names only repeated fields (one event, several "
            "entities), so its events would not keep their order on a partitioned bus; "
            + _HOW[event.format],
        )
    ]


def _resolves(record: TypeRef, path: tuple[str, ...]) -> bool:
    current = record
    for segment in path:
        field = current.field(segment) if current.kind is Kind.RECORD else None
        if field is None:
            return False
        current = field.type
    return True
