"""Where the relay hands envelopes to the bus: one function, :func:`open_publisher`, so that
the relay follows the runtime's publisher seam from one place.

On Redis Streams the stored blobs are written exactly as
:class:`~damestoilet_contracts.runtime.Emitter` writes them: one ``XADD`` per envelope with
the single field ``e`` holding the version-2 blob, which is what the outbox stored, with no
decode. Any other bus the runtime registers a publisher for (``nats://``, ``kafka://``) is
reached through that publisher: each blob is decoded back into its envelope (byte for byte
what the emitter would have sent) and published as the emitter would. With signing keys
every entry or message is signed as the emitter signs it (docs/trust.md): a Redis entry gets
its ``s`` field over the stored blob, a NATS or Kafka message its signature header. Errors of
the client are translated here into :class:`DeliveryError`, so the relay never sees a client
library's exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis

from damestoilet_contracts._errors import ConfigError, DeliveryError
from damestoilet_contracts.runtime import DEFAULT_STREAM
from damestoilet_contracts.runtime._envelope import STREAM_FIELD, Envelope
from damestoilet_contracts.runtime._registry import open_backend, schemes
from damestoilet_contracts.runtime._seams import DEFAULT_MAXLEN, Publisher
from damestoilet_contracts.runtime._signing import SIGNATURE_FIELD, SigningKeys
from damestoilet_contracts.runtime._wiring import check_signing
from damestoilet_contracts.runtime.redis._bus import connect, xadd_options

#: The bus URL schemes written directly (the stored blob as the entry's one field).
SCHEMES = ("redis", "rediss")


class OutboxPublisher(Protocol):
    """Sends stored envelopes to the bus, in order; raises only :class:`DeliveryError`."""

    def publish(self, blobs: Sequence[bytes]) -> None:
        """Send ``blobs`` (version-2 envelopes) in order; all are sent when it returns."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class _RedisStreamPublisher:
    """``XADD``s envelopes onto a Redis stream in one pipeline."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        maxlen: int | None,
        cluster: bool,
        signing: SigningKeys | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.signing = signing
        self._client = connect(url, cluster=cluster)
        self._options = xadd_options(maxlen)

    def publish(self, blobs: Sequence[bytes]) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for blob in blobs:
                fields: dict[Any, Any] = {STREAM_FIELD: blob}
                if self.signing is not None:
                    fields[SIGNATURE_FIELD] = self.signing.sign(fields)
                pipe.xadd(self.stream, fields, **self._options)
            pipe.execute()
        except redis.RedisError as exc:
            raise DeliveryError(f"cannot publish to {self.url}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


class _SeamPublisher:
    """Publishes stored envelopes through the runtime's publisher for the bus's scheme."""

    def __init__(self, url: str, publisher: Publisher) -> None:
        self.url = url
        self._publisher = publisher

    def publish(self, blobs: Sequence[bytes]) -> None:
        # A stored blob was checked when it was written; one that no longer decodes raises
        # EnvelopeError, a DeliveryError, and stays in the table for an operator to look at.
        envelopes = [Envelope.from_bytes(blob) for blob in blobs]
        try:
            self._publisher.publish(envelopes)
        except DeliveryError:
            raise
        except Exception as exc:  # a publisher's own bug must not look like success
            raise DeliveryError(f"cannot publish to {self.url}: {exc}") from exc

    def close(self) -> None:
        self._publisher.close()


def open_publisher(
    url: str,
    *,
    stream: str = DEFAULT_STREAM,
    maxlen: int | None = DEFAULT_MAXLEN,
    cluster: bool = False,
    signing: SigningKeys | None = None,
) -> OutboxPublisher:
    """The publisher for bus ``url``: ``redis://host:port/db`` (with ``cluster``, a node of a
    Redis Cluster), or any scheme the runtime has a publisher for (``nats://``,
    ``kafka://``), signing what it sends with ``signing``. Raises ValueError naming the
    accepted schemes for another URL (a :class:`ConfigError`, also when the scheme's client
    library is not installed, or it cannot sign)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in SCHEMES:
        return _RedisStreamPublisher(
            url, stream=stream, maxlen=maxlen, cluster=cluster, signing=signing
        )
    if scheme not in schemes("publisher"):
        accepted = ", ".join(s + "://" for s in schemes("publisher"))
        raise ConfigError(f"bus URL {url!r}: the relay publishes to {accepted}")
    options: dict[str, object] = {"stream": stream}
    if maxlen != DEFAULT_MAXLEN:
        options["maxlen"] = maxlen
    if signing is not None:
        check_signing(signing, url)
        options["signing"] = signing
    return _SeamPublisher(url, open_backend("publisher", url, **options))
