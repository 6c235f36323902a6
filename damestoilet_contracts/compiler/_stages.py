"""The plan compiler: an event type and the flush graph turned into ordered purge stages.

Stage 0 holds the event's own key, prefix and tag rules and the cache nodes it names. Every node
derived from a reached node, directly or through others, is flushed too, after its parents: a
node's stage is one more than the highest stage of its reached parents, so a derived cache
never refills from a source that is still stale. The result is a :class:`PlanSpec` of
templates; :func:`~damestoilet_contracts.compiler.evaluate` renders it for one payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from damestoilet_contracts._errors import ContractError, Problem, SourceLocation
from damestoilet_contracts.model import (
    CacheNode,
    EventType,
    FlushGraph,
    IfAbsent,
    Mode,
    Op,
    Template,
)


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One purge of a plan, before rendering; ``origin`` and ``location`` say where it came from.

    Two specs that purge the same way are equal whatever their origin, so a stage can drop
    repeats.
    """

    op: Op
    target: str
    template: Template
    mode: Mode = Mode.DELETE
    if_absent: IfAbsent = IfAbsent.ERROR
    origin: str = field(default="", compare=False)  # "rule 2" or "cache catalog.product"
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """The compiled plan of one event type: stages of op specs, each run before the next."""

    type: str
    stages: tuple[tuple[OpSpec, ...], ...]

    @property
    def ops(self) -> tuple[OpSpec, ...]:
        """Every op spec, in stage order."""
        return tuple(op for stage in self.stages for op in stage)


def reached_nodes(graph: FlushGraph, names: Iterable[str]) -> frozenset[str]:
    """The nodes ``names`` (those that exist) and every node derived from them, transitively.

    Safe on a graph with cycles.
    """
    seen: set[str] = set()
    todo = [name for name in names if name in graph.nodes]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph.derived(name))
    return frozenset(seen)


def find_cycles(graph: FlushGraph) -> list[tuple[str, ...]]:
    """One cycle for each strongly connected part of ``graph`` that has one.

    Each cycle is a closed path in flush order (parent, then the node derived from it), starting
    and ending at its smallest name: ``("a", "b", "a")``. Sorted; empty for an acyclic graph.
    """
    names = sorted(graph.nodes)
    reach = {name: _reach_strict(graph, name) for name in names}
    assigned: set[str] = set()
    cycles: list[tuple[str, ...]] = []
    for name in names:  # sorted, so each part is entered at its smallest name
        if name in assigned or name not in reach[name]:
            continue
        part = {other for other in reach[name] if name in reach[other]}
        assigned |= part
        cycles.append(_shortest_cycle(graph, name, part))
    return cycles


def format_cycle(cycle: tuple[str, ...]) -> str:
    """A cycle as text: ``a -> b -> a``."""
    return " -> ".join(cycle)


def compile_event(event: EventType, graph: FlushGraph) -> PlanSpec:
    """Compile the flush plan of ``event`` over ``graph``.

    Takes an event type and the flush graph; returns its :class:`PlanSpec`: stage 0 has the
    event's direct rules and the nodes it names, in rule order; later stages have derived
    nodes, sorted by name; repeats within a stage are dropped. A cache rule purges with its
    node's target and mode. Raises :class:`ContractError` when a
    rule names a node the graph lacks or a reached node is on a cycle (lint reports both).
    """
    named = [rule.cache for rule in event.rules if rule.cache is not None]
    unknown = [
        Problem(rule.location, f"event {event.full_name} names unknown cache node {rule.cache!r}")
        for rule in event.rules
        if rule.cache is not None and rule.cache not in graph.nodes
    ]
    if unknown:
        raise ContractError(unknown)
    reached = reached_nodes(graph, named)
    on_cycle = [cycle for cycle in find_cycles(graph) if reached.intersection(cycle)]
    if on_cycle:
        raise ContractError(
            Problem(
                graph.nodes[cycle[0]].location,
                f"the flush graph has a cycle {format_cycle(cycle)}, reached from event "
                f"{event.full_name}; remove one derived_from entry",
            )
            for cycle in on_cycle
        )
    stage_of = _stages(graph, reached)
    depth = max(stage_of.values(), default=0) + 1
    stages: list[list[OpSpec]] = [[] for _ in range(depth)]
    for index, rule in enumerate(event.rules, start=1):
        if rule.cache is not None:
            if stage_of[rule.cache] == 0:
                stages[0].append(_node_spec(graph.nodes[rule.cache]))
            continue
        assert rule.op is not None and rule.template is not None  # a model invariant
        stages[0].append(
            OpSpec(
                op=rule.op,
                target=rule.target,
                template=rule.template,
                mode=rule.mode,
                if_absent=rule.if_absent,
                origin=f"rule {index}",
                location=rule.location,
            )
        )
    for name in sorted(reached):
        if stage_of[name] > 0:
            stages[stage_of[name]].append(_node_spec(graph.nodes[name]))
    return PlanSpec(event.full_name, tuple(_unique(stage) for stage in stages))


def _node_spec(node: CacheNode) -> OpSpec:
    return OpSpec(
        op=node.op,
        target=node.target,
        template=node.template,
        mode=node.mode,
        origin=f"cache {node.name}",
        location=node.location,
    )


def _stages(graph: FlushGraph, reached: frozenset[str]) -> dict[str, int]:
    """Stage of every reached node: 1 + the highest stage of its reached parents, else 0."""
    stage_of: dict[str, int] = {}

    def visit(name: str) -> int:
        if name not in stage_of:
            parents = [p for p in graph.nodes[name].derived_from if p in reached]
            stage_of[name] = 1 + max(visit(p) for p in parents) if parents else 0
        return stage_of[name]

    for name in sorted(reached):
        visit(name)
    return stage_of


def _unique(stage: list[OpSpec]) -> tuple[OpSpec, ...]:
    seen: set[OpSpec] = set()
    kept: list[OpSpec] = []
    for spec in stage:
        if spec not in seen:
            seen.add(spec)
            kept.append(spec)
    return tuple(kept)


def _reach_strict(graph: FlushGraph, start: str) -> frozenset[str]:
    """Nodes reachable from ``start`` through at least one derived edge."""
    return reached_nodes(graph, graph.derived(start))


def _shortest_cycle(graph: FlushGraph, start: str, part: set[str]) -> tuple[str, ...]:
    # Breadth-first within the part, children in sorted order, so the cycle is deterministic.
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for name in frontier:
            for child in graph.derived(name):
                if child not in part:
                    continue
                if child == start:
                    path = [name]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return (start, *reversed(path[:-1]), start)
                if child not in previous:
                    previous[child] = name
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")  # callers pass a node that is on one
