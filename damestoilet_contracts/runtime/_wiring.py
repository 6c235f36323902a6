"""From URLs to a coordinator's parts: bus, purge target (or router) and done store.

The rules, shared by ``Coordinator.from_url``, ``FlushAgent.from_url``, the async twins and
the CLI (``--redis``, ``--bus``, ``--target NAME=URL``, ``--done``):

- ``redis_url`` (``--redis``) is the default purge target: it serves every target name not
  bound on its own. Without it, only the names in ``targets`` are bound, and a plan naming
  another target is dead-lettered with the reason.
- The bus is ``bus_url``, default ``redis_url``; the same Redis URL shares one client.
- The done store is ``done_url``; default ``redis_url``, else the first Redis URL among the
  targets, else the bus when its backend has a done store. None of them: a
  :class:`ConfigError` saying to give ``--done``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from damestoilet_contracts._errors import ConfigError
from damestoilet_contracts.model import StormGuard
from damestoilet_contracts.runtime._registry import Kind, open_backend, resolve, scheme_of
from damestoilet_contracts.runtime._router import AsyncTargetRouter, TargetRouter

if TYPE_CHECKING:
    from damestoilet_contracts.runtime._coordinator import CoordinatorConfig

_REDIS_SCHEMES = ("redis", "rediss")
#: The bus schemes whose publishers sign and whose messages the coordinator can check.
SIGNING_SCHEMES = ("kafka", "nats", "redis", "rediss")


@dataclass(frozen=True, slots=True)
class Wired:
    """A coordinator's parts: ``bus``, ``target`` (a router when names are bound), ``done``."""

    bus: Any
    target: Any
    done: Any


def _has(kind: Kind, url: str) -> bool:
    try:
        resolve(kind, url)
    except ConfigError:
        return False
    return True


def _check(redis_url: str | None, targets: Mapping[str, str]) -> None:
    if redis_url is None and not targets:
        raise ConfigError("nothing to purge: give --redis URL, or --target NAME=URL per target")
    for name, url in targets.items():
        if not name or name != name.strip() or "=" in name:
            raise ConfigError(f"target name {name!r} must be non-empty, without spaces or '='")
        scheme_of(url)


def _done_url(
    redis_url: str | None, targets: Mapping[str, str], bus_url: str, done_kind: Kind
) -> str:
    if redis_url is not None:
        return redis_url
    for url in targets.values():
        if scheme_of(url) in _REDIS_SCHEMES:
            return url
    if _has(done_kind, bus_url):
        return bus_url
    raise ConfigError(
        "no done store: none of --redis, a Redis --target or the bus can hold done marks; "
        "give --done redis://HOST:PORT/DB"
    )


def check_signing(signing: object | None, bus_url: str | None) -> None:
    """Refuse signing keys with a bus whose messages are not signed: a Redis stream entry
    carries an ``s`` field, a NATS or Kafka message a signature header; a bus of another
    scheme (one registered by an application) neither, so every message would be
    dead-lettered as unsigned, or sent unsigned."""
    if signing is not None and bus_url is not None and scheme_of(bus_url) not in SIGNING_SCHEMES:
        listed = ", ".join(f"{scheme}://" for scheme in SIGNING_SCHEMES)
        raise ConfigError(
            f"signing is implemented for the {listed} buses, not {scheme_of(bus_url)}://; "
            "leave --signing-key-file and $DAMESTOILET_SIGNING_KEY unset for this bus"
        )


def _cluster(url: str, cluster: bool) -> dict[str, Any]:
    return {"cluster": True} if cluster and scheme_of(url) in _REDIS_SCHEMES else {}


def open_sync(
    config: CoordinatorConfig,
    *,
    redis_url: str | None,
    bus_url: str | None,
    targets: Mapping[str, str],
    done_url: str | None,
    grace: Mapping[str, float] | None,
    cluster: bool,
    bus_cluster: bool,
    purge_targets: frozenset[str] | None = None,
    prefix_index: Collection[str] = (),
    storm: Mapping[str, StormGuard] | None = None,
) -> Wired:
    """The sync parts (see the module docstring); ``purge_targets`` restricts the Redis
    targets to those names (an agent); ``prefix_index`` names the targets whose prefixes are
    read from the prefix index; ``storm`` maps targets to their storm guard. Raises
    :class:`ConfigError`."""
    from damestoilet_contracts.runtime.redis._bus import RedisStreamBus, connect
    from damestoilet_contracts.runtime.redis._done import RedisDoneStore
    from damestoilet_contracts.runtime.redis._purge import RedisPurgeTarget

    _check(redis_url, targets)
    cache = connect(redis_url, cluster=cluster) if redis_url is not None else None
    options: dict[str, Any] = {"grace": grace, "targets": purge_targets}
    if prefix_index:
        options["prefix_index"] = prefix_index
    if storm:
        options["storm"] = storm
    default = RedisPurgeTarget(cache, **options) if cache is not None else None
    bound = {name: open_backend("target", url, **options) for name, url in targets.items()}
    bus_url = bus_url or redis_url
    assert bus_url is not None or cache is None
    bus_options = {
        "stream": config.stream,
        "group": config.group,
        "consumer": config.consumer,
        "dlq_stream": config.dlq_stream,
    }
    if bus_url is None or (bus_url == redis_url and cache is not None):
        assert cache is not None
        bus: Any = RedisStreamBus(cache, **bus_options)  # type: ignore[arg-type]
        bus_url = redis_url
    else:
        bus = open_backend("bus", bus_url, **bus_options, **_cluster(bus_url, bus_cluster))
    assert bus_url is not None
    if done_url is None and cache is not None:
        done: Any = RedisDoneStore(cache)
    else:
        url = done_url or _done_url(redis_url, targets, bus_url, "done")
        done = open_backend("done", url)
    target = TargetRouter(bound, default) if bound else default
    return Wired(bus, target, done)


def open_async(
    config: CoordinatorConfig,
    *,
    redis_url: str | None,
    bus_url: str | None,
    targets: Mapping[str, str],
    done_url: str | None,
    grace: Mapping[str, float] | None,
    cluster: bool,
    bus_cluster: bool,
    purge_targets: frozenset[str] | None = None,
    prefix_index: Collection[str] = (),
    storm: Mapping[str, StormGuard] | None = None,
) -> Wired:
    """The asyncio parts, by the same rules as :func:`open_sync`."""
    _check(redis_url, targets)
    options: dict[str, Any] = {"grace": grace, "targets": purge_targets}
    if prefix_index:
        options["prefix_index"] = prefix_index
    if storm:
        options["storm"] = storm
    default = (
        open_backend("async_target", redis_url, **options, **_cluster(redis_url, cluster))
        if redis_url is not None
        else None
    )
    bound = {name: open_backend("async_target", url, **options) for name, url in targets.items()}
    bus_url = bus_url or redis_url
    assert bus_url is not None
    bus = open_backend(
        "async_bus",
        bus_url,
        stream=config.stream,
        group=config.group,
        consumer=config.consumer,
        dlq_stream=config.dlq_stream,
        **_cluster(bus_url, bus_cluster if bus_url != redis_url else cluster),
    )
    url = done_url or _done_url(redis_url, targets, bus_url, "async_done")
    done = open_backend("async_done", url, **_cluster(url, cluster and url == redis_url))
    target = AsyncTargetRouter(bound, default) if bound else default
    return Wired(bus, target, done)
