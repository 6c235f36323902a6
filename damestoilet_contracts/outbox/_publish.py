"""Where the relay hands envelopes to the bus: one function, :func:`open_publisher`, so that
the relay follows the runtime's publisher seam from one place.

Today the bus is Redis Streams, written exactly as :class:`~damestoilet_contracts.runtime.Emitter`
writes it: one ``XADD`` per envelope with the single field ``e`` holding the version-2 blob,
which is what the outbox stored. Errors of the client are translated here into
:class:`DeliveryError`, so the relay never sees a client library's exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

import redis

from damestoilet_contracts._errors import DeliveryError
from damestoilet_contracts.runtime import DEFAULT_STREAM
from damestoilet_contracts.runtime._envelope import STREAM_FIELD
from damestoilet_contracts.runtime._seams import DEFAULT_MAXLEN
from damestoilet_contracts.runtime.redis._bus import connect, xadd_options

#: The bus URL schemes :func:`open_publisher` accepts.
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

    def __init__(self, url: str, *, stream: str, maxlen: int | None, cluster: bool) -> None:
        self.url = url
        self.stream = stream
        self._client = connect(url, cluster=cluster)
        self._options = xadd_options(maxlen)

    def publish(self, blobs: Sequence[bytes]) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for blob in blobs:
                pipe.xadd(self.stream, {STREAM_FIELD: blob}, **self._options)
            pipe.execute()
        except redis.RedisError as exc:
            raise DeliveryError(f"cannot publish to {self.url}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def open_publisher(
    url: str,
    *,
    stream: str = DEFAULT_STREAM,
    maxlen: int | None = DEFAULT_MAXLEN,
    cluster: bool = False,
) -> OutboxPublisher:
    """The publisher for bus ``url`` (``redis://host:port/db``; with ``cluster``, a node of a
    Redis Cluster). Raises ValueError naming the accepted schemes for another URL."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"bus URL {url!r}: the relay publishes to {', '.join(s + '://' for s in SCHEMES)}"
        )
    return _RedisStreamPublisher(url, stream=stream, maxlen=maxlen, cluster=cluster)
