"""The one error tree of damestoilet-contracts.

Every error the toolkit raises on purpose derives from :class:`DamestoiletError`, with one
branch per stage, and leaves that also subclass the built-in exception that fits::

    DamestoiletError
    ├── SchemaError                 a contract (schema, annotation, flush graph) is wrong
    │   ├── SchemaSyntaxError       (ValueError) a file does not parse
    │   ├── TemplateError           (ValueError) a key template is malformed or names bad fields
    │   └── ContractError          (ValueError) several problems, collected by a loader or lint
    ├── PlanError                   an event cannot be turned into a flush plan
    │   ├── EmptyValueError         (ValueError) a template field is empty, missing or None
    │   ├── FanOutError             (ValueError) the keys of one event exceed the cap
    │   └── PayloadError            (ValueError) a payload does not fit its event type
    ├── CodegenError                the generator cannot render or check its output
    ├── DeliveryError               an event cannot be emitted, read or acknowledged
    │   ├── EnvelopeError           (ValueError) bytes or fields are not a valid envelope
    │   ├── DeliveryTimeoutError    (TimeoutError) the bus did not answer in time
    │   ├── EmitterClosedError      (RuntimeError) an emitter was used after close()
    │   ├── OutboxError             the outbox table is missing or misshapen, or a connection
    │   │                           cannot hold it (the message names the fix)
    │   └── BackendError            a bus, publisher or done store failed or is unreachable
    ├── PurgeError                  a purge target failed to purge a key, prefix or tag
    │   ├── UnboundTargetError      (LookupError) a plan names a target nothing is bound to
    │   └── PurgeInterruptedError   a stop interrupted a stage between round trips
    └── ConfigError                 (ValueError) a backend URL, scheme or binding is wrong
        └── MissingExtraError       (ImportError) a backend's client library is not installed

Messages say what was wrong, where (``path:line`` for schemas) and what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class SourceLocation:
    """A place in a schema file: path as given to the loader, 1-based line and column."""

    path: str
    line: int = 1
    column: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One finding of a loader or of lint: where it is and what to do about it.

    ``severity`` is ``error`` (the contracts are wrong: lint exits 1, generate refuses),
    ``warning`` (probably a mistake, printed, not fatal) or ``note`` (worth knowing)."""

    location: SourceLocation
    message: str
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        """Whether this problem makes the contracts unusable."""
        return self.severity == "error"

    def __str__(self) -> str:
        if self.severity == "error":
            return f"{self.location}: {self.message}"
        return f"{self.location}: {self.severity}: {self.message}"


class DamestoiletError(Exception):
    """Root of every error this toolkit raises on purpose."""


class SchemaError(DamestoiletError):
    """A contract (schema, annotation or flush graph) is wrong."""


class SchemaSyntaxError(SchemaError, ValueError):
    """A schema or graph file does not parse; the message keeps the parser's line and column."""


class TemplateError(SchemaError, ValueError):
    """A key template is malformed (unbalanced brace, empty placeholder) or names bad fields."""


class ContractError(SchemaError, ValueError):
    """Several problems found at once; ``problems`` holds them sorted by location."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(sorted(set(problems)))
        super().__init__("\n".join(str(p) for p in self.problems))


class PlanError(DamestoiletError):
    """An event cannot be turned into a flush plan."""


class EmptyValueError(PlanError, ValueError):
    """A template field is empty, missing or None: it would widen a purge into a cache storm."""


class FanOutError(PlanError, ValueError):
    """The keys of one event exceed the configured fan-out cap."""


class PayloadError(PlanError, ValueError):
    """A payload does not fit its event type: unknown type, or a value of the wrong type."""


class CodegenError(DamestoiletError):
    """The code generator cannot render or check its output."""


class DeliveryError(DamestoiletError):
    """An event cannot be emitted to, read from or acknowledged on the bus."""


class EnvelopeError(DeliveryError, ValueError):
    """Bytes or stream fields are not a valid envelope (wrong version, missing attribute)."""


class DeliveryTimeoutError(DeliveryError, TimeoutError):
    """The bus did not answer in time."""


class EmitterClosedError(DeliveryError, RuntimeError):
    """An emitter was used after ``close()``/``aclose()``: nothing was sent."""


class OutboxError(DeliveryError):
    """The outbox table is missing or of the wrong shape, or a connection cannot hold it."""


class BackendError(DeliveryError):
    """A bus, publisher or done store failed or cannot be reached; the backend's own error
    (redis-py, nats-py, ...) is its ``__cause__``. Workers log it and retry with backoff."""


class PurgeError(DamestoiletError):
    """A purge target failed to purge a key, a prefix or a tag."""


class UnboundTargetError(PurgeError, LookupError):
    """A plan names a target that no purge backend is bound to (``--target NAME=URL``)."""


class ConfigError(DamestoiletError, ValueError):
    """A backend URL, its scheme or a target binding is wrong; the message says the fix."""


class MissingExtraError(ConfigError, ImportError):
    """A backend's client library is not installed; the message names the extra to install."""


class PurgeInterruptedError(PurgeError):
    """A stop interrupted a stage between two round trips; the stage is redone later."""
