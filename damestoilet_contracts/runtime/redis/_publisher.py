"""Redis Streams as a publisher: each envelope one ``XADD`` of the version-2 field ``e``,
the stream capped near ``maxlen`` entries; several in one pipeline. Redis errors leave as
:class:`BackendError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from damestoilet_contracts.runtime._envelope import STREAM_VERSION, Envelope
from damestoilet_contracts.runtime._seams import DEFAULT_MAXLEN, DEFAULT_STREAM
from damestoilet_contracts.runtime._signing import SIGNATURE_FIELD, SigningKeys
from damestoilet_contracts.runtime.redis._bus import SyncRedis, connect, xadd_options
from damestoilet_contracts.runtime.redis._done import translate_errors


class RedisPublisher:
    """Appends envelopes to a Redis stream."""

    def __init__(
        self,
        client: SyncRedis,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """Append through ``client`` to ``stream``, capped near ``maxlen`` (None: no cap);
        ``owns_client``: close the client on :meth:`close`; ``signing`` signs every entry
        (an ``s`` field, docs/trust.md)."""
        self._client: Any = client
        self.stream = stream
        self.maxlen = maxlen
        self._options = xadd_options(maxlen)
        self._owns_client = owns_client
        self.signing = signing

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        cluster: bool = False,
        signing: SigningKeys | None = None,
    ) -> RedisPublisher:
        """A publisher with its own client for ``url``; raises ValueError for a bad URL."""
        client = connect(url, cluster=cluster)
        return cls(client, stream=stream, maxlen=maxlen, owns_client=True, signing=signing)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """``XADD`` each envelope, in order (one pipeline for several)."""
        with translate_errors(f"publishing to stream {self.stream!r} failed"):
            if len(envelopes) == 1:
                self._client.xadd(self.stream, _fields(envelopes[0], self.signing), **self._options)
            elif envelopes:
                pipe = self._client.pipeline(transaction=False)
                for env in envelopes:
                    pipe.xadd(self.stream, _fields(env, self.signing), **self._options)
                pipe.execute()

    def close(self) -> None:
        """Close the client if this publisher owns it."""
        if self._owns_client:
            self._client.close()


class AsyncRedisPublisher:
    """:class:`RedisPublisher` over ``redis.asyncio``."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        owns_client: bool = False,
        signing: SigningKeys | None = None,
    ) -> None:
        """See :class:`RedisPublisher`."""
        self._client: Any = client
        self.stream = stream
        self.maxlen = maxlen
        self._options = xadd_options(maxlen)
        self._owns_client = owns_client
        self.signing = signing

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        cluster: bool = False,
        signing: SigningKeys | None = None,
    ) -> AsyncRedisPublisher:
        """See :meth:`RedisPublisher.from_url`."""
        client: Any = (
            redis.asyncio.RedisCluster.from_url(url)
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        return cls(client, stream=stream, maxlen=maxlen, owns_client=True, signing=signing)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """See :meth:`RedisPublisher.publish`."""
        with translate_errors(f"publishing to stream {self.stream!r} failed"):
            if len(envelopes) == 1:
                fields = _fields(envelopes[0], self.signing)
                await self._client.xadd(self.stream, fields, **self._options)
            elif envelopes:
                pipe = self._client.pipeline(transaction=False)
                for env in envelopes:
                    pipe.xadd(self.stream, _fields(env, self.signing), **self._options)
                await pipe.execute()

    async def aclose(self) -> None:
        """Close the client if this publisher owns it."""
        if self._owns_client:
            await self._client.aclose()


def _fields(envelope: Envelope, signing: SigningKeys | None) -> dict[str, bytes]:
    fields = envelope.to_fields(version=STREAM_VERSION)
    if signing is not None:
        fields[SIGNATURE_FIELD] = signing.sign(fields)
    return fields
