"""NATS JetStream as a publisher: each envelope one message on the subject in CloudEvents
binary mode (the NATS binding): the body is the payload, the same bytes as the envelope's
data; the headers are the attributes (``ce-id``, ``ce-type``, ..., ``content-type``, the
plan in ``ce-flushplan``) and ``Nats-Msg-Id``, the event id, so that the stream's duplicate
window drops a re-send. Several are
published without waiting for each ack, then every ack is awaited: a message counts as sent
only once JetStream stored it. nats-py errors leave as :class:`BackendError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from damestoilet_contracts.runtime._blocking import LoopThread
from damestoilet_contracts.runtime._cloudevents import to_binary
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._seams import DEFAULT_MAXLEN, DEFAULT_STREAM
from damestoilet_contracts.runtime.nats._layout import connect, ensure_stream, translated


def message_of(envelope: Envelope) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``envelope`` on JetStream (see the module docstring)."""
    binary = to_binary(envelope, "nats")
    return binary.body, {**binary.headers, "Nats-Msg-Id": envelope.id}


class JetStreamPublisher:
    """Publishes envelopes to a JetStream subject, for asyncio code."""

    def __init__(
        self,
        client: Any,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
    ) -> None:
        """Publish through the connected nats-py ``client`` to the subject ``stream``;
        ``maxlen`` caps the stream's messages when this publisher creates it."""
        self._nc = client
        self._js = client.jetstream()
        self.stream = stream
        self.maxlen = maxlen
        self._owns_client = owns_client
        self._ready = False

    @classmethod
    async def connect(
        cls, url: str, *, stream: str = DEFAULT_STREAM, maxlen: int | None = DEFAULT_MAXLEN
    ) -> JetStreamPublisher:
        """A publisher with its own connection to ``url``."""
        return cls(await connect(url), stream=stream, maxlen=maxlen, owns_client=True)

    @classmethod
    def from_url(
        cls, url: str, *, stream: str = DEFAULT_STREAM, maxlen: int | None = DEFAULT_MAXLEN
    ) -> _LazyJetStreamPublisher:
        """A publisher for ``url`` that connects on first use, in the loop that awaits it."""
        return _LazyJetStreamPublisher(url, stream=stream, maxlen=maxlen)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish ``envelopes`` in order and wait until JetStream stored every one."""
        if not envelopes:
            return
        async with translated(f"publishing to {self.stream} failed"):
            if not self._ready:
                await ensure_stream(self._js, self.stream, max_msgs=self.maxlen)
                self._ready = True
            if len(envelopes) == 1:
                body, headers = message_of(envelopes[0])
                await self._js.publish(self.stream, body, headers=headers)
                return
            futures = []
            for env in envelopes:
                body, headers = message_of(env)
                futures.append(await self._js.publish_async(self.stream, body, headers=headers))
            for future in futures:
                await future

    async def aclose(self) -> None:
        """Close the connection if this publisher made it (pending messages flushed)."""
        if self._owns_client:
            async with translated("closing the NATS connection failed"):
                await self._nc.drain()


class _LazyJetStreamPublisher:
    """A :class:`JetStreamPublisher` that connects on first publish."""

    def __init__(self, url: str, **options: Any) -> None:
        self._url = url
        self._options = options
        self._inner: JetStreamPublisher | None = None
        self.stream = options["stream"]

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self._inner is None:
            self._inner = await JetStreamPublisher.connect(self._url, **self._options)
        await self._inner.publish(envelopes)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
            self._inner = None


class BlockingJetStreamPublisher:
    """A :class:`JetStreamPublisher` for sync code (the sync :class:`Emitter`), on a private
    event loop thread."""

    def __init__(
        self, url: str, *, stream: str = DEFAULT_STREAM, maxlen: int | None = DEFAULT_MAXLEN
    ) -> None:
        """Connect to ``url``; raises :class:`BackendError` when the server cannot be reached."""
        self._loop = LoopThread(f"damestoilet-nats-publish-{stream}")
        try:
            self._inner = self._loop.run(
                JetStreamPublisher.connect(url, stream=stream, maxlen=maxlen)
            )
        except BaseException:
            self._loop.stop()
            raise
        self.stream = stream

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BlockingJetStreamPublisher:
        """See the constructor."""
        return cls(url, **options)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """See :meth:`JetStreamPublisher.publish`."""
        self._loop.run(self._inner.publish(envelopes))

    def close(self) -> None:
        """Close the connection and the loop."""
        try:
            self._loop.run(self._inner.aclose())
        finally:
            self._loop.stop()
