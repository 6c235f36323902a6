"""The contract model: frozen, validated types that every later layer works from."""

from __future__ import annotations

from damestoilet_contracts.model._contract import (
    DEFAULT_TARGET,
    CacheNode,
    ContractSet,
    EventType,
    FlushGraph,
    Format,
    IfAbsent,
    Mode,
    Op,
    Rule,
    Scope,
    StormGuard,
)
from damestoilet_contracts.model._key import key_rule, partition_key_paths
from damestoilet_contracts.model._plan import FlushOp, Plan
from damestoilet_contracts.model._template import (
    DEFAULT_FANOUT_CAP,
    Placeholder,
    Template,
    format_template,
    parse_template,
    render_value,
)
from damestoilet_contracts.model._types import INT_BOUNDS, KEY_SAFE_KINDS, Field, Kind, TypeRef

__all__ = [
    "DEFAULT_FANOUT_CAP",
    "DEFAULT_TARGET",
    "INT_BOUNDS",
    "KEY_SAFE_KINDS",
    "CacheNode",
    "ContractSet",
    "EventType",
    "Field",
    "FlushGraph",
    "FlushOp",
    "Format",
    "IfAbsent",
    "Kind",
    "Mode",
    "Op",
    "Placeholder",
    "Plan",
    "Rule",
    "Scope",
    "StormGuard",
    "Template",
    "TypeRef",
    "format_template",
    "key_rule",
    "parse_template",
    "partition_key_paths",
    "render_value",
]
