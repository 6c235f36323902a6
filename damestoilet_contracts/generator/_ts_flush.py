"""A compiled flush plan as TypeScript, straight-line, with the Python plan's semantics.

The same work as :mod:`._flush` does for Python: one template literal per template, a ``for``
loop per repeated field, an ``if`` per rule that ``if_absent: skip`` may drop, the stages of
the flush graph already ordered. Keys come in the interpreter's order (first placeholder
slowest), repeats within a stage are dropped (first kept) where they can occur, the fan-out
cap counts every key before repeats are dropped, and values render canonically (integers in
decimal, booleans ``true``/``false``, enums by symbol, UUIDs lowercase), so the plan equals
Python's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from damestoilet_contracts.compiler import OpSpec, PlanSpec
from damestoilet_contracts.generator._flush import may_collide
from damestoilet_contracts.generator._ts_names import template_text, ts_str
from damestoilet_contracts.generator._ts_types import TsCodegenError, TsImports
from damestoilet_contracts.model import EventType, IfAbsent, Kind, Placeholder, TypeRef


@dataclass(frozen=True, slots=True)
class TsAccess:
    """How generated code reaches one placeholder's value from ``this``."""

    dotted: str
    expr: str  # this.address.country
    nullable: tuple[str, ...]  # prefixes of expr that may be null, outermost first
    leaf: TypeRef
    fanout: bool


@dataclass(frozen=True, slots=True)
class TsPlanCode:
    """The TypeScript of one event's checks, key count and flush plan (lines, unindented)."""

    template_checks: tuple[str, ...]
    key_count: tuple[str, ...]
    plan: tuple[str, ...]


def resolve(
    event: EventType, placeholder: Placeholder, members: Mapping[tuple[str, str], str]
) -> TsAccess:
    """The access of ``placeholder``; ``members`` maps (record, field) to the member name."""
    current = event.record
    record_name = event.full_name
    expr = "this"
    nullable: list[str] = []
    for segment in placeholder.path:
        found = current.field(segment) if current.kind is Kind.RECORD else None
        if found is None:
            raise TsCodegenError(
                f"event {event.full_name}: template field {placeholder.dotted!r} names no field "
                "of the event; run damestoilet lint"
            )
        expr = f"{expr}.{members[(record_name, segment)]}"
        current = found.type
        if current.nullable:
            nullable.append(expr)
        record_name = current.name or ""
    fanout = current.kind is Kind.ARRAY
    leaf = current.items if fanout and current.items is not None else current
    return TsAccess(placeholder.dotted, expr, tuple(nullable), leaf, fanout)


def plan_code(
    event: EventType,
    spec: PlanSpec,
    members: Mapping[tuple[str, str], str],
    imports: TsImports,
) -> TsPlanCode:
    """The construction checks, ``keyCount()`` body and ``flushPlan(cap)`` body of ``event``."""
    builder = _Builder(event, members, imports)
    return TsPlanCode(
        template_checks=tuple(builder.template_checks(spec)),
        key_count=tuple(builder.key_count(spec)),
        plan=tuple(builder.plan(spec)),
    )


class _Builder:
    def __init__(
        self, event: EventType, members: Mapping[tuple[str, str], str], imports: TsImports
    ) -> None:
        self.event = event
        self.members = members
        self.imports = imports
        self.type_literal = ts_str(event.full_name)
        self._loops = 0

    def accesses(self, op: OpSpec) -> list[TsAccess]:
        return [resolve(self.event, p, self.members) for p in op.template.placeholders]

    def fans_out(self, spec: PlanSpec) -> bool:
        return any(a.fanout for op in spec.ops for a in self.accesses(op))

    # -- construction-time checks ------------------------------------------------------------

    def template_checks(self, spec: PlanSpec) -> list[str]:
        first: dict[str, TsAccess] = {}
        needed_by: dict[str, OpSpec] = {}
        for op in spec.ops:
            for access in self.accesses(op):
                first.setdefault(access.dotted, access)
                if op.if_absent is IfAbsent.ERROR and access.nullable:
                    needed_by.setdefault(access.dotted, op)
        out: list[str] = []
        for dotted, access in first.items():
            present = dotted in needed_by
            if present:
                out.extend(self._absent_guard(access, needed_by[dotted]))
            if access.leaf.kind is not Kind.STRING:
                continue
            self.imports.runtime.add("EmptyValueError")
            if access.fanout:
                test = f'{access.expr}.includes("")'
                what = "holds an empty string"
            else:
                test = f'{access.expr} === ""'
                what = "is empty"
            guards = [] if present else [f"{p} !== null" for p in access.nullable]
            message = ts_str(
                f"event {self.event.full_name}: field '{dotted}' {what}; an empty segment would "
                "widen the purge, so give it a value"
            )
            condition = " && ".join([*guards, test])
            out.append(f"if ({condition}) {{ throw new EmptyValueError({message}); }}")
        if self.fans_out(spec):
            self.imports.runtime.update({"checkFanout", "fanoutCap"})
            out.append(f"checkFanout({self.type_literal}, this.keyCount(), fanoutCap());")
        return out

    def _absent_guard(self, access: TsAccess, op: OpSpec) -> list[str]:
        self.imports.runtime.add("EmptyValueError")
        message = ts_str(
            f"event {self.event.full_name}: field '{access.dotted}' is absent, which "
            f"{op.op.value} '{op.template.source}' needs; set it, or give the rule "
            "if_absent: skip"
        )
        test = " || ".join(f"{p} === null" for p in access.nullable)
        return [f"if ({test}) {{ throw new EmptyValueError({message}); }}"]

    # -- key count ---------------------------------------------------------------------------

    def key_count(self, spec: PlanSpec) -> list[str]:
        constant = 0
        dynamic: list[str] = []
        for op in spec.ops:
            accesses = self.accesses(op)
            lengths = [f"{a.expr}.length" for a in accesses if a.fanout]
            skip = op.if_absent is IfAbsent.SKIP and _nullable(accesses)
            if not lengths and not skip:
                constant += 1
                continue
            term = " * ".join(lengths) if lengths else "1"
            if skip:
                dynamic.append(f"if ({_present(accesses)}) {{ count += {term}; }}")
            else:
                dynamic.extend(self._error_guards(op, accesses))
                dynamic.append(f"count += {term};")
        if not dynamic:
            return [f"return {constant};"]
        return [f"let count = {constant};", *dynamic, "return count;"]

    # -- the plan ----------------------------------------------------------------------------

    def plan(self, spec: PlanSpec) -> list[str]:
        self.imports.runtime.update({"FlushOp", "Plan", "checkFanout"})
        out = [f"checkFanout({self.type_literal}, this.keyCount(), cap);"]
        names: list[str] = []
        for index, stage in enumerate(spec.stages):
            name = f"stage{index}"
            names.append(name)
            out.extend(self._stage(name, stage))
        out.append(f"return {{ type: {self.type_literal}, stages: [{', '.join(names)}] }};")
        return out

    def _stage(self, name: str, stage: Sequence[OpSpec]) -> list[str]:
        if not stage:
            return [f"const {name}: readonly FlushOp[] = [];"]
        parts = [(op, self.accesses(op)) for op in stage]
        dynamic = any(
            any(a.fanout for a in accesses)
            or (op.if_absent is IfAbsent.SKIP and _nullable(accesses))
            for op, accesses in parts
        )
        if not dynamic:
            out: list[str] = []
            for op, accesses in parts:
                out.extend(self._error_guards(op, accesses))
            items = ", ".join(self._flush_op(op, accesses, {}) for op, accesses in parts)
            if any(may_collide(a, b) for i, a in enumerate(stage) for b in stage[i + 1 :]):
                self.imports.runtime.add("uniqueOps")
                out.append(f"const {name}: readonly FlushOp[] = uniqueOps([{items}]);")
            else:
                out.append(f"const {name}: readonly FlushOp[] = [{items}];")
            return out
        ops = f"{name}Ops"
        out = [f"const {ops}: FlushOp[] = [];"]
        for op, accesses in parts:
            out.extend(self._op(ops, op, accesses))
        # Repeats are possible only where two ops may coincide or an array fans out (as in
        # the Python plan, which drops them only there too).
        if any(a.fanout for _, accesses in parts for a in accesses) or any(
            may_collide(a, b) for i, a in enumerate(stage) for b in stage[i + 1 :]
        ):
            self.imports.runtime.add("uniqueOps")
            out.append(f"const {name}: readonly FlushOp[] = uniqueOps({ops});")
        else:
            out.append(f"const {name}: readonly FlushOp[] = {ops};")
        return out

    def _op(self, ops: str, op: OpSpec, accesses: list[TsAccess]) -> list[str]:
        loops: list[tuple[str, str]] = []
        bound: dict[int, str] = {}
        for index, access in enumerate(accesses):
            if access.fanout:
                variable = f"value{self._loops}"
                self._loops += 1
                loops.append((variable, access.expr))
                bound[index] = variable
        body = [f"{ops}.push({self._flush_op(op, accesses, bound)});"]
        for variable, iterable in reversed(loops):
            body = [f"for (const {variable} of {iterable}) {{", *body, "}"]
        if op.if_absent is IfAbsent.SKIP and _nullable(accesses):
            return [f"if ({_present(accesses)}) {{", *body, "}"]
        return [*self._error_guards(op, accesses), *body]

    def _error_guards(self, op: OpSpec, accesses: list[TsAccess]) -> list[str]:
        """Guards that narrow nullable fields of an if_absent=error rule (checked at
        construction already, so they never fire on a constructed event)."""
        if op.if_absent is not IfAbsent.ERROR:
            return []
        seen: set[str] = set()
        out: list[str] = []
        for access in accesses:
            if access.nullable and access.dotted not in seen:
                seen.add(access.dotted)
                out.extend(self._absent_guard(access, op))
        return out

    def _flush_op(self, op: OpSpec, accesses: list[TsAccess], bound: Mapping[int, str]) -> str:
        key = self._key(op, accesses, bound)
        return (
            f"{{ op: {ts_str(op.op.value)}, target: {ts_str(op.target)}, key: {key}, "
            f"mode: {ts_str(op.mode.value)} }}"
        )

    def _key(self, op: OpSpec, accesses: list[TsAccess], bound: Mapping[int, str]) -> str:
        pieces: list[str] = []
        index = 0
        for part in op.template.parts:
            if isinstance(part, str):
                pieces.append(template_text(part))
                continue
            access = accesses[index]
            expr = bound.get(index, access.expr)
            index += 1
            if len(op.template.parts) == 1 and access.leaf.kind in (Kind.STRING, Kind.UUID):
                return expr
            pieces.append("${" + self._render(expr, access.leaf) + "}")
        return "`" + "".join(pieces) + "`"

    def _render(self, expr: str, leaf: TypeRef) -> str:
        kind = leaf.kind
        if kind is Kind.BOOL:
            return f'{expr} ? "true" : "false"'
        if kind in (Kind.STRING, Kind.INT, Kind.UUID, Kind.ENUM):
            return expr
        raise TsCodegenError(
            f"event {self.event.full_name}: {leaf.describe()} is not key-safe; run damestoilet lint"
        )


def _nullable(accesses: Sequence[TsAccess]) -> bool:
    return any(a.nullable for a in accesses)


def _present(accesses: Sequence[TsAccess]) -> str:
    prefixes = dict.fromkeys(p for a in accesses for p in a.nullable)
    return " && ".join(f"{p} !== null" for p in prefixes)
