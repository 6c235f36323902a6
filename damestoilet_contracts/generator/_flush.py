"""A compiled flush plan turned into Python specialised for one event type.

The interpreter (:func:`damestoilet_contracts.compiler.evaluate`) walks templates at run time;
the code built here does the same work in straight lines: one f-string per template, a ``for``
loop per repeated field, an ``if`` per rule that may be skipped. It keeps the interpreter's
semantics: keys in product order (first placeholder slowest), repeats within a stage dropped,
the fan-out cap counting every key of the event before repeats are dropped, values rendered
canonically (integers in decimal, booleans ``true``/``false``, enums by symbol, UUIDs lowercase).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.compiler import OpSpec, PlanSpec
from damestoilet_contracts.generator._code import (
    Imports,
    Line,
    Stmt,
    flatten,
    for_,
    if_,
    py_fstring_literal,
    py_str,
    split_text,
    wrapped_str,
)
from damestoilet_contracts.model import EventType, Format, IfAbsent, Kind, Placeholder, TypeRef


@dataclass(frozen=True, slots=True)
class Access:
    """How generated code reaches one placeholder's value from ``self``."""

    dotted: str
    expr: str  # self.address.country
    nullable: tuple[str, ...]  # prefixes of expr that may be None, outermost first
    leaf: TypeRef  # the scalar type; the element type when the field fans out
    fanout: bool


@dataclass(frozen=True, slots=True)
class PlanCode:
    """The code of one event's flush plan and the construction checks it relies on."""

    template_checks: tuple[str, ...]
    key_count: tuple[str, ...]
    fanout: bool
    plan: tuple[str, ...]


def resolve(
    event: EventType, placeholder: Placeholder, attrs: Mapping[tuple[str, str], str]
) -> Access:
    """The :class:`Access` of ``placeholder`` in ``event``; ``attrs`` maps (record, field) to
    the attribute name. Raises :class:`CodegenError` for a path lint would have refused."""
    current = event.record
    record_name = event.full_name
    expr = "self"
    nullable: list[str] = []
    for segment in placeholder.path:
        field = current.field(segment) if current.kind is Kind.RECORD else None
        if field is None:
            raise CodegenError(
                f"event {event.full_name}: template field {placeholder.dotted!r} names no field "
                "of the event; run damestoilet lint"
            )
        expr = f"{expr}.{attrs[(record_name, segment)]}"
        current = field.type
        if current.nullable:
            nullable.append(expr)
        record_name = current.name or ""
    fanout = current.kind is Kind.ARRAY
    leaf = current.items if fanout and current.items is not None else current
    return Access(placeholder.dotted, expr, tuple(nullable), leaf, fanout)


def plan_code(
    event: EventType,
    spec: PlanSpec,
    attrs: Mapping[tuple[str, str], str],
    imports: Imports,
) -> PlanCode:
    """The construction checks, ``key_count()`` body and ``flush_plan()`` body of ``event``."""
    builder = _PlanBuilder(event, attrs, imports)
    checks = builder.template_checks(spec)
    if builder.depends_on_payload(spec, fanout_only=True):
        # Refused where the event is built, against the module's cap; flush_plan(cap=...)
        # applies a caller's own cap again.
        imports.errors.add("FanOutError")
        checks.append(Line("count = self.key_count()"))
        checks.append(
            if_(
                "count > FANOUT_CAP",
                [Line(f"raise FanOutError({builder.cap_message('FANOUT_CAP', True)})")],
            )
        )
    return PlanCode(
        template_checks=tuple(flatten(checks)),
        key_count=tuple(flatten(builder.key_count(spec))),
        fanout=builder.depends_on_payload(spec, fanout_only=True),
        plan=tuple(flatten(builder.plan(spec))),
    )


class _PlanBuilder:
    """Builds the statements of one event; holds nothing but its inputs."""

    def __init__(
        self, event: EventType, attrs: Mapping[tuple[str, str], str], imports: Imports
    ) -> None:
        self.event = event
        self.attrs = attrs
        self.imports = imports
        self.format: Format = event.format
        self._loops = 0  # loop variables of flush_plan(), numbered so none is reused

    def accesses(self, op: OpSpec) -> list[Access]:
        return [resolve(self.event, p, self.attrs) for p in op.template.placeholders]

    def depends_on_payload(self, spec: PlanSpec, *, fanout_only: bool) -> bool:
        for op in spec.ops:
            accesses = self.accesses(op)
            if any(a.fanout for a in accesses):
                return True
            if not fanout_only and op.if_absent is IfAbsent.SKIP and _nullable(accesses):
                return True
        return False

    # -- construction-time checks ------------------------------------------------------------

    def template_checks(self, spec: PlanSpec) -> list[Stmt]:
        """Refuse an absent (if_absent error) or empty value of any field a template names."""
        first: dict[str, Access] = {}
        needed_by: dict[str, OpSpec] = {}
        for op in spec.ops:
            for access in self.accesses(op):
                first.setdefault(access.dotted, access)
                if op.if_absent is IfAbsent.ERROR and access.nullable:
                    needed_by.setdefault(access.dotted, op)
        out: list[Stmt] = []
        for dotted, access in first.items():
            present = dotted in needed_by
            if present:
                out.append(self._absent_guard(access, needed_by[dotted]))
            if access.leaf.kind is not Kind.STRING:
                continue
            self.imports.errors.add("EmptyValueError")
            if access.fanout:
                test = f'"" in {access.expr}'
                what = "holds an empty string"
            else:
                test = f'{access.expr} == ""'
                what = "is empty"
            guards = [] if present else [f"{p} is not None" for p in access.nullable]
            message = wrapped_str(
                f"event {self.event.full_name}: field {dotted!r} {what}; an empty segment would "
                "widen the purge, so give it a value"
            )
            out.append(
                if_(" and ".join([*guards, test]), [Line(f"raise EmptyValueError({message})")])
            )
        return out

    def _absent_guard(self, access: Access, op: OpSpec) -> Stmt:
        self.imports.errors.add("EmptyValueError")
        message = wrapped_str(
            f"event {self.event.full_name}: field {access.dotted!r} is absent, which "
            f"{op.op.value} {op.template.source!r} needs; set it, or give the rule "
            "if_absent: skip"
        )
        test = " or ".join(f"{p} is None" for p in access.nullable)
        return if_(test, [Line(f"raise EmptyValueError({message})")])

    # -- key count ---------------------------------------------------------------------------

    def key_count(self, spec: PlanSpec) -> list[Stmt]:
        """``key_count()``: the keys the plan renders before repeats are dropped."""
        constant = 0
        dynamic: list[Stmt] = []
        for op in spec.ops:
            accesses = self.accesses(op)
            lengths = [f"len({a.expr})" for a in accesses if a.fanout]
            skip = op.if_absent is IfAbsent.SKIP and _nullable(accesses)
            if not lengths and not skip:
                constant += 1
                continue
            term = " * ".join(lengths) if lengths else "1"
            statement: Stmt = Line(f"count += {term}")
            if skip:
                dynamic.append(if_(_present(accesses), [statement]))
            else:
                dynamic.extend(self._error_guards(op, accesses))
                dynamic.append(statement)
        if not dynamic:
            return [Line(f"return {constant}")]
        return [Line(f"count = {constant}"), *dynamic, Line("return count")]

    # -- the plan ----------------------------------------------------------------------------

    def plan(self, spec: PlanSpec) -> list[Stmt]:
        """``flush_plan()`` after ``limit`` is set: the cap check, the stages, the plan."""
        self.imports.model.update({"FlushOp", "Plan"})
        self.imports.errors.add("FanOutError")
        if self.depends_on_payload(spec, fanout_only=False):
            test = "count > limit"
            out: list[Stmt] = [Line("count = self.key_count()")]
        else:
            count = len(spec.ops)
            test = f"limit < {count}"
            out = []
        message = self.cap_message("limit", test.startswith("count"), len(spec.ops))
        out.append(if_(test, [Line(f"raise FanOutError({message})")]))
        names: list[str] = []
        for index, stage in enumerate(spec.stages):
            name = f"stage_{index}"
            names.append(name)
            out.extend(self._stage(name, stage))
        stages = f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"
        out.append(Line(f"return Plan({py_str(self.event.full_name)}, {stages})"))
        return out

    def cap_message(self, limit: str, counted: bool, constant: int = 0) -> str:
        """The FanOutError message: the key count (``count``, or ``constant``) over ``limit``."""
        count_text = "{count}" if counted else str(constant)
        return " ".join(
            [
                *(py_str(piece) for piece in split_text(f"event {self.event.full_name} ", 64)),
                f'f"fans out to {count_text} keys, more than the cap of {{{limit}}}; "',
                '"raise the cap (FANOUT_CAP, or flush_plan(cap=...)) or split the event"',
            ]
        )

    def _stage(self, name: str, stage: Sequence[OpSpec]) -> list[Stmt]:
        if not stage:
            return [Line(f"{name}: tuple[FlushOp, ...] = ()")]
        dedupe = any(may_collide(a, b) for i, a in enumerate(stage) for b in stage[i + 1 :])
        parts = [(op, self.accesses(op)) for op in stage]
        dynamic = any(
            any(a.fanout for a in accesses)
            or (op.if_absent is IfAbsent.SKIP and _nullable(accesses))
            for op, accesses in parts
        )
        dedupe = dedupe or any(a.fanout for _, accesses in parts for a in accesses)
        if not dynamic:
            out: list[Stmt] = []
            for op, accesses in parts:
                out.extend(self._error_guards(op, accesses))
            items = ", ".join(self._flush_op(op, accesses, {}) for op, accesses in parts)
            literal = f"({items},)" if len(parts) == 1 else f"({items})"
            value = f"tuple(dict.fromkeys({literal}))" if dedupe else literal
            out.append(Line(f"{name} = {value}"))
            return out
        ops_name = f"{name}_ops"
        out = [Line(f"{ops_name}: list[FlushOp] = []")]
        for op, accesses in parts:
            out.extend(self._op(ops_name, op, accesses))
        value = f"tuple(dict.fromkeys({ops_name}))" if dedupe else f"tuple({ops_name})"
        out.append(Line(f"{name} = {value}"))
        return out

    def _op(self, ops_name: str, op: OpSpec, accesses: list[Access]) -> list[Stmt]:
        loops: list[tuple[str, str]] = []
        bound: dict[int, str] = {}
        for index, access in enumerate(accesses):
            if access.fanout:
                variable = f"value_{self._loops}"
                self._loops += 1
                loops.append((variable, access.expr))
                bound[index] = variable
        body: list[Stmt] = [Line(f"{ops_name}.append({self._flush_op(op, accesses, bound)})")]
        for variable, iterable in reversed(loops):
            body = [for_(variable, iterable, body)]
        if op.if_absent is IfAbsent.SKIP and _nullable(accesses):
            return [if_(_present(accesses), body)]
        return [*self._error_guards(op, accesses), *body]

    def _error_guards(self, op: OpSpec, accesses: list[Access]) -> list[Stmt]:
        """Guards that narrow nullable fields of an if_absent=error rule (checked at
        construction already, so they never fire on a constructed event)."""
        if op.if_absent is not IfAbsent.ERROR:
            return []
        seen: set[str] = set()
        out: list[Stmt] = []
        for access in accesses:
            if access.nullable and access.dotted not in seen:
                seen.add(access.dotted)
                out.append(self._absent_guard(access, op))
        return out

    def _flush_op(self, op: OpSpec, accesses: list[Access], bound: Mapping[int, str]) -> str:
        key = self._key(op, accesses, bound)
        return (
            f"FlushOp({py_str(op.op.value)}, {py_str(op.target)}, {key}, {py_str(op.mode.value)})"
        )

    def _key(self, op: OpSpec, accesses: list[Access], bound: Mapping[int, str]) -> str:
        """The key expression: a literal, a bare string field, or f-strings (adjacent pieces
        when long, so that no generated line passes the line limit)."""
        pieces: list[tuple[str, bool]] = []  # (literal text or rendered expression, is expr)
        index = 0
        for part in op.template.parts:
            if isinstance(part, str):
                pieces.extend((text, False) for text in split_text(part, 48))
                continue
            access = accesses[index]
            expr = bound.get(index, access.expr)
            index += 1
            rendered = self._render(expr, access.leaf)
            if len(op.template.parts) == 1 and access.leaf.kind is Kind.STRING:
                return rendered
            pieces.append((rendered, True))
        chunks: list[list[tuple[str, bool]]] = [[]]
        for piece in pieces:
            if chunks[-1] and sum(len(t) for t, _ in chunks[-1]) + len(piece[0]) > 48:
                chunks.append([])
            chunks[-1].append(piece)
        out: list[str] = []
        for chunk in chunks:
            if not any(is_expr for _, is_expr in chunk):
                out.append(py_str("".join(text for text, _ in chunk)))
                continue
            body = "".join(
                "{" + text + "}" if is_expr else py_fstring_literal(text) for text, is_expr in chunk
            )
            out.append(f'f"{body}"')
        return " ".join(out)

    def _render(self, expr: str, leaf: TypeRef) -> str:
        kind = leaf.kind
        if kind is Kind.BOOL:
            return f"'true' if {expr} else 'false'"
        if kind is Kind.ENUM:
            # Avro enum members hold their symbol; Protobuf members their number.
            return f"{expr}.name" if self.format == "proto" else f"{expr}.value"
        if kind in (Kind.STRING, Kind.INT, Kind.UUID):
            return expr
        raise CodegenError(
            f"event {self.event.full_name}: {leaf.describe()} is not key-safe; run damestoilet lint"
        )


def _nullable(accesses: Sequence[Access]) -> bool:
    return any(a.nullable for a in accesses)


def _present(accesses: Sequence[Access]) -> str:
    prefixes = dict.fromkeys(p for a in accesses for p in a.nullable)
    return " and ".join(f"{p} is not None" for p in prefixes)


def may_collide(a: OpSpec, b: OpSpec) -> bool:
    """Whether two ops of a stage could render the same key (then the stage drops repeats)."""
    if (a.op, a.target, a.mode) != (b.op, b.target, b.mode):
        return False
    head_a, head_b = _literal_at(a, 0), _literal_at(b, 0)
    if not (head_a.startswith(head_b) or head_b.startswith(head_a)):
        return False
    tail_a, tail_b = _literal_at(a, -1), _literal_at(b, -1)
    return tail_a.endswith(tail_b) or tail_b.endswith(tail_a)


def _literal_at(op: OpSpec, index: int) -> str:
    parts = op.template.parts
    if not parts:
        return ""
    part = parts[index]
    return part if isinstance(part, str) else ""
