"""The partition key of an event type: the fields whose values pick its bus partition.

A bus that partitions (Kafka) keeps order only within one partition. Every event of one entity
should land on the same one, so the key is made of the fields that name the entity: those the
contract names in ``key``, or else the single-valued fields of the first rule whose template
names a field (a ``cache`` rule: its node's template). That rule names what the event is about
in nearly every contract: ``catalog:product:{product_id}`` gives ``product_id``, and
``pricing:{store_ids}:{product_id}`` gives ``product_id`` too, since a repeated field would make
one event several entities. Rules that name no field (``search:all``) are passed over; an
event none of whose rules names a field is about no entity, and has no key.

Lint refuses a default whose rule names only repeated fields, and asks for ``key``.
"""

from __future__ import annotations

from damestoilet_contracts.model._contract import EventType, FlushGraph, Rule
from damestoilet_contracts.model._template import Template
from damestoilet_contracts.model._types import Kind

#: A field path, ``("address", "country")`` for ``{address.country}``.
Path = tuple[str, ...]


def partition_key_paths(event: EventType, graph: FlushGraph) -> tuple[Path, ...]:
    """The field paths of ``event``'s partition key, in order and without repeats: its
    ``key``, else the single-valued fields of :func:`key_rule`; ``()`` for none."""
    if event.key:
        return event.key
    found = key_rule(event, graph)
    if found is None:
        return ()
    paths: list[Path] = []
    for placeholder in found[1].placeholders:
        if placeholder.path not in paths and not _repeated(event, placeholder.path):
            paths.append(placeholder.path)
    return tuple(paths)


def key_rule(event: EventType, graph: FlushGraph) -> tuple[Rule, Template] | None:
    """The first rule of ``event`` whose template names a field, with that template (a cache
    rule's is its node's); None when no rule names one."""
    for rule in event.rules:
        template = rule.template
        if template is None and rule.cache is not None:
            node = graph.nodes.get(rule.cache)
            template = node.template if node is not None else None
        if template is not None and template.placeholders:
            return rule, template
    return None


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
