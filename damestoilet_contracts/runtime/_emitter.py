"""Emitters: wrap generated events in envelopes and publish them through a publisher (a
Redis stream, a JetStream subject, an outbox: :class:`~runtime._seams.Publisher`).

:class:`Emitter` (sync) and :class:`AsyncEmitter` share one base that does everything but
I/O: building and planning the envelopes. ``from_url`` picks the publisher by the URL's
scheme (``redis://``, ``rediss://``, ``nats://``, ``kafka://``); a redis-py client passed in
place of a publisher is wrapped in a Redis stream publisher, as before the seams.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from damestoilet_contracts._errors import ConfigError, EmitterClosedError
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._event import ContractEvent
from damestoilet_contracts.runtime._registry import open_backend
from damestoilet_contracts.runtime._seams import (
    DEFAULT_MAXLEN,
    DEFAULT_STREAM,
    AsyncPublisher,
    Publisher,
)
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime._uri import check_source
from damestoilet_contracts.runtime._wiring import check_signing

_UNSIGNED = (
    "the publisher given does not sign with these keys: build it with the same signing= "
    "(RedisPublisher, JetStreamPublisher, KafkaPublisher), or use Emitter.from_url(..., "
    "signing=keys)"
)


def _publisher_options(
    url: str, stream: str, maxlen: int | None, cluster: bool, signing: SigningKeys | None
) -> dict[str, Any]:
    options: dict[str, Any] = {"stream": stream}
    if cluster:
        options["cluster"] = True
    if maxlen != DEFAULT_MAXLEN:
        options["maxlen"] = maxlen
    if signing is not None:
        check_signing(signing, url)
        options["signing"] = signing
    return options


def _is_redis_client(obj: object) -> bool:
    # A redis-py client has a `publish` too (PUBLISH): tell it apart by its package.
    return type(obj).__module__.split(".")[0] == "redis"


class _EmitterBase:
    """What both emitters share: source and envelope building (no I/O)."""

    def __init__(
        self,
        *,
        source: str,
        stream: str,
        maxlen: int | None,
        signing: SigningKeys | None = None,
    ) -> None:
        if not source:
            raise ValueError("an emitter needs a source naming the emitting service")
        check_source(source)  # a CloudEvents URI-reference: refused here, not at the first emit
        self.stream = stream
        self.source = source
        self.maxlen = maxlen
        self._closed = False
        self.signing = signing

    @property
    def closed(self) -> bool:
        """Whether ``close()`` (``aclose()``) was called; a closed emitter refuses to emit."""
        return self._closed

    def envelope(self, event: ContractEvent) -> Envelope:
        """The envelope ``event`` travels in; raises :class:`PlanError` if it cannot be planned."""
        return Envelope.from_event(event, source=self.source)

    def _check_open(self) -> None:
        if self._closed:
            raise EmitterClosedError(
                f"this emitter of {self.source} onto {self.stream} was closed; nothing was "
                "sent. Emit before close(), or make a new emitter"
            )


class Emitter(_EmitterBase):
    """Publishes events, one at a time or many in one round trip."""

    def __init__(
        self,
        publisher: Any,
        *,
        source: str,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """Emit through ``publisher``; ``source`` is the CloudEvents source. A redis-py
        client in its place is wrapped in a Redis stream publisher onto ``stream``, capped
        near ``maxlen`` entries (None: no cap), signing every entry with ``signing`` (an
        ``s`` field, docs/trust.md); any other publisher given with ``signing`` must have
        been built with the same keys (ConfigError). ``owns_client``: close it on close()."""
        super().__init__(source=source, stream=stream, maxlen=maxlen, signing=signing)
        if _is_redis_client(publisher):
            from damestoilet_contracts.runtime.redis._publisher import RedisPublisher

            publisher = RedisPublisher(
                publisher, stream=stream, maxlen=maxlen, owns_client=owns_client, signing=signing
            )
        elif signing is not None and getattr(publisher, "signing", None) is not signing:
            raise ConfigError(_UNSIGNED)
        self.publisher: Publisher = publisher
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
        """An emitter with its own publisher for ``url``: ``redis://host:port/db`` (with
        ``cluster``, any node of a Redis Cluster; ``maxlen`` caps the stream) or
        ``nats://host:port`` (``stream`` is the subject) or ``kafka://host:port``; ``signing``
        signs every message (docs/trust.md). Raises :class:`ConfigError` for an unknown
        scheme, :class:`MissingExtraError` when its client library is missing."""
        options = _publisher_options(url, stream, maxlen, cluster, signing)
        publisher = open_backend("publisher", url, **options)
        return cls(
            publisher,
            source=source,
            stream=stream,
            maxlen=maxlen,
            owns_client=True,
            signing=signing,
        )

    def emit(self, event: ContractEvent) -> str:
        """Emit one event; returns its envelope id. Raises :class:`PlanError`, or
        :class:`BackendError` when the bus fails."""
        return self.emit_envelopes([self.envelope(event)])[0]

    def emit_many(self, events: Iterable[ContractEvent]) -> list[str]:
        """Emit events in one pipeline, in order; returns their envelope ids. Every event is
        planned before anything is sent, so a :class:`PlanError` sends none of them."""
        return self.emit_envelopes([self.envelope(e) for e in events])

    def emit_envelopes(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Publish ready envelopes in one round trip; returns their envelope ids. Raises
        :class:`EmitterClosedError` after :meth:`close`."""
        self._check_open()
        self.publisher.publish(envelopes)
        return [env.id for env in envelopes]

    def close(self) -> None:
        """Refuse further emits, and close the publisher if this emitter created it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self.publisher.close()

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
    """Publishes events from asyncio code."""

    def __init__(
        self,
        publisher: Any,
        *,
        source: str,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """Like :class:`Emitter`, over an asyncio publisher (or a ``redis.asyncio`` client)."""
        super().__init__(source=source, stream=stream, maxlen=maxlen, signing=signing)
        if _is_redis_client(publisher):
            from damestoilet_contracts.runtime.redis._publisher import AsyncRedisPublisher

            publisher = AsyncRedisPublisher(
                publisher, stream=stream, maxlen=maxlen, owns_client=owns_client, signing=signing
            )
        elif signing is not None and getattr(publisher, "signing", None) is not signing:
            raise ConfigError(_UNSIGNED)
        self.publisher: AsyncPublisher = publisher
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
        """An emitter with its own asyncio publisher for ``url`` (see
        :meth:`Emitter.from_url`)."""
        options = _publisher_options(url, stream, maxlen, cluster, signing)
        publisher = open_backend("async_publisher", url, **options)
        return cls(
            publisher,
            source=source,
            stream=stream,
            maxlen=maxlen,
            owns_client=True,
            signing=signing,
        )

    async def emit(self, event: ContractEvent) -> str:
        """Emit one event; returns its envelope id."""
        return (await self.emit_envelopes([self.envelope(event)]))[0]

    async def emit_many(self, events: Iterable[ContractEvent]) -> list[str]:
        """Emit events in one pipeline, in order; returns their envelope ids."""
        return await self.emit_envelopes([self.envelope(e) for e in events])

    async def emit_envelopes(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Publish ready envelopes in one round trip; returns their envelope ids. Raises
        :class:`EmitterClosedError` after :meth:`aclose`."""
        self._check_open()
        await self.publisher.publish(envelopes)
        return [env.id for env in envelopes]

    async def aclose(self) -> None:
        """Refuse further emits, and close the publisher if this emitter created it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self.publisher.aclose()

    async def __aenter__(self) -> AsyncEmitter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
