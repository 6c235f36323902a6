"""The runtime a service imports: envelope, seams (bus, publisher, done store, purge target),
emitters, coordinator, agents, the Redis backend and the read-through cache. It needs neither
the loaders nor the generator; other backends (``nats://``) are imported when a URL names
them."""

from __future__ import annotations

from damestoilet_contracts.runtime._agent import FlushAgent, PurgeHook, agent_group
from damestoilet_contracts.runtime._cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    BinaryMessage,
    from_binary,
    from_structured,
    to_binary,
    to_structured,
)
from damestoilet_contracts.runtime._coordinator import (
    Coordinator,
    CoordinatorConfig,
    load_flush_specs,
    load_handlers,
)
from damestoilet_contracts.runtime._coordinator_async import AsyncCoordinator
from damestoilet_contracts.runtime._core import Backoff
from damestoilet_contracts.runtime._emitter import AsyncEmitter, Emitter
from damestoilet_contracts.runtime._envelope import Envelope, uuid7
from damestoilet_contracts.runtime._event import (
    AVRO_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
    ContractEvent,
)
from damestoilet_contracts.runtime._l1 import L1Cache
from damestoilet_contracts.runtime._metrics import CoordinatorStats, serve_metrics
from damestoilet_contracts.runtime._plan_check import FlushSpec, KeyPattern, PlanChecker
from damestoilet_contracts.runtime._registry import open_backend
from damestoilet_contracts.runtime._registry import register as register_backend
from damestoilet_contracts.runtime._router import AsyncTargetRouter, TargetRouter
from damestoilet_contracts.runtime._seams import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    AsyncBus,
    AsyncDoneStore,
    AsyncPublisher,
    AsyncPurgeTarget,
    Backlog,
    Bus,
    ConsumePolicy,
    Dead,
    Delivery,
    DoneStore,
    FlushHandler,
    HandlerRegistry,
    Publisher,
    PurgeTarget,
    Retry,
    Settlement,
    dlq_stream_name,
)
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime._uri import SCHEMA_URN_PREFIX, schema_uri
from damestoilet_contracts.runtime._verify import Verifier, VerifyReport
from damestoilet_contracts.runtime.redis._bus import RedisStreamBus
from damestoilet_contracts.runtime.redis._bus_async import AsyncRedisStreamBus
from damestoilet_contracts.runtime.redis._cache import (
    AsyncCache,
    Cache,
    JsonSerializer,
    RefillBudget,
    Serializer,
)
from damestoilet_contracts.runtime.redis._done import AsyncRedisDoneStore, RedisDoneStore
from damestoilet_contracts.runtime.redis._publisher import AsyncRedisPublisher, RedisPublisher
from damestoilet_contracts.runtime.redis._purge import PurgeStats, RedisPurgeTarget
from damestoilet_contracts.runtime.redis._purge_async import AsyncRedisPurgeTarget
from damestoilet_contracts.runtime.redis._trust import trim_acknowledged

__all__ = [
    "AVRO_CONTENT_TYPE",
    "DEFAULT_GROUP",
    "DEFAULT_STREAM",
    "PROTOBUF_CONTENT_TYPE",
    "SCHEMA_URN_PREFIX",
    "STRUCTURED_CONTENT_TYPE",
    "AsyncBus",
    "AsyncCache",
    "AsyncCoordinator",
    "AsyncDoneStore",
    "AsyncEmitter",
    "AsyncPublisher",
    "AsyncPurgeTarget",
    "AsyncRedisDoneStore",
    "AsyncRedisPublisher",
    "AsyncRedisPurgeTarget",
    "AsyncRedisStreamBus",
    "AsyncTargetRouter",
    "Backlog",
    "Backoff",
    "BinaryMessage",
    "Bus",
    "Cache",
    "ConsumePolicy",
    "ContractEvent",
    "Coordinator",
    "CoordinatorConfig",
    "CoordinatorStats",
    "Dead",
    "Delivery",
    "DoneStore",
    "Emitter",
    "Envelope",
    "FlushAgent",
    "FlushHandler",
    "FlushSpec",
    "HandlerRegistry",
    "JsonSerializer",
    "KeyPattern",
    "L1Cache",
    "PlanChecker",
    "Publisher",
    "PurgeHook",
    "PurgeStats",
    "PurgeTarget",
    "RedisDoneStore",
    "RedisPublisher",
    "RedisPurgeTarget",
    "RedisStreamBus",
    "RefillBudget",
    "Retry",
    "Serializer",
    "Settlement",
    "SigningKeys",
    "TargetRouter",
    "Verifier",
    "VerifyReport",
    "agent_group",
    "dlq_stream_name",
    "from_binary",
    "from_structured",
    "load_flush_specs",
    "load_handlers",
    "open_backend",
    "register_backend",
    "schema_uri",
    "serve_metrics",
    "to_binary",
    "to_structured",
    "trim_acknowledged",
    "uuid7",
]
