"""The runtime a service imports: envelope, bus backends, emitters, coordinator, purge
targets, read-through cache. It needs neither the loaders nor the generator."""

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
from damestoilet_contracts.runtime._seams import (
    Bus,
    BusEntry,
    Claimed,
    FlushHandler,
    GroupInfo,
    HandlerRegistry,
    PurgeTarget,
    dlq_stream_name,
)
from damestoilet_contracts.runtime._signing import SigningKeys
from damestoilet_contracts.runtime._uri import SCHEMA_URN_PREFIX, schema_uri
from damestoilet_contracts.runtime._verify import Verifier, VerifyReport
from damestoilet_contracts.runtime.redis._bus import (
    DEFAULT_GROUP,
    DEFAULT_STREAM,
    RedisStreamBus,
)
from damestoilet_contracts.runtime.redis._cache import AsyncCache, Cache, JsonSerializer, Serializer
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
    "AsyncCache",
    "AsyncEmitter",
    "AsyncRedisPurgeTarget",
    "BinaryMessage",
    "Bus",
    "BusEntry",
    "Cache",
    "Claimed",
    "ContractEvent",
    "Coordinator",
    "CoordinatorConfig",
    "CoordinatorStats",
    "Emitter",
    "Envelope",
    "FlushAgent",
    "FlushHandler",
    "FlushSpec",
    "GroupInfo",
    "HandlerRegistry",
    "JsonSerializer",
    "KeyPattern",
    "L1Cache",
    "PlanChecker",
    "PurgeHook",
    "PurgeStats",
    "PurgeTarget",
    "RedisPurgeTarget",
    "RedisStreamBus",
    "Serializer",
    "SigningKeys",
    "Verifier",
    "VerifyReport",
    "agent_group",
    "dlq_stream_name",
    "from_binary",
    "from_structured",
    "load_flush_specs",
    "load_handlers",
    "schema_uri",
    "serve_metrics",
    "to_binary",
    "to_structured",
    "trim_acknowledged",
    "uuid7",
]
