"""What damestoilet keeps in NATS JetStream, named in one place, and the connection.

- The events travel on the subject ``<stream>`` (default ``damestoilet:events``), stored in
  the JetStream stream :func:`stream_name` of it (``DAMESTOILET_EVENTS``), whose duplicate
  window (:data:`DUPLICATE_WINDOW_S`) drops a re-sent ``Nats-Msg-Id`` (the event id).
- Dead letters go to the subject ``<stream>:dlq``, stored in the stream ``<NAME>_DLQ``: the
  original body, its headers, and ``dlq_reason``, ``dlq_stream``, ``dlq_id`` (the stream
  sequence), ``dlq_deliveries``, ``dlq_time`` (ms) as headers.
- A consumer group is a durable pull consumer named :func:`durable_name` of the group.
- Each message is a CloudEvent in binary mode (the CloudEvents NATS binding,
  :func:`~runtime._cloudevents.to_binary`): the payload as the body, the attributes as
  ``ce-*`` headers (the plan in ``ce-flushplan``), plus ``Nats-Msg-Id`` = the event id, so
  a non-Python consumer reads it with any CloudEvents SDK.

nats-py errors leave this package as :class:`BackendError`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from damestoilet_contracts._errors import BackendError, ConfigError, MissingExtraError
from damestoilet_contracts.runtime._seams import dlq_stream_name

try:
    import nats
    import nats.errors
    import nats.js.api
    import nats.js.errors
except ImportError as exc:  # pragma: no cover - the registry reports it with the extra
    raise MissingExtraError(
        "nats:// needs nats-py: pip install 'damestoilet-contracts[nats]'"
    ) from exc

#: How long JetStream remembers a ``Nats-Msg-Id`` to drop a re-send (s).
DUPLICATE_WINDOW_S = 120.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def stream_name(subject: str) -> str:
    """The JetStream stream storing ``subject``: upper case, other characters as ``_``."""
    return _UNSAFE.sub("_", subject).upper()


def dlq_subject(subject: str) -> str:
    """The dead-letter subject of ``subject``: ``<subject>:dlq``."""
    return dlq_stream_name(subject)


def durable_name(group: str) -> str:
    """The durable consumer name of a consumer group (``.``, ``*``, ``>``, ``:``, ... as ``_``)."""
    return _UNSAFE.sub("_", group)


def check_url(url: str) -> str:
    """``url`` if it is ``nats://host:port`` (or ``tls://``); else :class:`ConfigError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ConfigError(f"{url!r} is not a NATS URL: write nats://HOST:PORT")
    return url


def backend_error(what: str, exc: BaseException) -> BackendError:
    """A :class:`BackendError` for the nats-py error ``exc`` behind ``what``."""
    return BackendError(f"{what}: {type(exc).__name__}: {exc}")


#: What nats-py raises for a failing or unreachable server.
NATS_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, TimeoutError, OSError)


@asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Turn a nats-py error inside the block into :class:`BackendError` naming ``what``."""
    try:
        yield
    except NATS_ERRORS as exc:
        raise backend_error(what, exc) from exc


#: How long a first connection may take before it is an error (s). Once connected, a client
#: reconnects for ever (``max_reconnect_attempts=-1``); nats-py applies that to the first
#: connection too, which would wait for ever on a server that is down at start.
FIRST_CONNECT_S = 15.0


async def connect(url: str) -> Any:
    """A nats-py client connected to ``url``; raises :class:`BackendError` when it cannot
    within :data:`FIRST_CONNECT_S`."""
    check_url(url)
    async with translated(f"cannot connect to {url}"):
        return await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=5,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
                reconnect_time_wait=1,
            ),
            FIRST_CONNECT_S,
        )


async def ensure_stream(js: Any, subject: str, *, max_msgs: int | None = None) -> str:
    """Create the stream of ``subject`` if missing; returns its name."""
    name = stream_name(subject)
    async with translated(f"cannot create stream {name}"):
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                nats.js.api.StreamConfig(
                    name=name,
                    subjects=[subject],
                    duplicate_window=DUPLICATE_WINDOW_S,
                    max_msgs=max_msgs or -1,
                    storage=nats.js.api.StorageType.FILE,
                )
            )
    return name
