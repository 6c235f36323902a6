"""The contract model: event types, their flush rules, the flush graph, the whole contract set.

Frozen dataclasses, produced by the loaders after every reference and template is checked;
nothing after the loaders sees a schema file again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from damestoilet_contracts._errors import SourceLocation
from damestoilet_contracts.model._template import Template
from damestoilet_contracts.model._types import Field, TypeRef

#: The target used when a rule names none.
DEFAULT_TARGET = "default"


class Op(enum.Enum):
    """What a rule or cache node purges."""

    KEY = "key"  # one exact key
    PREFIX = "prefix"  # every key that starts with the rendered text
    TAG = "tag"  # every key filled under the rendered tag


class Mode(enum.Enum):
    """How a purge treats a key."""

    DELETE = "delete"  # gone at once; a target's storm guard may spread a wide purge out
    SOFT = "soft"  # readable as stale for the target's grace window while one caller refills
    HARD = "hard"  # gone at once, never spread by a storm guard (``storm: never``)


class Scope(enum.Enum):
    """How wide a prefix or tag rule means to be."""

    EVENT = "event"  # the template names fields of the event (the default)
    NAMESPACE = "namespace"  # a template without placeholders: a whole namespace, on purpose


@dataclass(frozen=True, slots=True)
class StormGuard:
    """A target's guard against a wide purge: past ``max_keys`` hard deletes of one op, the
    rest go stale at moments spread over ``spread_seconds`` instead of all at once."""

    max_keys: int
    spread_seconds: float = 60.0


class IfAbsent(enum.Enum):
    """What a rule does when a nullable field of its template is absent in an event."""

    ERROR = "error"  # refuse the event (the default for required fields)
    SKIP = "skip"  # the rule produces no keys for this event


Format = Literal["avro", "proto"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One flush rule of an event type.

    Either ``op`` and ``template`` are set (a direct key, prefix or tag rule), or ``cache``
    names a node of the flush graph (``op`` and ``template`` then stay None and come from the
    node).
    """

    location: SourceLocation
    op: Op | None = None
    template: Template | None = None
    cache: str | None = None
    target: str = DEFAULT_TARGET
    mode: Mode = Mode.DELETE
    if_absent: IfAbsent = IfAbsent.ERROR
    scope: Scope = Scope.EVENT

    def describe(self) -> str:
        """The rule as written, for messages and rule diffs: ``key catalog:product:{id}``."""
        if self.cache is not None:
            return f"cache {self.cache}"
        assert self.op is not None and self.template is not None
        text = f"{self.op.value} {self.template.source}"
        if self.target != DEFAULT_TARGET:
            text += f" target={self.target}"
        if self.mode is not Mode.DELETE:
            text += f" mode={self.mode.value}"
        if self.if_absent is not IfAbsent.ERROR:
            text += f" if_absent={self.if_absent.value}"
        if self.scope is not Scope.EVENT:
            text += f" scope={self.scope.value}"
        return text


@dataclass(frozen=True, slots=True)
class EventType:
    """An event type: its fields, its flush rules, where it came from, its two fingerprints.

    ``schema_fingerprint`` is the format's own (Avro: CRC-64-AVRO/Rabin of the Parsing
    Canonical Form; Protobuf: SHA-256 of the message's descriptor with options stripped).
    ``rules_fingerprint`` covers the rules, which the canonical form drops.
    """

    full_name: str
    format: Format
    fields: tuple[Field, ...]
    rules: tuple[Rule, ...]
    location: SourceLocation
    schema_fingerprint: str
    rules_fingerprint: str
    doc: str = ""
    # Format-specific source material the generator needs (Avro: the parsed schema as JSON
    # text; Protobuf: the proto file name relative to the schema root).
    source: str = ""
    #: The fields the partition key is made of, as the contract names them (``key``); empty:
    #: the fields of the first rule's template (:func:`~model.partition_key_paths`).
    key: tuple[tuple[str, ...], ...] = ()
    #: Where ``key`` is written (None: not written).
    key_location: SourceLocation | None = None

    @property
    def namespace(self) -> str:
        """The dotted namespace or package, ``catalog.v1``."""
        return self.full_name.rpartition(".")[0]

    @property
    def name(self) -> str:
        """The short name, ``ProductPriceChanged``."""
        return self.full_name.rpartition(".")[2]

    @property
    def record(self) -> TypeRef:
        """The event as a record type, for walking nested field paths."""
        from damestoilet_contracts.model._types import Kind

        return TypeRef(Kind.RECORD, name=self.full_name, fields=self.fields)


@dataclass(frozen=True, slots=True)
class CacheNode:
    """A node of the flush graph: a cache with its template and the nodes it derives from."""

    name: str
    op: Op
    template: Template
    location: SourceLocation
    derived_from: tuple[str, ...] = ()
    target: str = DEFAULT_TARGET
    mode: Mode = Mode.DELETE
    scope: Scope = Scope.EVENT


@dataclass(frozen=True, slots=True)
class FlushGraph:
    """The cache nodes of ``flush-graph.yaml``; ``grace`` maps a target to its soft window (s);
    ``prefix_index`` names the targets whose prefix purges read the prefix index."""

    nodes: Mapping[str, CacheNode] = field(default_factory=lambda: MappingProxyType({}))
    path: str = ""
    grace: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    prefix_index: frozenset[str] = frozenset()
    #: Storm guards by target (targets without ``storm_max_keys`` have none).
    storm: Mapping[str, StormGuard] = field(default_factory=lambda: MappingProxyType({}))
    #: The shortest literal start a prefix of a target should have (``min_prefix``), by target.
    min_prefix: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def derived(self, name: str) -> tuple[str, ...]:
        """The nodes derived directly from ``name``, sorted."""
        return tuple(sorted(n.name for n in self.nodes.values() if name in n.derived_from))


@dataclass(frozen=True, slots=True)
class ContractSet:
    """Every event type of a schema directory, by full name, and the flush graph."""

    events: Mapping[str, EventType]
    graph: FlushGraph
    root: str = ""
