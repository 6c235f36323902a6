"""An in-memory bus for pure unit tests of a service's emits: no Redis, the same emitter API.

``MemoryBus().emitter(source=...)`` (and ``async_emitter``) are drop-in stand-ins for
:class:`Emitter` and :class:`AsyncEmitter`: they plan and wrap each event exactly as the real
ones do (a :class:`PlanError` still sends none of a batch, a closed one still refuses), and
append the envelopes to the bus's list instead of a stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import ContractEvent, Envelope
from damestoilet_contracts.runtime._emitter import _EmitterBase


class MemoryBus:
    """What was emitted, in order: ``envelopes``, and views of them for assertions."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    def emitter(self, *, source: str = "//tests", stream: str = "memory") -> MemoryEmitter:
        """A sync emitter onto this bus (the :class:`Emitter` API)."""
        return MemoryEmitter(self, source=source, stream=stream)

    def async_emitter(
        self, *, source: str = "//tests", stream: str = "memory"
    ) -> AsyncMemoryEmitter:
        """An asyncio emitter onto this bus (the :class:`AsyncEmitter` API)."""
        return AsyncMemoryEmitter(self, source=source, stream=stream)

    @property
    def types(self) -> list[str]:
        """The event type of each envelope, in emit order."""
        return [envelope.type for envelope in self.envelopes]

    def ops(self, type_name: str | None = None) -> list[FlushOp]:
        """Every planned op of the envelopes (of ``type_name`` only, when given), in order."""
        return [
            op
            for envelope in self.envelopes
            if envelope.plan is not None and type_name in (None, envelope.type)
            for op in envelope.plan.ops
        ]

    def planned(self, type_name: str | None = None) -> list[str]:
        """The key, prefix or tag of each planned op, in order (see :meth:`ops`)."""
        return [op.key for op in self.ops(type_name)]

    def clear(self) -> None:
        """Forget what was emitted."""
        self.envelopes.clear()


class MemoryEmitter(_EmitterBase):
    """:class:`Emitter`'s API over a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus, *, source: str, stream: str) -> None:
        super().__init__(stream=stream, source=source, maxlen=None)
        self.bus = bus

    def emit(self, event: ContractEvent) -> str:
        """Plan and record one event; returns its envelope id."""
        return self.emit_envelopes([self.envelope(event)])[0]

    def emit_many(self, events: Iterable[ContractEvent]) -> list[str]:
        """Plan every event, then record them all; returns their envelope ids."""
        return self.emit_envelopes([self.envelope(e) for e in events])

    def emit_envelopes(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Record ready envelopes; returns their ids. Raises when closed, as the real one."""
        self._check_open()
        self.bus.envelopes.extend(envelopes)
        return [env.id for env in envelopes]

    def close(self) -> None:
        """Refuse further emits."""
        self._closed = True

    def __enter__(self) -> MemoryEmitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncMemoryEmitter(_EmitterBase):
    """:class:`AsyncEmitter`'s API over a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus, *, source: str, stream: str) -> None:
        super().__init__(stream=stream, source=source, maxlen=None)
        self.bus = bus

    async def emit(self, event: ContractEvent) -> str:
        """Plan and record one event; returns its envelope id."""
        return (await self.emit_envelopes([self.envelope(event)]))[0]

    async def emit_many(self, events: Iterable[ContractEvent]) -> list[str]:
        """Plan every event, then record them all; returns their envelope ids."""
        return await self.emit_envelopes([self.envelope(e) for e in events])

    async def emit_envelopes(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Record ready envelopes; returns their ids. Raises when closed, as the real one."""
        self._check_open()
        self.bus.envelopes.extend(envelopes)
        return [env.id for env in envelopes]

    async def aclose(self) -> None:
        """Refuse further emits."""
        self._closed = True

    async def __aenter__(self) -> AsyncMemoryEmitter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
