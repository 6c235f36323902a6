"""The partition key of an event type: the fields whose values pick its bus partition.

A bus that partitions (Kafka) keeps order only within one partition. Every event of one entity
should land on the same one, so the key is made of the fields that name the entity: those the
contract names in ``key``, or else the single-valued fields of its first rule's template (a
``cache`` rule: the cache node's), which name what the event is about in nearly every contract
(``catalog:product:{product_id}``; ``pricing:{store_ids}:{product_id}`` gives ``product_id``:
a repeated field would make one event several entities). Lint refuses a default with no such
field and asks for ``key``.
"""

from __future__ import annotations

from damestoilet_contracts.model._contract import EventType, FlushGraph
from damestoilet_contracts.model._types import Kind

#: A field path, ``("address", "country")`` for ``{address.country}``.
Path = tuple[str, ...]


def partition_key_paths(event: EventType, graph: FlushGraph) -> tuple[Path, ...]:
    """The field paths of ``event``'s partition key, in order and without repeats: its
    ``key``, else its first rule's template fields that are not repeated; ``()`` when neither
    names one."""
    if event.key:
        return event.key
    if not event.rules:
        return ()
    rule = event.rules[0]
    template = rule.template
    if template is None and rule.cache is not None:
        node = graph.nodes.get(rule.cache)
        template = node.template if node is not None else None
    if template is None:
        return ()
    paths: list[Path] = []
    for placeholder in template.placeholders:
        if placeholder.path not in paths and not _repeated(event, placeholder.path):
            paths.append(placeholder.path)
    return tuple(paths)


def _repeated(event: EventType, path: Path) -> bool:
    """Whether ``path`` goes through or ends on a repeated field (or names no field)."""
    current = event.record
    for segment in path:
        field = current.field(segment) if current.kind is Kind.RECORD else None
        if field is None:
            return True
        current = field.type
        if current.kind is Kind.ARRAY:
            return True
    return False
