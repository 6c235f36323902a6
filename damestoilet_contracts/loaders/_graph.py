"""The flush graph: ``flush-graph.yaml`` read into a :class:`FlushGraph`, every node with its line.

The file has two sections::

    targets:
      default: {grace_seconds: 30}
      cdn:     {grace_seconds: 60, prefix_index: true}
    caches:
      catalog.product: {key: "catalog:product:{product_id}"}
      search.product:  {tag: "search:product:{product_id}", derived_from: [catalog.product]}

The YAML is composed into nodes (not loaded into plain values) so that every problem keeps the
line it stands on. Every problem is collected, none raised. Cycles and the fields a node needs
from the events that reach it are lint's business: they need the whole contract set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import cast

import yaml
import yaml.constructor
import yaml.nodes

from damestoilet_contracts._errors import Problem, SourceLocation, TemplateError
from damestoilet_contracts.loaders._rules import (
    STORM_NEVER_SPELLING,
    STORM_VALUES,
    check_width,
    did_you_mean,
)
from damestoilet_contracts.model import (
    DEFAULT_TARGET,
    CacheNode,
    FlushGraph,
    Mode,
    Op,
    Scope,
    StormGuard,
    parse_template,
)

#: The name of the graph file at the root of a schema directory.
GRAPH_FILE = "flush-graph.yaml"
#: Grace window of the ``default`` target when the file does not declare it.
DEFAULT_GRACE_SECONDS = 30.0

_SECTIONS = ("targets", "caches")
_TARGET_ATTRS = (
    "grace_seconds",
    "prefix_index",
    "storm_max_keys",
    "storm_spread_seconds",
    "min_prefix",
)
_OP_ATTRS = ("key", "prefix", "tag")
_NODE_ATTRS = (*_OP_ATTRS, "derived_from", "target", "mode", "scope", "storm")

_Pairs = list[tuple[yaml.nodes.Node, yaml.nodes.Node]]


class _Reader:
    """Walks the composed YAML of one file, collecting problems with their lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def loc(self, node: yaml.nodes.Node) -> SourceLocation:
        mark = node.start_mark
        return SourceLocation(self.path, mark.line + 1, mark.column + 1)

    def report(self, node: yaml.nodes.Node, message: str) -> None:
        self.problems.append(Problem(self.loc(node), message))

    def scalar(self, node: yaml.nodes.Node) -> object:
        """The Python value of a scalar node (int, float, bool, str, None)."""
        value: object = self._constructor.construct_object(node, deep=True)
        return value

    def mapping(self, node: yaml.nodes.Node, what: str) -> _Pairs | None:
        """The (key, value) pairs of a mapping whose keys are strings; reports duplicates."""
        if not isinstance(node, yaml.nodes.MappingNode):
            self.report(node, f"{what} must be a mapping (name: value, ...)")
            return None
        pairs: _Pairs = []
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = self.scalar(key) if isinstance(key, yaml.nodes.ScalarNode) else None
            if not isinstance(name, str) or name == "":
                self.report(key, f"a key of {what} must be a non-empty name")
                continue
            if name in seen:
                self.report(
                    key,
                    f"{name!r} appears twice in {what} (first at line {seen[name]}); keep one",
                )
                continue
            seen[name] = key.start_mark.line + 1
            pairs.append((key, value))
        return pairs

    def string(self, node: yaml.nodes.Node, what: str) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.nodes.ScalarNode) else None
        if not isinstance(value, str) or value == "":
            self.report(node, f"{what} must be a non-empty string")
            return None
        return value


def load_graph(path: Path) -> tuple[FlushGraph, list[Problem]]:
    """Read the flush graph at ``path``.

    Takes the path of ``flush-graph.yaml`` (locations use ``str(path)``). A missing file is an
    empty graph with only the ``default`` target. Returns the graph, built from the parts that
    are well-formed, and every problem found (nothing is raised for a wrong file).
    """
    where = str(path)
    default_grace = MappingProxyType({DEFAULT_TARGET: DEFAULT_GRACE_SECONDS})
    if not path.exists():
        return FlushGraph(path=where, grace=default_grace), []
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 0)
        context = f"{exc.context}: " if exc.context else ""
        message = (
            f"YAML syntax error at line {line}, column {column}: {context}{exc.problem}; "
            "fix the YAML syntax"
        )
        return FlushGraph(path=where, grace=default_grace), [
            Problem(SourceLocation(where, line, column), message)
        ]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return FlushGraph(path=where, grace=default_grace), [
            Problem(SourceLocation(where, 1, 0), f"cannot read the flush graph: {exc}")
        ]
    reader = _Reader(where)
    if root is None:  # an empty file
        return FlushGraph(path=where, grace=default_grace), []
    sections = reader.mapping(root, "the flush graph")
    targets_node: yaml.nodes.Node | None = None
    caches_node: yaml.nodes.Node | None = None
    for key, value in sections or []:
        name = str(key.value)
        if name == "targets":
            targets_node = value
        elif name == "caches":
            caches_node = value
        else:
            reader.report(
                key,
                f"unknown section {name!r} in the flush graph{did_you_mean(name, _SECTIONS)}"
                f" (allowed: {', '.join(_SECTIONS)})",
            )
    targets = _read_targets(reader, targets_node)
    grace = targets.grace
    nodes = _read_caches(reader, caches_node, grace)
    graph = FlushGraph(
        nodes=MappingProxyType(dict(sorted(nodes.items()))),
        path=where,
        grace=MappingProxyType(dict(sorted(grace.items()))),
        prefix_index=frozenset(targets.indexed),
        storm=MappingProxyType(dict(sorted(targets.storm.items()))),
        min_prefix=MappingProxyType(dict(sorted(targets.min_prefix.items()))),
    )
    return graph, reader.problems


@dataclass(slots=True)
class _Targets:
    """What the ``targets`` section says, by target name."""

    grace: dict[str, float] = field(default_factory=dict)
    indexed: set[str] = field(default_factory=set)
    storm: dict[str, StormGuard] = field(default_factory=dict)
    min_prefix: dict[str, int] = field(default_factory=dict)


def _read_targets(reader: _Reader, node: yaml.nodes.Node | None) -> _Targets:
    targets = _Targets()
    if node is not None and not _is_null(node):
        for key, value in reader.mapping(node, "targets") or []:
            _read_target(reader, str(key.value), key, value, targets)
    # Rules without a target use "default", so it always exists.
    targets.grace.setdefault(DEFAULT_TARGET, DEFAULT_GRACE_SECONDS)
    return targets


def _read_target(
    reader: _Reader, name: str, key: yaml.nodes.Node, node: yaml.nodes.Node, targets: _Targets
) -> None:
    attrs = reader.mapping(node, f"target {name}")
    if attrs is None:
        return
    seconds: float | None = None
    given: dict[str, object] = {}
    for attr_key, attr_value in attrs:
        attr = str(attr_key.value)
        if attr not in _TARGET_ATTRS:
            reader.report(
                attr_key,
                f"unknown attribute {attr!r} of target {name}{did_you_mean(attr, _TARGET_ATTRS)}"
                f" (allowed: {', '.join(_TARGET_ATTRS)})",
            )
            continue
        value = reader.scalar(attr_value) if isinstance(attr_value, yaml.nodes.ScalarNode) else ""
        if attr == "prefix_index":
            if not isinstance(value, bool):
                reader.report(
                    attr_value,
                    f"prefix_index of target {name} must be true or false; true makes its "
                    "prefix purges read the read-through cache's prefix index instead of "
                    "scanning",
                )
            elif value:
                targets.indexed.add(name)
        elif attr in ("storm_max_keys", "min_prefix"):
            least = 1 if attr == "storm_max_keys" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                reader.report(
                    attr_value,
                    f"{attr} of target {name} must be a whole number of at least {least}",
                )
            else:
                given[attr] = value
        else:  # grace_seconds, storm_spread_seconds
            if isinstance(value, bool) or not isinstance(value, int | float):
                reader.report(attr_value, f"{attr} of target {name} must be a number")
            elif value < 0 or (attr == "storm_spread_seconds" and value == 0):
                bound = "more than 0" if attr == "storm_spread_seconds" else "0 or more"
                reader.report(attr_value, f"{attr} of target {name} is {value}; it must be {bound}")
            elif attr == "grace_seconds":
                seconds = float(value)
            else:
                given[attr] = float(value)
    if seconds is not None:
        targets.grace[name] = seconds
    elif not any(str(k.value) == "grace_seconds" for k, _ in attrs):
        reader.report(key, f"target {name} has no grace_seconds; add e.g. grace_seconds: 30")
    max_keys = given.get("storm_max_keys")
    spread = given.get("storm_spread_seconds")
    if isinstance(max_keys, int):
        guard = StormGuard(max_keys)
        targets.storm[name] = (
            guard if spread is None else StormGuard(max_keys, float(cast(float, spread)))
        )
    elif spread is not None:
        reader.report(
            key,
            f"target {name} gives storm_spread_seconds without storm_max_keys, so no guard is "
            "on; add storm_max_keys (e.g. storm_max_keys: 1000) or remove it",
        )
    if isinstance(given.get("min_prefix"), int):
        targets.min_prefix[name] = cast(int, given["min_prefix"])


def _read_caches(
    reader: _Reader, node: yaml.nodes.Node | None, grace: dict[str, float]
) -> dict[str, CacheNode]:
    if node is None or _is_null(node):
        return {}
    pairs = reader.mapping(node, "caches") or []
    names = [str(key.value) for key, _ in pairs]
    nodes: dict[str, CacheNode] = {}
    for key, value in pairs:
        built = _read_node(reader, str(key.value), key, value, names, grace)
        if built is not None:
            nodes[built.name] = built
    return nodes


def _read_node(
    reader: _Reader,
    name: str,
    key: yaml.nodes.Node,
    node: yaml.nodes.Node,
    names: list[str],
    grace: dict[str, float],
) -> CacheNode | None:
    attrs = reader.mapping(node, f"cache node {name}")
    if attrs is None:
        return None
    what = f"cache node {name}"
    ops: list[tuple[Op, yaml.nodes.Node]] = []
    derived: list[str] = []
    target = DEFAULT_TARGET
    mode = Mode.DELETE
    scope = Scope.EVENT
    storm_never = False
    for attr_key, attr_value in attrs:
        attr = str(attr_key.value)
        if attr in _OP_ATTRS:
            ops.append((Op(attr), attr_value))
        elif attr == "derived_from":
            derived = _read_derived(reader, what, attr_value, names)
        elif attr == "target":
            found = reader.string(attr_value, f"target of {what}")
            if found is not None and found not in grace:
                reader.report(
                    attr_value,
                    f"{what} names target {found!r}, which is not declared under targets"
                    f"{did_you_mean(found, sorted(grace))}",
                )
            target = found or DEFAULT_TARGET
        elif attr == "mode":
            text = reader.string(attr_value, f"mode of {what}")
            if text is not None:
                if text == Mode.HARD.value:
                    reader.report(
                        attr_value,
                        f"mode 'hard' of {what} is how a plan spells a delete that no storm "
                        f"guard spreads; write it as {STORM_NEVER_SPELLING['yaml']}",
                    )
                else:
                    try:
                        mode = Mode(text)
                    except ValueError:
                        reader.report(
                            attr_value, f"unknown mode {text!r} of {what}; use delete or soft"
                        )
        elif attr == "scope":
            text = reader.string(attr_value, f"scope of {what}")
            if text is not None:
                try:
                    scope = Scope(text)
                except ValueError:
                    reader.report(
                        attr_value,
                        f"unknown scope {text!r} of {what}; use event (the default) or namespace",
                    )
        elif attr == "storm":
            text = reader.string(attr_value, f"storm of {what}")
            if text is not None and text not in STORM_VALUES:
                reader.report(
                    attr_value,
                    f"unknown storm {text!r} of {what}; use guard (the default) or never",
                )
            storm_never = text == "never"
        else:
            reader.report(
                attr_key,
                f"unknown attribute {attr!r} of {what}{did_you_mean(attr, _NODE_ATTRS)}"
                f" (allowed: {', '.join(_NODE_ATTRS)})",
            )
    if len(ops) != 1:
        given = " and ".join(op.value for op, _ in ops) if ops else "none of key, prefix, tag"
        reader.report(key, f"{what} has {given}; give exactly one of key, prefix, tag")
        return None
    op, template_node = ops[0]
    source = reader.string(template_node, f"{op.value} of {what}")
    if source is None:
        return None
    try:
        template = parse_template(source)
    except TemplateError as exc:
        reader.report(template_node, f"{op.value} of {what}: {exc}")
        return None
    width = check_width(op, template, scope, what, "yaml")
    if width is not None:
        reader.report(template_node, width)
    if storm_never:
        if mode is Mode.SOFT:
            reader.report(
                key,
                f"soft {what} is never spread by a storm guard; remove "
                f"{STORM_NEVER_SPELLING['yaml']}",
            )
        else:
            mode = Mode.HARD
    # A node with a wrong target, mode, scope or parent is kept, so that rules naming it do
    # not also report it as unknown.
    return CacheNode(
        name=name,
        op=op,
        template=template,
        location=reader.loc(key),
        derived_from=tuple(derived),
        target=target,
        mode=mode,
        scope=scope,
    )


def _read_derived(reader: _Reader, what: str, node: yaml.nodes.Node, names: list[str]) -> list[str]:
    if not isinstance(node, yaml.nodes.SequenceNode):
        reader.report(node, f"derived_from of {what} must be a list of cache node names")
        return []
    parents: list[str] = []
    for item in node.value:
        parent = reader.string(item, f"an entry of derived_from of {what}")
        if parent is None:
            continue
        if parent not in names:
            reader.report(
                item,
                f"{what} is derived from {parent!r}, which is not declared under caches"
                f"{did_you_mean(parent, names)}",
            )
        elif parent in parents:
            reader.report(item, f"{what} names {parent!r} twice in derived_from; keep one")
        else:
            parents.append(parent)
    return parents


def _is_null(node: yaml.nodes.Node) -> bool:
    return isinstance(node, yaml.nodes.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
