"""TypeScript names for schema names, and TypeScript literals.

Pure functions, like :mod:`._names` for Python: the TypeScript naming pass (:mod:`._ts_build`)
calls them before any template runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from damestoilet_contracts.generator import _names

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_$]")

#: Names a generated module defines or imports itself; a schema type may not take them.
RESERVED_MODULE_NAMES = frozenset(
    {
        "AvroDatum",
        "ContractEvent",
        "Date",
        "EmptyValueError",
        "Error",
        "FanOutError",
        "FlushOp",
        "Map",
        "Message",
        "Object",
        "PayloadError",
        "Plan",
        "ProtoInit",
        "Uint8Array",
    }
)

#: Members a generated class has itself; a field may not take them.
RESERVED_MEMBERS = frozenset(
    {
        "constructor",
        "contentType",
        "eventType",
        "flushPlan",
        "fromAvro",
        "fromBytes",
        "fromProto",
        "keyCount",
        "prototype",
        "rulesFingerprint",
        "schemaFingerprint",
        "toAvro",
        "toBytes",
        "toProto",
    }
)


def camel_case(name: str) -> str:
    """``product_id`` -> ``productId``, ``warehouseId`` stays, ``HTTPStatus`` -> ``httpStatus``."""
    words = [w for w in _names.snake_case(name).split("_") if w]
    if not words:
        return "field"
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def member_name(name: str, taken: Iterable[str] = ()) -> str:
    """A camelCase member for field ``name``, not reserved and not in ``taken``."""
    text = camel_case(_NOT_IDENTIFIER.sub("_", name))
    if text[:1].isdigit():
        text = f"f{text}"
    if text in RESERVED_MEMBERS:
        text = f"{text}_"
    return _names.unique(text, taken, separator="_")


def class_name(name: str, taken: Iterable[str] = ()) -> str:
    """A PascalCase class name for a schema type's short ``name``, unique against ``taken``."""
    text = _names.pascal_case(name)
    if text in RESERVED_MODULE_NAMES:
        text = f"{text}Type"
    return _names.unique(text, taken, separator="")


def ts_str(text: str) -> str:
    """A TypeScript string literal of ``text`` (JSON's escaping is valid TypeScript)."""
    return json.dumps(text, ensure_ascii=False)


def template_text(text: str) -> str:
    """``text`` escaped for the inside of a template literal."""
    return text.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")


def constant_name(name: str) -> str:
    """``ProductPriceChanged`` -> ``PRODUCT_PRICE_CHANGED``."""
    return _names.snake_case(name).upper()
