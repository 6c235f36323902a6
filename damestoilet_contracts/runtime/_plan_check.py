"""Checking a plan from the bus before anything is deleted (docs/trust.md).

A plan on the stream is data from the network: anyone who can write to the stream can write
one. :class:`PlanChecker` says why a plan must not run, or None, with no I/O:

- always: no op may touch the coordinator's own keys (its namespace, ``damestoilet:``, and
  its streams), except through the operations that own them (a tag op reads its tag set);
  a prefix that is itself a prefix of a protected name is refused too, since it covers it;
- given the contracts (``flush specs``: per event type, the ``(op, target, mode, template)``
  its rules and cascades can produce): the type must be declared; each op must have the
  op, target and mode of one of its specs, with a key that matches that spec's template
  (its literal parts, each placeholder standing for a non-empty value); and the plan may
  hold at most ``cap`` operations.

The matcher needs no regular expression: a template is literal segments between
placeholders that each stand for one or more characters, so placing each middle segment at
its leftmost possible position decides a match in one pass (no backtracking to exploit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.model._template import DEFAULT_FANOUT_CAP, Placeholder, parse_template
from damestoilet_contracts.runtime.redis._layout import NAMESPACE

#: One spec: ``(op, target, mode, template source)``, as ``compiler.flush_specs`` gives and
#: generated handler packages list in ``FLUSH_SPECS``.
FlushSpec = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class KeyPattern:
    """A template as its literal segments: ``head``, the ``middle`` ones, ``tail``;
    ``holes`` placeholders (0: the key is ``head`` exactly)."""

    source: str
    head: str
    middle: tuple[str, ...]
    tail: str
    holes: int

    @classmethod
    def parse(cls, source: str) -> KeyPattern:
        """The pattern of template ``source``; raises TemplateError when it is malformed."""
        literals: list[str] = [""]
        holes = 0
        for part in parse_template(source).parts:
            if isinstance(part, Placeholder):
                holes += 1
                literals.append("")
            else:
                literals[-1] += part
        if holes == 0:
            return cls(source, literals[0], (), "", 0)
        return cls(source, literals[0], tuple(literals[1:-1]), literals[-1], holes)

    def matches(self, key: str) -> bool:
        """Whether some non-empty values for the placeholders render ``key``."""
        if not self.holes:
            return key == self.head
        if not (key.startswith(self.head) and key.endswith(self.tail)):
            return False
        pos, end = len(self.head), len(key) - len(self.tail)
        for literal in self.middle:
            found = key.find(literal, pos + 1, end)  # the placeholder before takes >= 1 char
            if found < 0:
                return False
            pos = found + len(literal)
        return pos < end  # the last placeholder takes >= 1 char


#: Per event type: the key patterns of each ``(op, target, mode)`` its specs produce.
_Allowed = dict[tuple[str, str, str], tuple[KeyPattern, ...]]


class PlanChecker:
    """Decides whether a plan may run: :meth:`check` returns the reason it may not, or None."""

    def __init__(
        self,
        specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        *,
        protected: Sequence[str] = (),
        cap: int = DEFAULT_FANOUT_CAP,
    ) -> None:
        """Check against ``specs`` (event type -> flush specs; None: only the namespace
        guard); ``protected`` adds exact key names (the coordinator's streams) to the
        ``damestoilet:`` namespace; ``cap`` bounds a plan's operations when ``specs`` are
        given. Raises TemplateError for a malformed template in ``specs``."""
        self.cap = cap
        self._prefixes = (NAMESPACE,)
        self._names = tuple(dict.fromkeys(protected))
        self._types: dict[str, _Allowed] | None = None
        if specs is not None:
            self._types = {}
            for type_name, type_specs in specs.items():
                by_kind: dict[tuple[str, str, str], list[KeyPattern]] = {}
                for op, target, mode, template in type_specs:
                    pattern = KeyPattern.parse(template)
                    kind = by_kind.setdefault((op, target, mode), [])
                    if pattern not in kind:
                        kind.append(pattern)
                self._types[type_name] = {k: tuple(v) for k, v in by_kind.items()}

    @property
    def has_contracts(self) -> bool:
        """Whether plans are checked against contracts, not only the namespace guard."""
        return self._types is not None

    def check(self, plan: Plan) -> str | None:
        """Why ``plan`` must not run (one sentence naming the op), or None when it may."""
        prefixes, names, protected = self._prefixes, self._names, self._protected
        for stage in plan.stages:
            for op in stage:
                # an exact key, the common case, tested here: once per key of a backlog
                if op.op == "key" and not op.key.startswith(prefixes) and op.key not in names:
                    continue
                if protected(op):
                    return (
                        f"{_describe(op)} touches the coordinator's own keys "
                        f"({NAMESPACE}* or its streams)"
                    )
        if self._types is None:
            return None
        allowed = self._types.get(plan.type)
        if allowed is None:
            return f"type {plan.type} is not declared in the contracts"
        count = 0
        for stage in plan.stages:
            count += len(stage)
            if count > self.cap:
                return f"the plan holds more than {self.cap} operations (the fan-out cap)"
            for op in stage:
                patterns = allowed.get((op.op, op.target, op.mode))
                if patterns is None:
                    return (
                        f"{_describe(op)}: no rule or cascade of {plan.type} purges by "
                        f"{op.op} on target {op.target} in mode {op.mode}"
                    )
                if not any(p.matches(op.key) for p in patterns):
                    templates = ", ".join(p.source for p in patterns)
                    return f"{_describe(op)} matches none of its templates ({templates})"
        return None

    def _protected(self, op: FlushOp) -> bool:
        key = op.key
        if op.op == "tag":
            return False  # a tag op reads damestoilet:tag:<tag>, the set it owns
        if key.startswith(self._prefixes) or key in self._names:
            return True
        if op.op == "prefix":
            # A prefix covering a protected name ("damestoilet", "d", the stream's start).
            return any(name.startswith(key) for name in (*self._prefixes, *self._names))
        return False


def _describe(op: FlushOp) -> str:
    key = op.key if len(op.key) <= 80 else op.key[:77] + "..."
    return f"{op.op} {key!r} (target {op.target}, {op.mode})"
