"""A schema directory read whole: every ``.avsc`` and ``.proto`` under it and its flush graph."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from damestoilet_contracts._errors import ContractError, Problem, SourceLocation
from damestoilet_contracts.loaders._graph import GRAPH_FILE, load_graph
from damestoilet_contracts.model import ContractSet, EventType


def collect_contracts(root: Path) -> tuple[ContractSet, list[Problem]]:
    """Read every contract under the schema directory ``root``, collecting problems.

    Takes the directory (locations are ``root / relative path``). Discovers ``**/*.avsc`` and
    ``**/*.proto`` in sorted order and ``flush-graph.yaml`` at the top. Returns the contract set
    built from what is well-formed and every problem found, sorted; raises nothing for a
    wrong schema. Cross-checks that need graph and events together are lint's.
    """
    if not root.is_dir():
        missing = Problem(
            SourceLocation(str(root), 1, 0), "schema directory not found; pass an existing folder"
        )
        empty, _ = load_graph(root / GRAPH_FILE)
        return ContractSet(events=MappingProxyType({}), graph=empty, root=str(root)), [missing]
    problems: list[Problem] = []
    events: list[EventType] = []
    avro_paths = sorted(root.glob("**/*.avsc"))
    if avro_paths:
        # Imported here so that each format's dependencies load only when it is used.
        from damestoilet_contracts.loaders._avro import load_avro

        found, avro_problems = load_avro(avro_paths, root)
        events.extend(found)
        problems.extend(avro_problems)
    proto_paths = sorted(root.glob("**/*.proto"))
    if proto_paths:
        from damestoilet_contracts.loaders._proto import load_proto

        found, proto_problems = load_proto(proto_paths, root)
        events.extend(found)
        problems.extend(proto_problems)
    graph, graph_problems = load_graph(root / GRAPH_FILE)
    problems.extend(graph_problems)
    by_name: dict[str, EventType] = {}
    for event in sorted(events, key=lambda e: (e.location, e.full_name)):
        first = by_name.get(event.full_name)
        if first is not None:
            problems.append(
                Problem(
                    event.location,
                    f"event type {event.full_name} is defined twice: here and at "
                    f"{first.location}; keep one definition",
                )
            )
            continue
        by_name[event.full_name] = event
    contracts = ContractSet(
        events=MappingProxyType(dict(sorted(by_name.items()))), graph=graph, root=str(root)
    )
    return contracts, sorted(set(problems))


def load_contracts(root: Path) -> ContractSet:
    """The contract set of the schema directory ``root``.

    Raises :class:`ContractError` listing every problem when any schema or the graph is wrong.
    """
    contracts, problems = collect_contracts(root)
    if problems:
        raise ContractError(problems)
    return contracts
