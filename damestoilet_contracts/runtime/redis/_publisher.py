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
    ) -> None:
        """Append through ``client`` to ``stream``, capped near ``maxlen`` (None: no cap);
        ``owns_client``: close the client on :meth:`close`."""
        self._client: Any = client
        self.stream = stream
        self.maxlen = maxlen
        self._options = xadd_options(maxlen)
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        cluster: bool = False,
    ) -> RedisPublisher:
        """A publisher with its own client for ``url``; raises ValueError for a bad URL."""
        return cls(connect(url, cluster=cluster), stream=stream, maxlen=maxlen, owns_client=True)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """``XADD`` each envelope, in order (one pipeline for several)."""
        with translate_errors(f"publishing to stream {self.stream!r} failed"):
            if len(envelopes) == 1:
                fields = envelopes[0].to_fields(version=STREAM_VERSION)
                self._client.xadd(self.stream, fields, **self._options)
            elif envelopes:
                pipe = self._client.pipeline(transaction=False)
                for env in envelopes:
                    pipe.xadd(self.stream, env.to_fields(version=STREAM_VERSION), **self._options)
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
    ) -> None:
        """See :class:`RedisPublisher`."""
        self._client: Any = client
        self.stream = stream
        self.maxlen = maxlen
        self._options = xadd_options(maxlen)
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = DEFAULT_MAXLEN,
        cluster: bool = False,
    ) -> AsyncRedisPublisher:
        """See :meth:`RedisPublisher.from_url`."""
        client: Any = (
            redis.asyncio.RedisCluster.from_url(url)
            if cluster
            else redis.asyncio.Redis.from_url(url)
        )
        return cls(client, stream=stream, maxlen=maxlen, owns_client=True)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """See :meth:`RedisPublisher.publish`."""
        with translate_errors(f"publishing to stream {self.stream!r} failed"):
            if len(envelopes) == 1:
                fields = envelopes[0].to_fields(version=STREAM_VERSION)
                await self._client.xadd(self.stream, fields, **self._options)
            elif envelopes:
                pipe = self._client.pipeline(transaction=False)
                for env in envelopes:
                    pipe.xadd(self.stream, env.to_fields(version=STREAM_VERSION), **self._options)
                await pipe.execute()

    async def aclose(self) -> None:
        """Close the client if this publisher owns it."""
        if self._owns_client:
            await self._client.aclose()
