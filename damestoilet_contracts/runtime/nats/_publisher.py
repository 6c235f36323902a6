"""NATS JetStream as a publisher: each envelope one message on the subject in CloudEvents
binary mode (the NATS binding): the body is the payload, the same bytes as the envelope's
data; the headers are the attributes (``ce-id``, ``ce-type``, ..., ``content-type``, the
plan in ``ce-flushplan``) and ``Nats-Msg-Id``, the event id, so that the stream's duplicate
window drops a re-send; with signing keys, ``damestoilet-signature`` too (over the body and
the CloudEvents headers, :func:`runtime._signing.message_bytes`). Several are
published without waiting for each ack, then every ack is awaited: a message counts as sent
only once JetStream stored it. nats-py errors leave as :class:`BackendError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from damestoilet_contracts.runtime._blocking import LoopThread
from damestoilet_contracts.runtime._cloudevents import to_binary
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._seams import DEFAULT_MAXLEN, DEFAULT_STREAM
from damestoilet_contracts.runtime._signing import SIGNATURE_HEADERS, SigningKeys
from damestoilet_contracts.runtime.nats._layout import connect, ensure_stream, translated

#: The header holding the signature of a signed message.
SIGNATURE_HEADER = SIGNATURE_HEADERS["nats"]


def message_of(
    envelope: Envelope, signing: SigningKeys | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``envelope`` on JetStream, signed with ``signing`` (see the
    module docstring)."""
    binary = to_binary(envelope, "nats")
    headers = {**binary.headers, "Nats-Msg-Id": envelope.id}
    if signing is not None:
        headers[SIGNATURE_HEADER] = signing.sign_message(binary.headers, binary.body)
    return binary.body, headers


class JetStreamPublisher:
    """Publishes envelopes to a JetStream subject, for asyncio code."""

    def __init__(
        self,
        client: Any,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """Publish through the connected nats-py ``client`` to the subject ``stream``;
        ``maxlen`` caps the stream's messages when this publisher creates it; ``signing``
        signs every message (docs/trust.md)."""
        self._nc = client
        self._js = client.jetstream()
        self.stream = stream
        self.maxlen = maxlen
        self.signing = signing
        self._owns_client = owns_client
        self._ready = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        signing: SigningKeys | None = None,
    ) -> JetStreamPublisher:
        """A publisher with its own connection to ``url``."""
        client = await connect(url)
        return cls(client, stream=stream, maxlen=maxlen, owns_client=True, signing=signing)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        signing: SigningKeys | None = None,
    ) -> _LazyJetStreamPublisher:
        """A publisher for ``url`` that connects on first use, in the loop that awaits it."""
        return _LazyJetStreamPublisher(url, stream=stream, maxlen=maxlen, signing=signing)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish ``envelopes`` in order and wait until JetStream stored every one."""
        if not envelopes:
            return
        async with translated(f"publishing to {self.stream} failed"):
            if not self._ready:
                await ensure_stream(self._js, self.stream, max_msgs=self.maxlen)
                self._ready = True
            if len(envelopes) == 1:
                body, headers = message_of(envelopes[0], self.signing)
                await self._js.publish(self.stream, body, headers=headers)
                return
            futures = []
            for env in envelopes:
                body, headers = message_of(env, self.signing)
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
        self.signing = options.get("signing")

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
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        signing: SigningKeys | None = None,
    ) -> None:
        """Connect to ``url``; raises :class:`BackendError` when the server cannot be reached."""
        self._loop = LoopThread(f"damestoilet-nats-publish-{stream}")
        try:
            self._inner = self._loop.run(
                JetStreamPublisher.connect(url, stream=stream, maxlen=maxlen, signing=signing)
            )
        except BaseException:
            self._loop.stop()
            raise
        self.stream = stream
        self.signing = signing

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
