"""Lint: every problem of a schema directory in one run, including those that need the graph.

The loaders check each file on its own. What needs events and the flush graph together is
checked here: targets and cache nodes that rules name, cycles, the fields that every cache
node reached by an event needs from that event, and the partition key an event without ``key``
takes from its first rule.
"""

from __future__ import annotations

from pathlib import Path

from damestoilet_contracts._errors import ContractError, Problem, SourceLocation
from damestoilet_contracts.compiler import find_cycles, format_cycle, reached_nodes
from damestoilet_contracts.lint._key import check_partition_key
from damestoilet_contracts.lint._storm import check_storm
from damestoilet_contracts.loaders import collect_contracts
from damestoilet_contracts.loaders._rules import check_template, did_you_mean
from damestoilet_contracts.model import (
    DEFAULT_TARGET,
    CacheNode,
    ContractSet,
    EventType,
    FlushGraph,
    IfAbsent,
    Mode,
    Rule,
    TypeRef,
)


def lint_directory(root: Path) -> list[Problem]:
    """Every problem of the schema directory ``root``, sorted and without repeats.

    Takes the directory as given on the command line (locations are relative to it). Returns
    an empty list for clean contracts; raises nothing for wrong ones.
    """
    contracts, problems = collect_contracts(root)
    problems.extend(_no_events(contracts, problems))
    return sorted(set(problems) | set(lint_contracts(contracts)))


def lint_contracts(contracts: ContractSet) -> list[Problem]:
    """The cross-checks of a loaded contract set that need events and graph together.

    Returns the problems, sorted: a rule naming an undeclared target or an unknown cache node,
    a cycle in the flush graph, a reached cache node whose template needs a field the event
    lacks.
    """
    graph = contracts.graph
    problems: list[Problem] = [
        Problem(
            graph.nodes[cycle[0]].location,
            f"the flush graph has a cycle {format_cycle(cycle)}; a cache cannot be derived "
            "from itself, remove one derived_from entry",
        )
        for cycle in find_cycles(graph)
    ]
    for event in contracts.events.values():
        problems.extend(_check_event(event, graph))
        problems.extend(check_storm(event, graph))
    return sorted(set(problems))


def load_linted(root: Path) -> ContractSet:
    """The contract set of ``root`` after every lint check passed (warnings and notes allowed).

    Raises :class:`ContractError` listing every error :func:`lint_directory` would report.
    """
    contracts, problems = collect_contracts(root)
    problems.extend(_no_events(contracts, problems))
    problems.extend(lint_contracts(contracts))
    errors = [p for p in problems if p.is_error]
    if errors:
        raise ContractError(errors)
    return contracts


def _no_events(contracts: ContractSet, problems: list[Problem]) -> list[Problem]:
    """A problem when a directory that loaded cleanly holds no event type at all.

    An empty folder, a wrong path or annotations that all missed would otherwise lint clean
    and generate an empty package: a silent success.
    """
    if contracts.events or problems:
        return []
    return [
        Problem(
            SourceLocation(contracts.root, 1, 0),
            "no event types found: no .avsc record carries a damestoilet attribute and no "
            ".proto message carries the (damestoilet.v1.event) option; check the path, or see "
            "docs/contracts.md for how an event is written",
        )
    ]


def _check_event(event: EventType, graph: FlushGraph) -> list[Problem]:
    problems: list[Problem] = []
    targets = sorted(graph.grace)
    named: list[str] = []
    for rule in event.rules:
        if rule.target not in graph.grace:
            problems.append(
                Problem(
                    rule.location,
                    f"{rule.describe()} of event {event.full_name} names target "
                    f"{rule.target!r}, which {graph.path or 'the flush graph'} does not declare "
                    f"under targets{did_you_mean(rule.target, targets)}",
                )
            )
        if rule.cache is None:
            continue
        overrides = _overrides(rule)
        if overrides:
            problems.append(
                Problem(
                    rule.location,
                    f"{rule.describe()} of event {event.full_name} gives {overrides}, which a "
                    "cache rule does not use; remove it (a cache rule purges with its node's "
                    f"target and mode, set in {graph.path or 'the flush graph'})",
                )
            )
        if rule.cache in graph.nodes:
            named.append(rule.cache)
        else:
            problems.append(
                Problem(
                    rule.location,
                    f"event {event.full_name} names cache node {rule.cache!r}, which "
                    f"{graph.path or 'the flush graph'} does not declare under caches"
                    f"{did_you_mean(rule.cache, sorted(graph.nodes))}",
                )
            )
    for name in sorted(reached_nodes(graph, named)):
        problems.extend(_check_node(event, graph.nodes[name]))
    problems.extend(check_partition_key(event, graph))
    return problems


def _overrides(rule: Rule) -> str:
    given = []
    if rule.target != DEFAULT_TARGET:
        given.append("target")
    if rule.mode is not Mode.DELETE:
        given.append("mode")
    if rule.if_absent is not IfAbsent.ERROR:
        given.append("if_absent")
    return " and ".join(given)


def _check_node(event: EventType, node: CacheNode) -> list[Problem]:
    what = f"cache node {node.name}, reached from event {event.full_name} ({event.location})"
    # A node has no if_absent of its own, so a nullable field gets its own message below
    # rather than check_template's advice to add one.
    problems = check_template(
        node.template, event.record, node.location, if_absent_given=True, what=what
    )
    if problems:
        return problems
    return [
        Problem(
            node.location,
            f"template {node.template.source!r} of {what}: {{{placeholder.dotted}}} is "
            "nullable in that event, and a cache node cannot skip an absent value; make the "
            "field required or flush a key rule with if_absent instead",
        )
        for placeholder in node.template.placeholders
        if _nullable_on_path(event.record, placeholder.path)
    ]


def _nullable_on_path(record: TypeRef, path: tuple[str, ...]) -> bool:
    current = record
    for segment in path:
        field = current.field(segment)
        if field is None:
            return False
        if field.type.nullable:
            return True
        current = field.type
    return False
