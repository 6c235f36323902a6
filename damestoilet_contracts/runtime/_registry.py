"""Backends by URL scheme (kombu's transport registry, cashews' install hints).

Each seam kind maps a scheme to a ``"module:Class"`` string; the module is imported only when
a URL of that scheme is opened, so a service that never names ``nats://`` never imports
nats-py. A typo gets a "did you mean"; a missing client library gets the extra to install.
Further backends register themselves with :func:`register` (Kafka, Varnish).

Every class registered for a kind has a ``from_url(url, **options)`` class method taking the
options of that kind (see :func:`open_backend`).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from damestoilet_contracts._errors import ConfigError, MissingExtraError

#: The seams a URL can name.
Kind: TypeAlias = Literal[
    "bus",
    "async_bus",
    "publisher",
    "async_publisher",
    "done",
    "async_done",
    "target",
    "async_target",
    "dead_letters",
]

_R = "damestoilet_contracts.runtime.redis"
_N = "damestoilet_contracts.runtime.nats"
_K = "damestoilet_contracts.runtime.kafka"

_REDIS: dict[str, str] = {
    "bus": f"{_R}._bus:RedisStreamBus",
    "async_bus": f"{_R}._bus_async:AsyncRedisStreamBus",
    "publisher": f"{_R}._publisher:RedisPublisher",
    "async_publisher": f"{_R}._publisher:AsyncRedisPublisher",
    "done": f"{_R}._done:RedisDoneStore",
    "async_done": f"{_R}._done:AsyncRedisDoneStore",
    "target": f"{_R}._purge:RedisPurgeTarget",
    "async_target": f"{_R}._purge_async:AsyncRedisPurgeTarget",
    "dead_letters": f"{_R}._dead_letters:RedisDeadLetters",
}

_NATS: dict[str, str] = {
    "bus": f"{_N}._bus:BlockingJetStreamBus",
    "async_bus": f"{_N}._bus:JetStreamBus",
    "publisher": f"{_N}._publisher:BlockingJetStreamPublisher",
    "async_publisher": f"{_N}._publisher:JetStreamPublisher",
    "dead_letters": f"{_N}._dead_letters:JetStreamDeadLetters",
}

_KAFKA: dict[str, str] = {
    "bus": f"{_K}._bus:KafkaBus",
    "async_bus": f"{_K}._bus:AsyncKafkaBus",
    "publisher": f"{_K}._publisher:KafkaPublisher",
    "async_publisher": f"{_K}._publisher:AsyncKafkaPublisher",
    "dead_letters": f"{_K}._dead_letters:KafkaDeadLetters",
}

_WHAT = {
    "bus": "bus",
    "publisher": "publisher",
    "done": "done store",
    "target": "purge target",
    "dead_letters": "dead-letter",
}

#: kind -> scheme -> "module:Class".
_REGISTRY: dict[str, dict[str, str]] = {}

#: The top-level module of a backend's client library -> the extra that installs it.
_EXTRAS: dict[str, str] = {"nats": "nats", "confluent_kafka": "kafka", "httpx": "varnish"}


def register(kind: Kind, scheme: str, path: str, *, extra: str | None = None) -> None:
    """Open URLs of ``scheme`` for ``kind`` with the class at ``path`` (``"module:Class"``);
    ``extra`` names the package extra whose absence an ImportError of it means."""
    if ":" not in path:
        raise ValueError(f"{path!r} must be 'module:Class'")
    _REGISTRY.setdefault(kind, {})[scheme] = path
    if extra is not None:
        _EXTRAS[path.partition(":")[0]] = extra


for _scheme in ("redis", "rediss"):
    for _kind, _path in _REDIS.items():
        register(_kind, _scheme, _path)  # type: ignore[arg-type]
for _kind, _path in _NATS.items():
    register(_kind, "nats", _path, extra="nats")  # type: ignore[arg-type]
    register(_kind, "tls", _path, extra="nats")  # type: ignore[arg-type]
for _kind, _path in _KAFKA.items():
    register(_kind, "kafka", _path, extra="kafka")  # type: ignore[arg-type]
_V = "damestoilet_contracts.runtime.varnish._purge"
for _scheme in ("varnish", "varnishs"):
    register("target", _scheme, f"{_V}:VarnishPurgeTarget", extra="varnish")
    register("async_target", _scheme, f"{_V}:AsyncVarnishPurgeTarget", extra="varnish")


def schemes(kind: Kind) -> list[str]:
    """The schemes a URL of ``kind`` may have, sorted."""
    return sorted(_REGISTRY.get(kind, {}))


def scheme_of(url: str) -> str:
    """The scheme of ``url``, lower case; raises :class:`ConfigError` when it has none."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme or "://" not in url:
        raise ConfigError(
            f"{url!r} is not a URL: write SCHEME://HOST:PORT, e.g. redis://127.0.0.1:6379/0"
        )
    return scheme


def resolve(kind: Kind, url: str) -> Any:
    """The class that opens ``url`` as a ``kind``, imported now.

    Raises :class:`ConfigError` for an unknown scheme (with a "did you mean" when one is
    close) and :class:`MissingExtraError` when the backend's client library is missing.
    """
    scheme = scheme_of(url)
    known = _REGISTRY.get(kind, {})
    path = known.get(scheme)
    if path is None:
        what = (
            kind.replace("async_", "")
            .replace("done", "done store")
            .replace("target", "purge target")
        )
        close = difflib.get_close_matches(scheme, list(known), n=1)
        hint = f"; did you mean {close[0]}://?" if close else ""
        listed = ", ".join(f"{s}://" for s in sorted(known)) or "none"
        raise ConfigError(f"no {what} backend for {scheme}:// (known: {listed}){hint}")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or "").split(".")[0]
        extra = _EXTRAS.get(module_name) or _EXTRAS.get(missing)
        if extra is None or missing.startswith("damestoilet_contracts"):
            raise
        raise MissingExtraError(
            f"{scheme}:// needs the {missing} client library: "
            f"pip install 'damestoilet-contracts[{extra}]'"
        ) from exc
    return getattr(module, attr)


def open_backend(kind: Kind, url: str, **options: Any) -> Any:
    """Open ``url`` as a ``kind`` backend: ``resolve(kind, url).from_url(url, **options)``.

    The options by kind: bus ``stream, group, consumer, dlq_stream`` (and ``cluster`` for
    Redis); publisher ``stream, maxlen`` (and ``cluster``); done store and purge target
    ``cluster`` (a purge target also ``grace`` and ``targets``). Raises :class:`ConfigError`
    or :class:`MissingExtraError` (see :func:`resolve`), and ValueError for a malformed URL.
    """
    return resolve(kind, url).from_url(url, **options)
