"""Contracts built by hand, for tests of the compiler and lint that need no schema loader."""

from __future__ import annotations

from types import MappingProxyType

from damestoilet_contracts import SourceLocation
from damestoilet_contracts.model import (
    DEFAULT_TARGET,
    CacheNode,
    ContractSet,
    EventType,
    Field,
    FlushGraph,
    IfAbsent,
    Kind,
    Mode,
    Op,
    Rule,
    TypeRef,
    parse_template,
)

HERE = SourceLocation("handmade.avsc", 1)
STRING = TypeRef(Kind.STRING)


def field(name: str, type_: TypeRef = STRING) -> Field:
    return Field(name, type_, HERE)


def array(items: TypeRef = STRING) -> TypeRef:
    return TypeRef(Kind.ARRAY, items=items)


def rule(
    op: str,
    template: str,
    *,
    target: str = DEFAULT_TARGET,
    mode: str = "delete",
    if_absent: str = "error",
    line: int = 1,
) -> Rule:
    return Rule(
        SourceLocation("handmade.avsc", line),
        op=Op(op),
        template=parse_template(template),
        target=target,
        mode=Mode(mode),
        if_absent=IfAbsent(if_absent),
    )


def cache_rule(name: str, *, line: int = 1) -> Rule:
    return Rule(SourceLocation("handmade.avsc", line), cache=name)


def event(name: str, fields: list[Field], rules: list[Rule]) -> EventType:
    return EventType(
        full_name=name,
        format="avro",
        fields=tuple(fields),
        rules=tuple(rules),
        location=SourceLocation(f"{name}.avsc", 1),
        schema_fingerprint="0",
        rules_fingerprint="0",
    )


def node(
    name: str,
    op: str,
    template: str,
    *parents: str,
    target: str = DEFAULT_TARGET,
    mode: str = "delete",
    line: int = 1,
) -> CacheNode:
    return CacheNode(
        name=name,
        op=Op(op),
        template=parse_template(template),
        location=SourceLocation("flush-graph.yaml", line),
        derived_from=parents,
        target=target,
        mode=Mode(mode),
    )


def graph(
    *nodes: CacheNode, targets: tuple[str, ...] = ("default", "pricing", "cdn")
) -> FlushGraph:
    return FlushGraph(
        nodes=MappingProxyType({n.name: n for n in nodes}),
        path="flush-graph.yaml",
        grace=MappingProxyType(dict.fromkeys(targets, 30.0)),
    )


def contracts(graph_: FlushGraph, *events: EventType) -> ContractSet:
    return ContractSet(events=MappingProxyType({e.full_name: e for e in events}), graph=graph_)


def reference_graph() -> FlushGraph:
    """The graph of schemas/flush-graph.yaml."""
    return graph(
        node("catalog.product", "key", "catalog:product:{product_id}", line=6),
        node("search.product", "tag", "search:product:{product_id}", "catalog.product", line=7),
        node("assets.asset", "key", "assets:asset:{asset_id}", line=8),
        node(
            "cdn.product_page",
            "key",
            "page:product:{product_id}",
            "search.product",
            "assets.asset",
            target="cdn",
            line=9,
        ),
        node("catalog.category", "key", "catalog:category:{category_id}", line=10),
        node(
            "cdn.category_page",
            "prefix",
            "page:category:{category_id}:",
            "catalog.category",
            target="cdn",
            line=11,
        ),
    )


def product_price_changed() -> EventType:
    """catalog.v1.ProductPriceChanged as the reference schema defines it."""
    return event(
        "catalog.v1.ProductPriceChanged",
        [
            field("product_id"),
            field("store_ids", array()),
            field("category_id"),
            field("price_cents", TypeRef(Kind.INT)),
        ],
        [
            rule("key", "catalog:product:{product_id}"),
            rule("key", "pricing:{store_ids}:{product_id}", target="pricing"),
            rule("prefix", "catalog:listing:{category_id}:"),
            rule("tag", "category:{category_id}", mode="soft"),
            cache_rule("catalog.product"),
        ],
    )
