"""Per-service flush agents: the coordinator engine in a consumer group of its own, executing
only the operations of the targets a team owns, and telling in-process hooks what it purged.

Every consumer group of a Redis stream receives every entry, so an agent in its own group sees
each event the central coordinator sees, purges the ops of its targets (through
:class:`RedisPurgeTarget`'s ``targets`` filter) and marks the event done for its group only
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

import redis

from damestoilet_contracts.model import FlushOp, StormGuard
from damestoilet_contracts.runtime._coordinator import Coordinator, CoordinatorConfig
from damestoilet_contracts.runtime._metrics import CoordinatorStats
from damestoilet_contracts.runtime._plan_check import FlushSpec
from damestoilet_contracts.runtime._seams import HandlerRegistry
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime.redis._bus import (
    DEFAULT_GROUP,
    RedisStreamBus,
    SyncRedis,
    connect,
    default_consumer,
)
from damestoilet_contracts.runtime.redis._purge import PurgeStats, RedisPurgeTarget

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
        inner: RedisPurgeTarget | None,
        targets: Collection[str],
        hooks: Sequence[PurgeHook] = (),
    ) -> None:
        """Purge through ``inner`` (None: call the hooks only) the ops whose target is in
        ``targets``, then call every hook of ``hooks`` with each distinct such op, in order."""
        self.inner = inner
        self.targets = frozenset(targets)
        self.hooks = list(hooks)

    @property
    def interrupt(self) -> threading.Event | None:
        """The inner target's stop event (see ``RedisPurgeTarget.interrupt``)."""
        return self.inner.interrupt if self.inner is not None else None

    @interrupt.setter
    def interrupt(self, event: threading.Event | None) -> None:
        if self.inner is not None:
            self.inner.interrupt = event

    def serves(self, op: FlushOp) -> bool:
        """Whether ``op`` is for one of this target's targets."""
        return op.target in self.targets

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        """Purge the served ops of one stage, then call the hooks; raises what the purge or a
        hook raises (the coordinator retries the event)."""
        served = [op for op in dict.fromkeys(ops) if self.serves(op)]
        if not served:
            return PurgeStats()
        stats = self.inner.purge_stage(served) if self.inner is not None else PurgeStats()
        for op in served:
            for hook in self.hooks:
                hook(op)
        return stats


class FlushAgent:
    """A coordinator in its own consumer group that purges only its targets' operations."""

    def __init__(
        self,
        client: SyncRedis,
        targets: Iterable[str],
        config: CoordinatorConfig | None = None,
        *,
        bus_client: SyncRedis | None = None,
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
        """An agent purging ``targets`` in the Redis of ``client``, reading the stream from
        ``bus_client`` (default: ``client``).

        ``config`` tunes the engine as for :class:`Coordinator`; its ``group`` is the agent's
        group unless it is the coordinator's :data:`DEFAULT_GROUP` (an agent sharing the
        coordinator's group would steal its events), in which case the group is
        :func:`agent_group` of ``targets`` (with ``ephemeral``: that plus ``:<consumer>``).
        ``on_purge`` hooks get each purged op of ``targets``; ``purge=False`` calls them
        without purging Redis; ``ephemeral`` makes the group this process's own (see the
        module docstring). ``handlers``, ``grace``, ``prefix_index``, ``storm``,
        ``flush_specs`` and ``signing`` are those of :meth:`Coordinator.from_url`.
        Raises ValueError for empty targets.
        """
        self.targets = check_targets(targets)
        base = config or CoordinatorConfig()
        consumer = base.consumer or default_consumer()
        group = base.group
        if group == DEFAULT_GROUP:
            group = agent_group(self.targets)
            if ephemeral:
                group = f"{group}:{consumer}"
        self.config = dataclasses.replace(base, group=group, consumer=consumer)
        self.ephemeral = ephemeral
        self.client = client
        self.bus = bus = RedisStreamBus(
            bus_client if bus_client is not None else client,
            stream=self.config.stream,
            group=self.config.group,
            consumer=self.config.consumer,
            dlq_stream=self.config.dlq_stream,
        )
        inner = (
            RedisPurgeTarget(
                client,
                targets=self.targets,
                grace=grace,
                prefix_index=prefix_index,
                storm=storm,
            )
            if purge
            else None
        )
        self.target = HookedPurgeTarget(inner, self.targets, on_purge)
        self.coordinator = Coordinator(
            bus,
            self.target,
            client,
            self.config,
            handlers=handlers,
            stats=stats,
            flush_specs=flush_specs,
            signing=signing,
        )

    @classmethod
    def from_url(
        cls,
        redis_url: str,
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
        flush_specs: Mapping[str, Iterable[FlushSpec]] | None = None,
        signing: SigningKeys | None = None,
        prefix_index: Collection[str] = (),
        storm: Mapping[str, StormGuard] | None = None,
    ) -> FlushAgent:
        """An agent over the Redis at ``redis_url`` (the stream at ``bus_url``, default the
        same server); the other arguments are those of :class:`FlushAgent` and
        :meth:`Coordinator.from_url`. Raises ValueError for a malformed URL or empty targets."""
        client = connect(redis_url, cluster=cluster)
        bus_cluster = cluster if bus_cluster is None else bus_cluster
        bus_client = None if bus_url is None else connect(bus_url, cluster=bus_cluster)
        return cls(
            client,
            targets,
            config,
            bus_client=bus_client,
            on_purge=on_purge,
            purge=purge,
            ephemeral=ephemeral,
            handlers=handlers,
            grace=grace,
            flush_specs=flush_specs,
            signing=signing,
            prefix_index=prefix_index,
            storm=storm,
        )

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
        end, since a new in-process cache holds nothing older."""
        if not self.ephemeral:
            self.bus.ensure_group()
            return
        try:
            self.bus.client.xgroup_create(self.config.stream, self.group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, *, stop_when_idle: bool = False, handle_signals: bool = False) -> None:
        """Consume and purge until :meth:`stop` (see :meth:`Coordinator.run`); an ephemeral
        group is destroyed when this returns."""
        self.ensure_group()
        try:
            self.coordinator.run(stop_when_idle=stop_when_idle, handle_signals=handle_signals)
        finally:
            if self.ephemeral:
                with contextlib.suppress(redis.RedisError):
                    self.bus.client.xgroup_destroy(self.config.stream, self.group)

    def run_in_thread(self, *, name: str | None = None) -> threading.Thread:
        """Create the group, then start :meth:`run` in a daemon thread (for a service's L1
        hooks) and return it; :meth:`stop` then ``join()`` the thread to end it. Raises
        redis-py errors when the group cannot be created."""
        self.ensure_group()  # before returning: no event emitted after this call is missed
        thread = threading.Thread(
            target=self.run, name=name or f"damestoilet-agent-{self.group}", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (safe from any thread)."""
        self.coordinator.stop()
