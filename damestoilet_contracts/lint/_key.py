"""Lint of partition keys: an event without ``key`` takes the fields of its first rule's
template that are not repeated, and lint says when there is none (docs/kafka.md, the message
key)."""

from __future__ import annotations

from damestoilet_contracts._errors import Problem
from damestoilet_contracts.model import EventType, FlushGraph, Kind, TypeRef, partition_key_paths

_HOW = {
    "avro": 'name the key fields in the damestoilet attribute, "key": ["..."]',
    "proto": 'name the key fields in the (damestoilet.v1.event) option, key: "..."',
}


def check_partition_key(event: EventType, graph: FlushGraph) -> list[Problem]:
    """The problems of ``event``'s default partition key (a written ``key`` is checked when
    it is loaded); a cache rule naming an unknown node is reported elsewhere."""
    if event.key_location is not None or not event.rules:
        return []  # a written key, right or reported by the loader
    rule = event.rules[0]
    if rule.cache is not None and rule.cache not in graph.nodes:
        return []
    how = _HOW[event.format]
    paths = partition_key_paths(event, graph)
    first = f"the first rule of event {event.full_name} ({rule.describe()})"
    if paths:
        return []
    template = rule.template if rule.cache is None else graph.nodes[rule.cache].template
    assert template is not None
    if not all(_resolves(event.record, p.path) for p in template.placeholders):
        return []  # the template's own problem says so
    return [
        Problem(
            rule.location,
            f"{first} names no single-valued field, so it gives no partition key and every "
            f"event of the type would share one partition of a partitioned bus; {how}",
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
