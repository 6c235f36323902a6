"""A compiled plan rendered for one event payload: concrete keys, stage by stage.

The payload is JSON-shaped: nested objects for records, lists for repeated fields, enums by
symbol, UUIDs as text, integers as numbers (or decimal text, as Protobuf's JSON writes 64-bit
integers). Values render canonically (see :func:`~damestoilet_contracts.model.render_value`).
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from damestoilet_contracts._errors import (
    EmptyValueError,
    FanOutError,
    PayloadError,
    TemplateError,
)
from damestoilet_contracts.compiler._stages import OpSpec, PlanSpec, compile_event
from damestoilet_contracts.model import (
    DEFAULT_FANOUT_CAP,
    ContractSet,
    EventType,
    FlushOp,
    IfAbsent,
    Kind,
    Placeholder,
    Plan,
    TypeRef,
    render_value,
)
from damestoilet_contracts.model.json_form import payload_from_json

_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def evaluate(
    spec: PlanSpec,
    event: EventType,
    payload: Mapping[str, Any],
    *,
    cap: int = DEFAULT_FANOUT_CAP,
) -> Plan:
    """Render ``spec``, compiled for ``event``, with the values of ``payload``.

    Returns the :class:`Plan` with concrete keys; repeated ops within a stage are dropped.
    A rule whose template names an absent nullable field yields no keys when its
    ``if_absent`` is skip. Raises :class:`EmptyValueError` for a missing, null or empty value,
    :class:`FanOutError` when the event's keys would exceed ``cap``, :class:`PayloadError`
    for a value of the wrong type and :class:`TemplateError` when a template names a field the
    event type lacks or one that is not key-safe (lint reports those).
    """
    if not isinstance(payload, Mapping):
        raise PayloadError(f"the payload of {event.full_name} must be an object")
    total = 0
    stages: list[tuple[FlushOp, ...]] = []
    for stage in spec.stages:
        ops: list[FlushOp] = []
        for op_spec in stage:
            values = _values(op_spec, event, payload)
            if values is None:
                continue
            count = math.prod(1 if isinstance(v, str) else len(v) for v in values.values())
            total += count
            if total > cap:
                raise FanOutError(
                    f"event {event.full_name} fans out to more than {cap} keys "
                    f"({op_spec.op.value} {op_spec.template.source!r} adds {count}); "
                    "raise the cap or split the event"
                )
            for key in op_spec.template.render(values, cap=cap):
                ops.append(FlushOp(op_spec.op.value, op_spec.target, key, op_spec.mode.value))
        stages.append(tuple(dict.fromkeys(ops)))
    return Plan(event.full_name, tuple(stages))


def plan_for(
    contracts: ContractSet,
    type_name: str,
    payload: Mapping[str, Any],
    cap: int = DEFAULT_FANOUT_CAP,
) -> Plan:
    """The plan of the event ``type_name`` of ``contracts`` for ``payload``, a payload in the
    JSON form (:func:`~damestoilet_contracts.model.json_form.payload_from_json` checks all of
    it, as the generated ``from_dict()`` and ``damestoilet emit`` do, not only the fields the
    templates name).

    Raises :class:`PayloadError` for an unknown type or a payload that does not fit it, and
    what :func:`compile_event` and :func:`evaluate` raise.
    """
    event = contracts.events.get(type_name)
    if event is None:
        known = ", ".join(sorted(contracts.events)) or "none"
        raise PayloadError(f"unknown event type {type_name!r}; the contracts define: {known}")
    typed = payload_from_json(event, payload)
    return evaluate(compile_event(event, contracts.graph), event, typed, cap=cap)


def _values(
    op_spec: OpSpec, event: EventType, payload: Mapping[str, Any]
) -> dict[str, str | list[str]] | None:
    """Rendered value of each placeholder, or None when the op is skipped (absent field)."""
    values: dict[str, str | list[str]] = {}
    for placeholder in op_spec.template.placeholders:
        value = _lookup(event, placeholder, payload, op_spec)
        if value is None:
            if op_spec.if_absent is IfAbsent.SKIP:
                return None
            raise EmptyValueError(
                f"event {event.full_name}: field {placeholder.dotted!r} is absent, which "
                f"{op_spec.op.value} {op_spec.template.source!r} needs; set it, or give the "
                "rule if_absent: skip"
            )
        values[placeholder.dotted] = value
    return values


def _lookup(
    event: EventType, placeholder: Placeholder, payload: Mapping[str, Any], op_spec: OpSpec
) -> str | list[str] | None:
    """The rendered value(s) of ``placeholder``; None when a nullable field on it is absent."""
    current: TypeRef = event.record
    value: Any = payload
    walked: list[str] = []
    for segment in placeholder.path:
        field = current.field(segment) if current.kind is Kind.RECORD else None
        if field is None:
            raise TemplateError(
                f"{op_spec.origin or 'a rule'} of event {event.full_name}: template "
                f"{op_spec.template.source!r} names {placeholder.dotted!r}, which the event "
                "type does not have; run damestoilet lint"
            )
        walked.append(segment)
        dotted = ".".join(walked)
        if not isinstance(value, Mapping):
            raise PayloadError(
                f"event {event.full_name}: {'.'.join(walked[:-1])!r} must be an object"
            )
        current = field.type
        if segment not in value or value[segment] is None:
            if current.nullable:
                return None
            raise EmptyValueError(
                f"event {event.full_name}: required field {dotted!r} is "
                f"{'missing' if segment not in value else 'null'}; give it a value"
            )
        value = value[segment]
    dotted = placeholder.dotted
    if current.kind is Kind.ARRAY and current.items is not None:
        if not isinstance(value, list | tuple):
            raise PayloadError(f"event {event.full_name}: field {dotted!r} must be a list")
        return [_scalar(event, dotted, current.items, item) for item in value]
    return _scalar(event, dotted, current, value)


def _scalar(event: EventType, dotted: str, type_: TypeRef, value: Any) -> str:
    """The canonical text of one payload value of a key-safe type."""

    def wrong(expected: str) -> PayloadError:
        return PayloadError(
            f"event {event.full_name}: field {dotted!r} must be {expected}, not {value!r}"
        )

    if value is None:
        raise EmptyValueError(f"event {event.full_name}: field {dotted!r} holds a null element")
    kind = type_.kind
    if kind is Kind.STRING:
        if not isinstance(value, str):
            raise wrong("a string")
        text = value
    elif kind is Kind.INT:
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        text = render_value(value)
    elif kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise wrong("true or false")
        text = render_value(value)
    elif kind is Kind.ENUM:
        if isinstance(value, enum.Enum):
            value = value.name
        if not isinstance(value, str) or (type_.symbols and value not in type_.symbols):
            raise wrong(f"one of the symbols {', '.join(type_.symbols)}")
        text = value
    elif kind is Kind.UUID:
        try:
            parsed = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise wrong("a UUID") from None
        text = render_value(parsed)
    else:
        raise TemplateError(
            f"event {event.full_name}: field {dotted!r} is {type_.describe()}, which is not "
            "key-safe; run damestoilet lint"
        )
    if text == "":
        raise EmptyValueError(
            f"event {event.full_name}: field {dotted!r} is empty; an empty segment would "
            "widen the purge, so give it a value"
        )
    return text
