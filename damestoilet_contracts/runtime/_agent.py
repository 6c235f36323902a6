"""Per-service flush agents: the coordinator engine in a consumer group of its own, executing
only the operations of the targets a team owns, and telling in-process hooks what it purged.

Every consumer group of a Redis stream receives every entry, so an agent in its own group sees
each event the central coordinator sees, purges the ops of its targets (through
its purge backends' ``targets`` filter) and marks the event done for its group only
(``_layout.done_key(id, group)``): another group's done mark never makes it skip an event.

After each stage is purged, the agent calls its ``on_purge`` hooks once per distinct op of its
targets, so a service can drop entries of an in-process (L1) cache. Dropping L1 *after* the
Redis purge matters: an L1 miss in between refills from Redis, which is already fresh. A hook
that raises fails the stage like a purge error: the event is retried (purge and hooks again,
both idempotent) and dead-lettered after ``max_deliveries``.

An L1 cache lives as long as its process, and a consumer group hands each entry to one
consumer only, so every process that holds an L1 needs a group of its own. ``ephemeral=True``
gives it one: named after the consumer, created at the end of the stream (the L1 starts
empty, so history does not concern it) and destroyed when :meth:`FlushAgent.run` returns.
``purge=False`` makes such a listener call its hooks without purging Redis, which the
coordinator or a team's agent already does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from damestoilet_contracts._errors import BackendError
from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime._coordinator import Coordinator, CoordinatorConfig
from damestoilet_contracts.runtime._metrics import CoordinatorStats
from damestoilet_contracts.runtime._plan_check import FlushSpec
from damestoilet_contracts.runtime._router import TargetRouter
from damestoilet_contracts.runtime._seams import (
    DEFAULT_GROUP,
    Bus,
    DoneStore,
    HandlerRegistry,
    PurgeTarget,
    StageOps,
    default_consumer,
)
from damestoilet_contracts.runtime._signing import SigningKeys

#: Called with each purged op of the agent's targets, after the op's stage was purged.
PurgeHook = Callable[[FlushOp], object]

#: Prefix of an agent's default consumer group.
AGENT_GROUP_PREFIX = "damestoilet-agent-"


def agent_group(targets: Iterable[str]) -> str:
    """The default consumer group of an agent for ``targets``:
    ``damestoilet-agent-<targets, sorted, comma-separated>``."""
    return AGENT_GROUP_PREFIX + ",".join(sorted(set(targets)))


def check_targets(targets: Iterable[str]) -> frozenset[str]:
    """``targets`` as a set; raises ValueError when it is empty or names an empty target."""
    out = frozenset(targets)
    if not out or any(not t or t != t.strip() for t in out):
        raise ValueError(
            f"an agent needs one or more target names without spaces, got {sorted(out)!r}"
        )
    return out


class HookedPurgeTarget:
    """A purge target that executes the ops of some targets, then calls hooks for each of them."""

    def __init__(
        self,
        inner: PurgeTarget | None,
        targets: Collection[str],
        hooks: Sequence[PurgeHook] = (),
    ) -> None:
        """Purge through ``inner`` (None: call the hooks only) the ops whose target is in
        ``targets``, then call every hook of ``hooks`` with each distinct such op, in order."""
        self.inner = inner
        self.targets = frozenset(targets)
        self.hooks = list(hooks)

    def serves(self, op: FlushOp) -> bool:
        """Whether ``op`` is for one of this target's targets."""
        return op.target in self.targets

    def purge_stage(self, ops: Sequence[FlushOp]) -> object:
        """Purge the served ops of one stage, then call the hooks; raises what the purge or a
        hook raises (the coordinator retries the event)."""
        served = [op for op in dict.fromkeys(ops) if self.serves(op)]
        if not served:
            return None
        mine: Sequence[FlushOp] = served
        if isinstance(ops, StageOps):  # keep each op's event (the storm guard counts per event)
            mine = ops.take([i for i, op in enumerate(ops) if self.serves(op)])
        stats = self.inner.purge_stage(mine) if self.inner is not None else None
        for op in served:
            for hook in self.hooks:
                hook(op)
        return stats


class FlushAgent:
    """A coordinator in its own consumer group that purges only its targets' operations."""

    def __init__(
        self,
        client: Any,
        targets: Iterable[str],
        config: CoordinatorConfig | None = None,
        *,
        bus_client: Any = None,
        on_purge: Sequence[PurgeHook] = (),
        purge: bool = True,
        ephemeral: bool = False,
        handlers: HandlerRegistry | None = None,
        grace: Mapping[str, float] | None = None,
        stats: CoordinatorStats | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> None:
        """An agent purging ``targets`` in the Redis of ``client`` (a redis-py client),
        reading the stream from ``bus_client`` (default: ``client``).

        ``config`` tunes the engine as for :class:`Coordinator`; its ``group`` is the agent's
        group unless it is the coordinator's :data:`DEFAULT_GROUP` (an agent sharing the
        coordinator's group would steal its events), in which case the group is
        :func:`agent_group` of ``targets`` (with ``ephemeral``: that plus ``:<consumer>``).
        ``on_purge`` hooks get each purged op of ``targets``; ``purge=False`` calls them
        without purging Redis; ``ephemeral`` makes the group this process's own (see the
        module docstring). ``handlers``, ``grace``, ``prefix_index``, ``storm``,
        ``flush_specs`` and ``signing`` are those of :meth:`Coordinator.from_url`;
        :meth:`from_url` builds an agent on any bus and purge backends. Raises ValueError
        for empty targets.
        """
        from damestoilet_contracts.runtime.redis._bus import RedisStreamBus
        from damestoilet_contracts.runtime.redis._done import RedisDoneStore
        from damestoilet_contracts.runtime.redis._purge import RedisPurgeTarget

        names = check_targets(targets)
        config = self._config(config, names, ephemeral)
        bus = RedisStreamBus(
            bus_client if bus_client is not None else client,
            stream=config.stream,
            group=config.group,
            consumer=config.consumer,
            dlq_stream=config.dlq_stream,
        )
        inner = (
            RedisPurgeTarget(
                client, targets=names, grace=grace, prefix_index=prefix_index, storm=storm
            )
            if purge
            else None
        )
        self._assemble(
            names,
            config,
            bus,
            inner,
            RedisDoneStore(client),
            on_purge,
            handlers,
            stats,
            flush_specs,
            signing,
        )

    @staticmethod
    def _config(
        config: CoordinatorConfig | None, names: frozenset[str], ephemeral: bool
    ) -> CoordinatorConfig:
        base = config or CoordinatorConfig()
        consumer = base.consumer or default_consumer()
        group = base.group
        if group == DEFAULT_GROUP:
            group = agent_group(names)
            if ephemeral:
                group = f"{group}:{consumer}"
        return dataclasses.replace(base, group=group, consumer=consumer, ephemeral=ephemeral)

    def _assemble(
        self,
        names: frozenset[str],
        config: CoordinatorConfig,
        bus: Bus,
        inner: PurgeTarget | None,
        done: DoneStore,
        on_purge: Sequence[PurgeHook],
        handlers: HandlerRegistry | None,
        stats: CoordinatorStats | None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
    ) -> None:
        self.targets = names
        self.config = config
        self.ephemeral = config.ephemeral
        self.bus = bus
        self.target = HookedPurgeTarget(inner, names, on_purge)
        # Ops of other teams' targets are not this agent's to purge: only its own must be bound.
        router = inner if isinstance(inner, TargetRouter) else None
        bound = None
        if router is not None:

            def bound(name: str) -> bool:
                return name not in names or router.is_bound(name)

        self.coordinator = Coordinator(
            bus,
            self.target,
            done,
            config,
            handlers=handlers,
            stats=stats,
            bound=bound,
            flush_specs=flush_specs,
            signing=signing,
        )
        # its metrics count the ops it purged, not those it skipped as other teams'
        self.coordinator.stats.served = names

    @classmethod
    def from_url(
        cls,
        redis_url: str | None,
        targets: Iterable[str],
        config: CoordinatorConfig | None = None,
        *,
        bus_url: str | None = None,
        cluster: bool = False,
        bus_cluster: bool | None = None,
        on_purge: Sequence[PurgeHook] = (),
        purge: bool = True,
        ephemeral: bool = False,
        handlers: HandlerRegistry | None = None,
        grace: Mapping[str, float] | None = None,
        target_urls: Mapping[str, str] | None = None,
        done_url: str | None = None,
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> FlushAgent:
        """An agent from URLs, by the rules of :class:`Coordinator.from_url`: ``redis_url``
        the default purge backend (None: only ``target_urls``, name -> URL), ``bus_url``
        the bus (any registered scheme), ``done_url`` the done store. The other arguments
        are those of :class:`FlushAgent`. Raises :class:`ConfigError` or ValueError for a
        wrong URL, binding or empty targets (or signing on a bus that cannot sign)."""
        from damestoilet_contracts.runtime._wiring import check_signing, open_sync

        check_signing(signing, bus_url or redis_url)
        names = check_targets(targets)
        config = cls._config(config, names, ephemeral)
        wired = open_sync(
            config,
            redis_url=redis_url,
            bus_url=bus_url,
            targets=target_urls or {},
            done_url=done_url,
            grace=grace,
            cluster=cluster,
            bus_cluster=cluster if bus_cluster is None else bus_cluster,
            purge_targets=names,
            prefix_index=prefix_index,
            storm=storm,
        )
        agent = cls.__new__(cls)
        agent._assemble(
            names,
            config,
            wired.bus,
            wired.target if purge else None,
            wired.done,
            on_purge,
            handlers,
            None,
            flush_specs,
            signing,
        )
        return agent

    @property
    def group(self) -> str:
        """The agent's consumer group."""
        return self.config.group

    @property
    def stats(self) -> CoordinatorStats:
        """The engine's counters (events, keys purged, retries, ...)."""
        return self.coordinator.stats

    def add_hook(self, hook: PurgeHook) -> None:
        """Call ``hook`` with each purged op from now on (e.g. an :class:`L1Cache`)."""
        self.target.hooks.append(hook)

    def ensure_group(self) -> None:
        """Create the stream and the group: from the first entry, or (``ephemeral``) from the
        end, since a new in-process cache holds nothing older. Raises :class:`BackendError`."""
        self.coordinator.open()

    def run(self, *, stop_when_idle: bool = False, handle_signals: bool = False) -> None:
        """Consume and purge until :meth:`stop` (see :meth:`Coordinator.run`); an ephemeral
        group is deleted when this returns."""
        self.ensure_group()
        try:
            self.coordinator.run(stop_when_idle=stop_when_idle, handle_signals=handle_signals)
        finally:
            with contextlib.suppress(BackendError):
                self.bus.close()

    def run_in_thread(self, *, name: str | None = None) -> threading.Thread:
        """Create the group, then start :meth:`run` in a daemon thread (for a service's L1
        hooks) and return it; :meth:`stop` then ``join()`` the thread to end it. Raises
        :class:`BackendError` when the group cannot be created."""
        self.ensure_group()  # before returning: no event emitted after this call is missed
        thread = threading.Thread(
            target=self.run, name=name or f"damestoilet-agent-{self.group}", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (safe from any thread)."""
        self.coordinator.stop()
