"""Flush rules as written in either format, turned into model rules and checked against fields.

Both loaders reduce their format's annotation to :class:`RawRule` (attribute name to value,
strings as written, Protobuf enums already lowered to ``soft``/``skip``) and call
:func:`build_rules`. Every problem is collected, none raised, so lint reports them all in one run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from damestoilet_contracts._errors import Problem, SourceLocation, TemplateError
from damestoilet_contracts.model import (
    DEFAULT_TARGET,
    KEY_SAFE_KINDS,
    IfAbsent,
    Kind,
    Mode,
    Op,
    Rule,
    Scope,
    Template,
    TypeRef,
    parse_template,
)

#: The attribute that holds what a rule purges; a rule has exactly one.
WHAT_ATTRS = ("key", "prefix", "tag", "cache")
#: Every attribute a rule may have.
RULE_ATTRS = (*WHAT_ATTRS, "target", "mode", "if_absent", "scope", "storm")

#: How a message spells the annotation: the format's own syntax, so advice can be pasted.
Spelling = Literal["avro", "proto"]
_IF_ABSENT_SPELLING: dict[Spelling, tuple[str, str]] = {
    "avro": ('"if_absent": "skip"', '"if_absent": "error"'),
    "proto": ("if_absent: IF_ABSENT_SKIP", "if_absent: IF_ABSENT_ERROR"),
}
#: ``scope: namespace`` and ``storm: never`` in each syntax (the graph's YAML reads like Avro
#: without quotes).
SCOPE_NAMESPACE_SPELLING: dict[str, str] = {
    "avro": '"scope": "namespace"',
    "proto": "scope: SCOPE_NAMESPACE",
    "yaml": "scope: namespace",
}
STORM_NEVER_SPELLING: dict[str, str] = {
    "avro": '"storm": "never"',
    "proto": "storm: STORM_NEVER",
    "yaml": "storm: never",
}
#: The values of ``storm``: ``guard`` (the default) lets a target's storm guard spread a wide
#: delete out; ``never`` deletes at once whatever the guard says (money, permissions).
STORM_VALUES = ("guard", "never")


def check_width(op: Op, template: Template, scope: Scope, what: str, spelling: str) -> str | None:
    """Why a rule's or node's width is wrong, or None: a prefix or tag template without a
    placeholder flushes the same whole namespace on every event, so it must say
    ``scope: namespace``; that scope on anything else is a mistake."""
    wide = op in (Op.PREFIX, Op.TAG) and not template.placeholders
    if wide and scope is not Scope.NAMESPACE:
        return (
            f"{op.value} {template.source!r} of {what} has no placeholder, so every event "
            "flushes that whole namespace (a cache storm); name a field of the event in it, "
            f"or say it is meant with {SCOPE_NAMESPACE_SPELLING[spelling]}"
        )
    if scope is Scope.NAMESPACE and not wide:
        why = (
            "it names fields of the event" if template.placeholders else "a key rule purges one key"
        )
        return (
            f"{op.value} {template.source!r} of {what} says scope namespace, but {why}; "
            f"remove {SCOPE_NAMESPACE_SPELLING[spelling]}"
        )
    return None


@dataclass(frozen=True, slots=True)
class RawRule:
    """A rule as written: its attributes (name to value) and where it stands."""

    location: SourceLocation
    attrs: Mapping[str, object]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_template(
    template: Template,
    record: TypeRef,
    location: SourceLocation,
    *,
    if_absent_given: bool,
    what: str,
    spelling: Spelling = "avro",
) -> list[Problem]:
    """Check that every placeholder of ``template`` names a key-safe field of ``record``.

    ``what`` names the thing in messages (``"event catalog.v1.X"``, ``"cache node a.b"``).
    A path may walk through records (nullable ones too) and end on a key-safe scalar or an
    array of them (fan-out). A nullable field on the path needs ``if_absent`` to be given.
    ``spelling`` picks how advice is written: Avro JSON or Protobuf option text.
    Returns the problems found, located at ``location``.
    """
    problems: list[Problem] = []
    for placeholder in template.placeholders:
        message = _check_path(
            record, placeholder.path, if_absent_given=if_absent_given, spelling=spelling
        )
        if message is not None:
            problems.append(Problem(location, f"template {template.source!r} of {what}: {message}"))
    return problems


def _check_path(
    record: TypeRef, path: tuple[str, ...], *, if_absent_given: bool, spelling: Spelling
) -> str | None:
    current = record
    nullable = False
    walked: list[str] = []
    for index, segment in enumerate(path):
        if current.kind is not Kind.RECORD:
            return (
                f"{{{'.'.join(path)}}}: {'.'.join(walked)} is {current.describe()}, "
                "not a record; only records can be walked into"
            )
        field = current.field(segment)
        if field is None:
            where = f"record {'.'.join(walked)}" if walked else (current.name or "the event")
            return (
                f"{{{'.'.join(path)}}} names no field {segment!r} of {where}"
                f"{did_you_mean(segment, [f.name for f in current.fields])}"
            )
        walked.append(segment)
        current = field.type
        nullable = nullable or current.nullable
        is_leaf = index == len(path) - 1
        if not is_leaf and current.kind is Kind.ARRAY:
            return (
                f"{{{'.'.join(path)}}}: {'.'.join(walked)} is a repeated field; only a "
                "repeated scalar at the end of a path can fan out"
            )
    leaf = current
    if leaf.kind is Kind.ARRAY:
        if leaf.items is None or leaf.items.nullable or leaf.items.kind not in KEY_SAFE_KINDS:
            items = leaf.items.describe() if leaf.items is not None else "unknown"
            return (
                f"{{{'.'.join(path)}}} is an array of {items}; only arrays of strings, "
                "integers, booleans, enums or UUIDs can fan out"
            )
    elif leaf.kind is Kind.RECORD:
        examples = ", ".join(f"{{{'.'.join(path)}.{f.name}}}" for f in leaf.fields[:3])
        return f"{{{'.'.join(path)}}} is a record; name one of its fields, e.g. {examples}"
    elif leaf.kind not in KEY_SAFE_KINDS:
        return (
            f"{{{'.'.join(path)}}} is {leaf.describe()}; {leaf.kind.value} values are not "
            "key-safe (use strings, integers, booleans, enums or UUIDs)"
        )
    if nullable and not if_absent_given:
        skip, error = _IF_ABSENT_SPELLING[spelling]
        return (
            f"{{{'.'.join(path)}}} is nullable; say what to do when it is absent with "
            f"{skip} (drop this rule) or {error} (refuse the event)"
        )
    return None


def build_rules(
    event_name: str, record: TypeRef, raw_rules: Sequence[RawRule], *, spelling: Spelling = "avro"
) -> tuple[tuple[Rule, ...], list[Problem]]:
    """Turn raw rules into model rules, checking attributes and templates against ``record``.

    Returns the rules that are well-formed and every problem found. Unknown targets and cache
    nodes are left to lint, which knows the flush graph.
    """
    rules: list[Rule] = []
    problems: list[Problem] = []
    what = f"event {event_name}"
    for raw in raw_rules:
        found = _build_rule(what, record, raw, problems, spelling)
        if found is not None:
            rules.append(found)
    return tuple(rules), problems


def _build_rule(
    what: str, record: TypeRef, raw: RawRule, problems: list[Problem], spelling: Spelling
) -> Rule | None:
    loc = raw.location
    start = len(problems)
    for name in raw.attrs:
        if name not in RULE_ATTRS:
            problems.append(
                Problem(
                    loc,
                    f"unknown rule attribute {name!r} in {what}{did_you_mean(name, RULE_ATTRS)}"
                    f" (allowed: {', '.join(RULE_ATTRS)})",
                )
            )
    strings: dict[str, str] = {}
    for name, value in raw.attrs.items():
        if name in RULE_ATTRS:
            if not isinstance(value, str) or value == "":
                problems.append(
                    Problem(loc, f"rule attribute {name!r} in {what} must be a non-empty string")
                )
            else:
                strings[name] = value
    present = [a for a in WHAT_ATTRS if a in raw.attrs]
    if not present:
        problems.append(
            Problem(loc, f"a rule of {what} has none of key, prefix, tag, cache; give exactly one")
        )
    elif len(present) > 1:
        problems.append(
            Problem(
                loc,
                f"a rule of {what} has several of {', '.join(present)}; give exactly one "
                "(write one rule for each)",
            )
        )
    mode = Mode.DELETE
    if "mode" in strings:
        try:
            mode = Mode(strings["mode"])
        except ValueError:
            problems.append(
                Problem(loc, f"unknown mode {strings['mode']!r} in {what}; use delete or soft")
            )
    if_absent = IfAbsent.ERROR
    if "if_absent" in strings:
        try:
            if_absent = IfAbsent(strings["if_absent"])
        except ValueError:
            problems.append(
                Problem(
                    loc,
                    f"unknown if_absent {strings['if_absent']!r} in {what}; use skip or error",
                )
            )
    if mode is Mode.HARD:
        problems.append(
            Problem(
                loc,
                f"mode 'hard' in {what} is how a plan spells a delete that no storm guard "
                f"spreads; write it as {STORM_NEVER_SPELLING[spelling]}",
            )
        )
    scope = Scope.EVENT
    if "scope" in strings:
        try:
            scope = Scope(strings["scope"])
        except ValueError:
            problems.append(
                Problem(
                    loc,
                    f"unknown scope {strings['scope']!r} in {what}; use event (the default) or "
                    "namespace",
                )
            )
    if "storm" in strings:
        if strings["storm"] not in STORM_VALUES:
            problems.append(
                Problem(
                    loc,
                    f"unknown storm {strings['storm']!r} in {what}; use guard (the default) or "
                    "never",
                )
            )
        elif strings["storm"] == "never":
            if mode is Mode.SOFT:
                problems.append(
                    Problem(
                        loc,
                        f"a soft rule of {what} is never spread by a storm guard; remove "
                        f"{STORM_NEVER_SPELLING[spelling]}",
                    )
                )
            else:
                mode = Mode.HARD
    target = strings.get("target", DEFAULT_TARGET)
    if len(problems) > start or len(present) != 1 or present[0] not in strings:
        return None
    kind = present[0]
    if kind == "cache":
        if scope is not Scope.EVENT:
            problems.append(
                Problem(
                    loc,
                    f"a cache rule of {what} takes its scope from its node; remove "
                    f"{SCOPE_NAMESPACE_SPELLING[spelling]} (set it on the node in the flush graph)",
                )
            )
            return None
        return Rule(loc, cache=strings["cache"], target=target, mode=mode, if_absent=if_absent)
    try:
        template = parse_template(strings[kind])
    except TemplateError as exc:
        problems.append(Problem(loc, f"{kind} of {what}: {exc}"))
        return None
    template_problems = check_template(
        template, record, loc, if_absent_given="if_absent" in strings, what=what, spelling=spelling
    )
    width = check_width(Op(kind), template, scope, what, spelling)
    if width is not None:
        template_problems.append(Problem(loc, width))
    if template_problems:
        problems.extend(template_problems)
        return None
    return Rule(
        loc,
        op=Op(kind),
        template=template,
        target=target,
        mode=mode,
        if_absent=if_absent,
        scope=scope,
    )


def rules_fingerprint(rules: Sequence[Rule]) -> str:
    """SHA-256 (hex) of the rules' canonical text, in order; locations do not count.

    Avro's canonical form and ``buf breaking`` both ignore the annotations, so the rules get
    a fingerprint of their own.
    """
    text = json.dumps([rule.describe() for rule in rules], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
