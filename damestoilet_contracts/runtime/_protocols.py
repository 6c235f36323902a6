"""The small protocols the coordinator is written against, so that it needs no concrete
purge backend: the Redis purge target satisfies :class:`PurgeTarget`, and so may others."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeAlias

from damestoilet_contracts.model import FlushOp, Plan


class PurgeTarget(Protocol):
    """Executes one stage of a flush plan; raises on failure, returns statistics or None."""

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """Purge every operation of ``ops`` (one stage); raise :class:`PurgeError` on failure."""
        ...


#: Computes the plan of an event from its encoded payload (a generated flush handler).
FlushHandler: TypeAlias = Callable[[bytes], Plan]

#: Flush handlers by event type full name, as a handlers package exposes them in ``HANDLERS``.
HandlerRegistry: TypeAlias = Mapping[str, FlushHandler]
