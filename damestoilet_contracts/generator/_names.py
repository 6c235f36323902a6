"""Python names for schema names: modules, classes, attributes, enum members, sort orders.

Every function here is pure; the naming pass (:mod:`._build`) calls them once, before any
template runs, so rendering never invents a name.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable

_WORD_BREAK_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_BREAK_ACRONYM = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")
_DIGITS = re.compile(r"(\d+)")

#: Names a generated module defines or imports itself; a schema type may not take them.
RESERVED_MODULE_NAMES = frozenset(
    {
        "Any",
        "ClassVar",
        "DEFAULT_FANOUT_CAP",
        "EmptyValueError",
        "FANOUT_CAP",
        "FanOutError",
        "Final",
        "FlushOp",
        "Mapping",
        "Plan",
        "cast",
        "json",
        "json_form",
    }
)

#: Attribute names a generated event class uses itself; a field may not take them.
RESERVED_ATTRIBUTES = frozenset(
    {
        "cls",
        "self",
        "flush_plan",
        "from_bytes",
        "from_dict",
        "from_json",
        "key_count",
        "to_bytes",
        "to_dict",
        "to_json",
    }
)


def snake_case(name: str) -> str:
    """``productId`` -> ``product_id``, ``HTTPStatus`` -> ``http_status``; others unchanged."""
    text = _NOT_IDENTIFIER.sub("_", name)
    text = _WORD_BREAK_ACRONYM.sub("_", _WORD_BREAK_LOWER_UPPER.sub("_", text))
    return text.lower()


def pascal_case(name: str) -> str:
    """``cart_line`` -> ``CartLine``, ``cartLine`` -> ``CartLine``; capitals inside are kept."""
    parts = [p for p in _NOT_IDENTIFIER.sub("_", name).split("_") if p]
    text = "".join(p[:1].upper() + p[1:] for p in parts)
    return text if text and not text[0].isdigit() else f"T{text}"


def module_name(namespace: str) -> str:
    """The module of a namespace: ``catalog.v1`` -> ``catalog_v1``; the root -> ``root``."""
    text = snake_case(namespace.replace(".", "_")) if namespace else "root"
    if text[0].isdigit() or keyword.iskeyword(text) or text in {"handlers"}:
        text = f"ns_{text}"
    return text


def attribute_name(name: str, taken: Iterable[str] = ()) -> str:
    """A snake_case attribute for field ``name``, not a keyword, reserved or in ``taken``."""
    text = snake_case(name)
    if text[:1].isdigit():
        text = f"f_{text}"
    if keyword.iskeyword(text) or text in RESERVED_ATTRIBUTES:
        text = f"{text}_"
    return unique(text, taken, separator="_")


def class_name(name: str, taken: Iterable[str] = ()) -> str:
    """A CapWords class name for a schema type's short ``name``, unique against ``taken``."""
    text = pascal_case(name)
    if text in RESERVED_MODULE_NAMES:
        text = f"{text}Type"
    return unique(text, taken, separator="")


def unique(text: str, taken: Iterable[str], *, separator: str) -> str:
    """``text``, or ``text`` with the smallest counter from 2 that is not in ``taken``."""
    used = set(taken)
    if text not in used:
        return text
    counter = 2
    while f"{text}{separator}{counter}" in used:
        counter += 1
    return f"{text}{separator}{counter}"


def is_mixed_case(name: str) -> bool:
    """True where ruff's N815 calls a class attribute mixedCase (``placedOrder``)."""
    stripped = name.removeprefix("_")
    return name != name.lower() and stripped[:1].islower()


def constant_name(name: str) -> str:
    """``ProductPriceChanged`` -> ``PRODUCT_PRICE_CHANGED``."""
    return snake_case(name).upper()


def natural_key(name: str) -> list[tuple[int, str | int]]:
    """A sort key comparing digit runs as numbers, case-insensitively, as ruff's isort does."""
    return [
        (1, int(chunk)) if chunk.isdigit() else (0, chunk.lower())
        for chunk in _DIGITS.split(name)
        if chunk
    ]


def all_order(names: Iterable[str]) -> list[str]:
    """``names`` in the order ruff's RUF022 wants for ``__all__`` (isort style, natural sort).

    SCREAMING_CASE first, then CamelCase, then the rest; digits compare as numbers.
    """

    def key(name: str) -> tuple[int, list[tuple[int, str | int]]]:
        if name.isupper():
            group = 0
        elif name[:1].isupper():
            group = 1
        else:
            group = 2
        natural: list[tuple[int, str | int]] = [
            (1, int(chunk)) if chunk.isdigit() else (0, chunk)
            for chunk in _DIGITS.split(name)
            if chunk
        ]
        return group, natural

    return sorted(set(names), key=key)
