"""Lint for wide purges: short prefixes and the rules a target's storm guard can spread.

A ``prefix`` whose literal start is shorter than its target's ``min_prefix`` is a warning: a
value such as ``a`` would then purge every key starting with it. For every target with a storm
guard (``storm_max_keys``), each prefix or tag rule or cache node (the ops that can delete many
keys at once) that is not ``storm: never`` gets a note saying that the guard may spread it out,
and how to opt out.
"""

from __future__ import annotations

from damestoilet_contracts._errors import Problem, SourceLocation
from damestoilet_contracts.compiler import reached_nodes
from damestoilet_contracts.loaders._rules import STORM_NEVER_SPELLING
from damestoilet_contracts.model import EventType, FlushGraph, Mode, Op, Template


def literal_start(template: Template) -> str:
    """The literal text before the first placeholder of ``template`` (all of it if none)."""
    start = []
    for part in template.parts:
        if not isinstance(part, str):
            break
        start.append(part)
    return "".join(start)


def check_storm(event: EventType, graph: FlushGraph) -> list[Problem]:
    """Warnings for short prefixes and notes for guard-softenable rules of ``event``."""
    spelling = "proto" if event.format == "proto" else "avro"
    found: list[tuple[SourceLocation, Op, Template, str, Mode, str, str]] = []
    named = []
    for index, rule in enumerate(event.rules, start=1):
        if rule.cache is not None:
            named.append(rule.cache)
        elif rule.op is not None and rule.template is not None:
            what = f"rule {index} of event {event.full_name}"
            found.append(
                (rule.location, rule.op, rule.template, rule.target, rule.mode, what, spelling)
            )
    for name in sorted(reached_nodes(graph, named)):
        node = graph.nodes[name]
        what = f"cache node {name} (reached from event {event.full_name})"
        found.append((node.location, node.op, node.template, node.target, node.mode, what, "yaml"))
    problems: list[Problem] = []
    for location, op, template, target, mode, what, how in found:
        least = graph.min_prefix.get(target, 0)
        start = literal_start(template)
        if op is Op.PREFIX and len(start) < least:
            problems.append(
                Problem(
                    location,
                    f"prefix {template.source!r} of {what} starts with {len(start)} literal "
                    f"character{'s' if len(start) != 1 else ''} ({start!r}), fewer than the "
                    f"min_prefix {least} of target {target}: a short value would purge far "
                    f"more than meant; start it with at least {least} literal characters, a "
                    "namespace such as 'catalog:listing:' before the first placeholder",
                    severity="warning",
                )
            )
        guard = graph.storm.get(target)
        if guard is None or mode is not Mode.DELETE:
            continue
        if op is Op.KEY:
            continue  # exact keys are never spread (docs/storm.md)
        problems.append(
            Problem(
                location,
                f"{op.value} {template.source!r} of {what} may be spread out by the storm guard "
                f"of target {target}: past {guard.max_keys} keys, the rest go stale over "
                f"{guard.spread_seconds:g}s instead of at once; "
                f"if serving them stale is wrong, add {STORM_NEVER_SPELLING[how]}",
                severity="note",
            )
        )
    return problems
