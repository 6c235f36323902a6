"""Emitters: wrap generated events in envelopes and append them to a Redis stream.

:class:`Emitter` (sync) and :class:`AsyncEmitter` (``redis.asyncio``) share one base that does
everything but I/O: building the envelope and the ``XADD`` arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import redis
import redis.asyncio

from damestoilet_contracts._errors import EmitterClosedError
from damestoilet_contracts.runtime._envelope import STREAM_VERSION, Envelope
from damestoilet_contracts.runtime._event import ContractEvent
from damestoilet_contracts.runtime._signing import SIGNATURE_FIELD, SigningKeys
from damestoilet_contracts.runtime._uri import check_source
from damestoilet_contracts.runtime.redis._bus import (
    DEFAULT_MAXLEN,
    DEFAULT_STREAM,
    SyncRedis,
    connect,
    xadd_options,
)


class _EmitterBase:
    """What both emitters share: stream, source, cap, and envelope building (no I/O)."""

    def __init__(
        self,
        *,
        stream: str,
        source: str,
        maxlen: int | None,
        signing: SigningKeys | None = None,
    ) -> None:
        if not source:
            raise ValueError("an emitter needs a source naming the emitting service")
        check_source(source)  # a CloudEvents URI-reference: refused here, not at the first emit
        self.stream = stream
        self.source = source
        self.maxlen = maxlen
        self._options = xadd_options(maxlen)
        self._closed = False
        self.signing = signing

    @property
    def closed(self) -> bool:
        """Whether ``close()`` (``aclose()``) was called; a closed emitter refuses to emit."""
        return self._closed

    def envelope(self, event: ContractEvent) -> Envelope:
        """The envelope ``event`` travels in; raises :class:`PlanError` if it cannot be planned."""
        return Envelope.from_event(event, source=self.source)

    def _prepare(self, envelopes: Iterable[Envelope]) -> list[tuple[str, dict[str, bytes]]]:
        if self._closed:
            raise EmitterClosedError(
                f"this emitter of {self.source} onto {self.stream} was closed; nothing was "
                "sent. Emit before close(), or make a new emitter"
            )
        prepared = [(env.id, env.to_fields(version=STREAM_VERSION)) for env in envelopes]
        if self.signing is not None:
            for _, fields in prepared:
                fields[SIGNATURE_FIELD] = self.signing.sign(fields)
        return prepared


class Emitter(_EmitterBase):
    """Appends events to a Redis stream, one ``XADD`` each or many in one pipeline."""

    def __init__(
        self,
        client: SyncRedis,
        *,
        source: str,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """Emit through ``client`` onto ``stream``, capped near ``maxlen`` entries (None: no
        cap); ``source`` is the CloudEvents source; ``owns_client``: close it on close();
        ``signing`` signs every entry (an ``s`` field, docs/trust.md)."""
        super().__init__(stream=stream, source=source, maxlen=maxlen, signing=signing)
        self._client: Any = client
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        source: str,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        cluster: bool = False,
        signing: SigningKeys | None = None,
    ) -> Emitter:
        """An emitter with its own client for ``url`` (``redis://host:port/db``; with
        ``cluster``, any node of a Redis Cluster)."""
        client = connect(url, cluster=cluster)
        return cls(
            client, source=source, stream=stream, maxlen=maxlen, owns_client=True, signing=signing
        )

    def emit(self, event: ContractEvent) -> str:
        """Emit one event; returns its envelope id. Raises :class:`PlanError` or a Redis error."""
        return self.emit_envelopes([self.envelope(event)])[0]

    def emit_many(self, events: Iterable[ContractEvent]) -> list[str]:
        """Emit events in one pipeline, in order; returns their envelope ids. Every event is
        planned before anything is sent, so a :class:`PlanError` sends none of them."""
        return self.emit_envelopes([self.envelope(e) for e in events])

    def emit_envelopes(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Append ready envelopes in one pipeline; returns their envelope ids."""
        prepared = self._prepare(envelopes)
        if len(prepared) == 1:
            self._client.xadd(self.stream, prepared[0][1], **self._options)
        elif prepared:
            pipe = self._client.pipeline(transaction=False)
            for _, fields in prepared:
                pipe.xadd(self.stream, fields, **self._options)
            pipe.execute()
        return [env_id for env_id, _ in prepared]

    def close(self) -> None:
        """Refuse further emits, and close the client if this emitter created it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEmitter(_EmitterBase):
    """Appends events to a Redis stream from asyncio code (``redis.asyncio``)."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        source: str,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """Like :class:`Emitter`, over an asyncio client."""
        super().__init__(stream=stream, source=source, maxlen=maxlen, signing=signing)
        self._client: Any = client
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        source: str,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        cluster: bool = False,
        signing: SigningKeys | None = None,
    ) -> AsyncEmitter:
        """An emitter with its own asyncio client for ``url`` (with ``cluster``, any node of
        a Redis Cluster)."""
        client: Any = (
            redis.asyncio.RedisCluster.from_url(url)
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        return cls(
            client, source=source, stream=stream, maxlen=maxlen, owns_client=True, signing=signing
        )

    async def emit(self, event: ContractEvent) -> str:
        """Emit one event; returns its envelope id."""
        return (await self.emit_envelopes([self.envelope(event)]))[0]

    async def emit_many(self, events: Iterable[ContractEvent]) -> list[str]:
        """Emit events in one pipeline, in order; returns their envelope ids."""
        return await self.emit_envelopes([self.envelope(e) for e in events])

    async def emit_envelopes(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Append ready envelopes in one pipeline; returns their envelope ids."""
        prepared = self._prepare(envelopes)
        if len(prepared) == 1:
            await self._client.xadd(self.stream, prepared[0][1], **self._options)
        elif prepared:
            pipe = self._client.pipeline(transaction=False)
            for _, fields in prepared:
                pipe.xadd(self.stream, fields, **self._options)
            await pipe.execute()
        return [env_id for env_id, _ in prepared]

    async def aclose(self) -> None:
        """Refuse further emits, and close the client if this emitter created it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncEmitter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
