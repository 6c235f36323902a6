"""damestoilet-contracts: cache invalidation as a typed, schema-first contract.

The top level exports the error tree and the contract model. The layers live in sub-packages,
in the order they import each other: ``model``, ``loaders``, ``compiler``, ``lint``,
``generator``, ``runtime``, ``cli``.
"""

from __future__ import annotations

from damestoilet_contracts._errors import (
    BackendError,
    CodegenError,
    ConfigError,
    ContractError,
    DamestoiletError,
    DeliveryError,
    DeliveryTimeoutError,
    EmitterClosedError,
    EmptyValueError,
    EnvelopeError,
    FanOutError,
    MissingExtraError,
    OutboxError,
    PayloadError,
    PlanError,
    Problem,
    PurgeError,
    PurgeInterruptedError,
    SchemaError,
    SchemaSyntaxError,
    SourceLocation,
    TemplateError,
    UnboundTargetError,
)
from damestoilet_contracts._version import __version__

__all__ = [
    "BackendError",
    "CodegenError",
    "ConfigError",
    "ContractError",
    "DamestoiletError",
    "DeliveryError",
    "DeliveryTimeoutError",
    "EmitterClosedError",
    "EmptyValueError",
    "EnvelopeError",
    "FanOutError",
    "MissingExtraError",
    "OutboxError",
    "PayloadError",
    "PlanError",
    "Problem",
    "PurgeError",
    "PurgeInterruptedError",
    "SchemaError",
    "SchemaSyntaxError",
    "SourceLocation",
    "TemplateError",
    "UnboundTargetError",
    "__version__",
]
