"""What each event type's plan may hold, as plain data: the flush specs a coordinator checks
plans from the bus against (``runtime.PlanChecker``, docs/trust.md), and that generated
handler packages list as ``FLUSH_SPECS``."""

from __future__ import annotations

from damestoilet_contracts.compiler._stages import compile_event
from damestoilet_contracts.model import ContractSet

#: ``(op, target, mode, template source)``.
FlushSpec = tuple[str, str, str, str]


def flush_specs(contracts: ContractSet) -> dict[str, tuple[FlushSpec, ...]]:
    """Per event type (sorted by name), the distinct ``(op, target, mode, template)`` its
    rules and cascades can produce, in plan order. Raises :class:`ContractError` as
    :func:`compile_event` does."""
    out: dict[str, tuple[FlushSpec, ...]] = {}
    for name in sorted(contracts.events):
        plan = compile_event(contracts.events[name], contracts.graph)
        specs = (
            (spec.op.value, spec.target, spec.mode.value, spec.template.source) for spec in plan.ops
        )
        out[name] = tuple(dict.fromkeys(specs))
    return out
