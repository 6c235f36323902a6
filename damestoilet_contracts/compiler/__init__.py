"""The plan compiler: event types and the flush graph turned into ordered purge stages.

:func:`compile_event` gives the stages of templates once per event type; :func:`evaluate`
renders them for one payload into a :class:`~damestoilet_contracts.model.Plan`.
"""

from __future__ import annotations

from damestoilet_contracts.compiler._evaluate import evaluate, plan_for
from damestoilet_contracts.compiler._specs import FlushSpec, flush_specs
from damestoilet_contracts.compiler._stages import (
    OpSpec,
    PlanSpec,
    compile_event,
    find_cycles,
    format_cycle,
    reached_nodes,
)

__all__ = [
    "FlushSpec",
    "OpSpec",
    "PlanSpec",
    "compile_event",
    "evaluate",
    "find_cycles",
    "flush_specs",
    "format_cycle",
    "plan_for",
    "reached_nodes",
]
