"""Purge targets routed by name: one coordinator purges several targets, each on its own
backend (``--target NAME=URL``, repeatable), with an optional default backend for every name
not bound on its own (today's ``--redis``).

A router is itself a purge target: :meth:`TargetRouter.purge_stage` splits one stage by
backend (keeping the order of each backend's ops), and calls each backend once. A name with
no backend raises :class:`UnboundTargetError`; the coordinator checks every plan against
:meth:`TargetRouter.is_bound` first and dead-letters such an event with the reason, and the
CLI refuses to start when the flush graph names a target nothing is bound to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from damestoilet_contracts._errors import UnboundTargetError
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime._seams import AsyncPurgeTarget, PurgeTarget

T = TypeVar("T")


class StageStats:
    """The results of one stage purged through several backends, read as one: ``keys``,
    ``prefix_keys``, ``tag_keys``, ``soft_marked`` and ``spread`` are the sums of theirs,
    ``storm`` the storm guard's engagements of them all."""

    def __init__(self, results: Sequence[object]) -> None:
        self.results = list(results)

    def _sum(self, attr: str) -> int:
        total = 0
        for result in self.results:
            value = getattr(result, attr, 0)
            if isinstance(value, int):
                total += value
        return total

    @property
    def keys(self) -> int:
        """Keys purged by ``op: key``."""
        return self._sum("keys")

    @property
    def prefix_keys(self) -> int:
        """Keys purged by prefix."""
        return self._sum("prefix_keys")

    @property
    def tag_keys(self) -> int:
        """Keys purged by tag."""
        return self._sum("tag_keys")

    @property
    def soft_marked(self) -> int:
        """Keys soft-marked rather than removed."""
        return self._sum("soft_marked")

    @property
    def spread(self) -> int:
        """Keys the storm guard spread rather than deleted."""
        return self._sum("spread")

    @property
    def storm(self) -> tuple[object, ...]:
        """What the storm guard did, per op it engaged on, over every backend."""
        return tuple(e for result in self.results for e in getattr(result, "storm", ()))


class _Routes(Generic[T]):
    def __init__(self, bound: Mapping[str, T], default: T | None) -> None:
        for name in bound:
            if not name or name != name.strip() or "=" in name:
                raise ValueError(f"target name {name!r} must be non-empty, without spaces or '='")
        self.bound = dict(bound)
        self.default = default

    def is_bound(self, name: str) -> bool:
        """Whether ops of target ``name`` have a backend (their own, or the default)."""
        return name in self.bound or self.default is not None

    def unbound(self, names: Iterable[str]) -> list[str]:
        """The names of ``names`` with no backend, sorted."""
        return sorted({name for name in names if not self.is_bound(name)})

    def split(self, ops: Sequence[FlushOp]) -> list[tuple[T, list[FlushOp]]]:
        """``ops`` by backend, in order of first appearance; raises UnboundTargetError."""
        out: dict[int, tuple[T, list[FlushOp]]] = {}
        for op in ops:
            backend = self.bound.get(op.target, self.default)
            if backend is None:
                raise UnboundTargetError(
                    f"op for target {op.target!r} but no purge backend is bound to it; "
                    f"bind one with --target {op.target}=URL"
                )
            slot = out.get(id(backend))
            if slot is None:
                out[id(backend)] = (backend, [op])
            else:
                slot[1].append(op)
        return list(out.values())


class TargetRouter(_Routes[PurgeTarget]):
    """Sends each op of a stage to the purge target bound to its target name."""

    def __init__(
        self, bound: Mapping[str, PurgeTarget], default: PurgeTarget | None = None
    ) -> None:
        """``bound`` maps target names to backends; ``default`` serves every other name
        (None: other names are unbound). Raises ValueError for a malformed name."""
        super().__init__(bound, default)

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """Purge one stage, one call per backend; returns the backend's result, or a
        :class:`StageStats` over several. Raises what a backend raises, or
        :class:`UnboundTargetError`."""
        parts = self.split(ops)
        if len(parts) == 1:
            backend, part = parts[0]
            return backend.purge_stage(part)
        return StageStats([backend.purge_stage(part) for backend, part in parts])


class AsyncTargetRouter(_Routes[AsyncPurgeTarget]):
    """:class:`TargetRouter` over asyncio purge targets."""

    def __init__(
        self, bound: Mapping[str, AsyncPurgeTarget], default: AsyncPurgeTarget | None = None
    ) -> None:
        """See :class:`TargetRouter`."""
        super().__init__(bound, default)

    async def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """See :meth:`TargetRouter.purge_stage`."""
        parts = self.split(ops)
        if len(parts) == 1:
            backend, part = parts[0]
            return await backend.purge_stage(part)
        return StageStats([await backend.purge_stage(part) for backend, part in parts])
