"""Pictures of the flush graph: events as sources, what they purge, cascades, targets.

One model, two texts: Graphviz ``dot`` (rendered to PNG by the ``dot`` program when present)
and Mermaid (``flowchart LR``, which GitHub renders in Markdown). Read left to right:

* an event (a rounded box) points at what its own rules purge in stage 1: a cache node of
  the flush graph, or a rule's key, prefix or tag template (a parallelogram);
* a cache node points at the nodes derived from it, which purge one stage later ("then");
* every cache node and rule template points, dashed, at the target that purges it (a
  cylinder, with its grace window).

Pure: the same contract set gives the same text, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from damestoilet_contracts.compiler import compile_event
from damestoilet_contracts.model import ContractSet, Rule


@dataclass(frozen=True, slots=True)
class _Node:
    id: str
    label: str
    kind: str  # event | cache | rule | target


@dataclass(frozen=True, slots=True)
class _Edge:
    source: str
    target: str
    label: str
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class FlushPicture:
    """The nodes and edges of a contract set's flush graph, in a stable order."""

    nodes: tuple[_Node, ...]
    edges: tuple[_Edge, ...]

    def to_dot(self) -> str:
        """The picture as Graphviz ``dot`` source."""
        shapes = {
            "event": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
            "cache": 'shape=box, style=filled, fillcolor="#fef3c7"',
            "rule": 'shape=parallelogram, style=filled, fillcolor="#f3f4f6"',
            "target": 'shape=cylinder, style=filled, fillcolor="#dcfce7"',
        }
        lines = [
            "digraph flush {",
            "  rankdir=LR;",
            '  node [fontname="Helvetica", fontsize=11];',
            '  edge [fontname="Helvetica", fontsize=9];',
        ]
        for kind in ("event", "cache", "rule", "target"):
            members = [n for n in self.nodes if n.kind == kind]
            if not members:
                continue
            # Events first, targets last; rule templates in one column: stage 1.
            rank = {"event": "source", "rule": "same", "target": "sink"}.get(kind)
            lines.append(f"  subgraph {kind}s {{")
            if rank:
                lines.append(f"    rank={rank};")
            for node in members:
                lines.append(
                    f"    {_dot_id(node.id)} [label={_dot_text(node.label)}, {shapes[kind]}];"
                )
            lines.append("  }")
        for edge in self.edges:
            attrs = [f"label={_dot_text(edge.label)}"]
            if edge.dashed:
                attrs.append('style=dashed, color="#6b7280"')
            lines.append(
                f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)} [{', '.join(attrs)}];"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """The picture as a Mermaid ``flowchart LR``."""
        shapes = {"event": ("([", "])"), "cache": ("[", "]"), "rule": ("[/", "/]"),
                  "target": ("[(", ")]")}  # fmt: skip
        ids = {node.id: f"n{index}" for index, node in enumerate(self.nodes)}
        lines = ["flowchart LR"]
        for node in self.nodes:
            open_, close = shapes[node.kind]
            lines.append(f"  {ids[node.id]}{open_}{_mermaid_text(node.label)}{close}")
        for edge in self.edges:
            arrow = "-.->" if edge.dashed else "-->"
            label = f"|{_mermaid_text(edge.label)}|" if edge.label else ""
            lines.append(f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
        for kind in ("event", "cache", "rule", "target"):
            members = [ids[n.id] for n in self.nodes if n.kind == kind]
            if members:
                lines.append(f"  class {','.join(members)} {kind}")
        lines += [
            "  classDef event fill:#dbeafe",
            "  classDef cache fill:#fef3c7",
            "  classDef rule fill:#f3f4f6",
            "  classDef target fill:#dcfce7",
        ]
        return "\n".join(lines) + "\n"


def flush_picture(contracts: ContractSet) -> FlushPicture:
    """The :class:`FlushPicture` of ``contracts`` (already linted: every name resolves)."""
    graph = contracts.graph
    nodes: dict[str, _Node] = {}
    edges: list[_Edge] = []
    used_targets: set[str] = set()
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        nodes[f"cache:{name}"] = _Node(
            f"cache:{name}", f"{name}\n{node.op.value} {node.template.source}", "cache"
        )
    for name in sorted(contracts.events):
        event = contracts.events[name]
        event_id = f"event:{name}"
        nodes[event_id] = _Node(event_id, name, "event")
        stages = len(compile_event(event, graph).stages)
        for index, rule in enumerate(event.rules, start=1):
            if rule.cache is not None:
                edges.append(_Edge(event_id, f"cache:{rule.cache}", "stage 1"))
                continue
            rule_id = f"rule:{name}:{index}"
            nodes[rule_id] = _Node(rule_id, _rule_label(rule), "rule")
            edges.append(_Edge(event_id, rule_id, "stage 1"))
            edges.append(_Edge(rule_id, f"target:{rule.target}", "", dashed=True))
            used_targets.add(rule.target)
        if stages > 1:
            nodes[event_id] = _Node(event_id, f"{name}\n{stages} stages", "event")
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        for parent in sorted(node.derived_from):
            edges.append(_Edge(f"cache:{parent}", f"cache:{name}", "then"))
        edges.append(_Edge(f"cache:{name}", f"target:{node.target}", "", dashed=True))
        used_targets.add(node.target)
    for target in sorted(used_targets):
        grace = graph.grace.get(target)
        label = f"target {target}" + (f"\ngrace {grace:g} s" if grace is not None else "")
        nodes[f"target:{target}"] = _Node(f"target:{target}", label, "target")
    order = {"event": 0, "cache": 1, "rule": 2, "target": 3}
    ordered = sorted(nodes.values(), key=lambda n: (order[n.kind], n.id))
    return FlushPicture(tuple(ordered), tuple(edges))


def _rule_label(rule: Rule) -> str:
    assert rule.op is not None and rule.template is not None
    label = f"{rule.op.value} {rule.template.source}"
    if rule.mode.value != "delete":
        label += f"\n({rule.mode.value})"
    return label


def _dot_id(text: str) -> str:
    return _dot_text(text)


def _dot_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _mermaid_text(text: str) -> str:
    # Mermaid labels in double quotes; a quote is written as its entity, a newline as <br>.
    escaped = text.replace('"', "#quot;").replace("\n", "<br>")
    return f'"{escaped}"'
