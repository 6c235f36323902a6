"""Small building blocks for generated code: statements, Python literals, the imports a module uses.

Statements are built as a tree (:class:`Line`, :class:`Block`) and flattened to indented lines
once; nested ``if`` blocks with nothing else in them are merged into one condition, as ruff's
SIM102 asks of hand-written code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from damestoilet_contracts.generator._names import natural_key

INDENT = "    "


@dataclass(frozen=True, slots=True)
class Line:
    """One simple statement."""

    text: str


@dataclass(frozen=True, slots=True)
class Block:
    """A compound statement: ``head`` ends with ``:`` and ``body`` is indented under it."""

    head: str
    body: tuple[Stmt, ...]


Stmt = Line | Block


def if_(condition: str, body: Sequence[Stmt]) -> Block:
    """``if condition:`` over ``body``, merged with a lone inner ``if`` into one condition."""
    if len(body) == 1 and isinstance(body[0], Block) and body[0].head.startswith("if "):
        inner = body[0].head[3:-1]
        return Block(f"if {group(condition)} and {group(inner)}:", body[0].body)
    return Block(f"if {condition}:", tuple(body))


def for_(target: str, iterable: str, body: Sequence[Stmt]) -> Block:
    """``for target in iterable:`` over ``body``."""
    return Block(f"for {target} in {iterable}:", tuple(body))


def group(condition: str) -> str:
    """``condition`` in parentheses when it has a top-level ``or`` or a conditional expression."""
    depth = 0
    for index, char in enumerate(condition):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (
            condition.startswith(" or ", index) or condition.startswith(" if ", index)
        ):
            return f"({condition})"
    return condition


def flatten(statements: Iterable[Stmt], level: int = 0) -> list[str]:
    """The statements as source lines, indented ``level`` steps."""
    lines: list[str] = []
    for statement in statements:
        if isinstance(statement, Line):
            lines.append(INDENT * level + statement.text)
        else:
            lines.append(INDENT * level + statement.head)
            lines.extend(flatten(statement.body, level + 1))
    return lines


def py_str(text: str) -> str:
    """``text`` as a double-quoted Python string literal."""
    return '"' + _escape(text, braces=False) + '"'


def py_fstring_literal(text: str) -> str:
    """``text`` escaped for the literal part of a double-quoted f-string (braces doubled)."""
    return _escape(text, braces=True)


_PLAIN = re.compile(r"[ !#-\[\]-z|~]*")  # printable ASCII but for backslash, quote, braces


def _escape(text: str, *, braces: bool) -> str:
    if _PLAIN.fullmatch(text):
        return text
    out: list[str] = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif braces and char in "{}":
            out.append(char * 2)
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def py_literal(value: object) -> str:
    """A JSON value (dict, list, str, int, float, bool, None) as a Python literal, keys in order."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_str(str(k))}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


@dataclass(slots=True)
class Imports:
    """What one generated module imports, collected while its code fragments are built.

    ``stdlib`` holds module names (``import uuid``); ``typing`` names from :mod:`typing`;
    ``third_party`` full lines; ``errors`` and ``model`` names from damestoilet_contracts;
    ``local`` sibling modules (``from . import users_v1``) and ``pb2`` relative imports.
    """

    stdlib: set[str] = field(default_factory=set)
    typing: set[str] = field(default_factory=set)
    abc: set[str] = field(default_factory=set)
    third_party: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)
    model: set[str] = field(default_factory=set)
    local: set[str] = field(default_factory=set)
    pb2: set[tuple[str, str, str]] = field(default_factory=set)  # (from, name, alias)
    helpers: set[str] = field(default_factory=set)  # module-level helper functions used

    def blocks(self) -> tuple[tuple[str, ...], ...]:
        """The import lines grouped as isort does: stdlib, third party, first party, local."""
        std = [f"import {name}" for name in sorted(self.stdlib)]
        if self.abc:
            std.append(f"from collections.abc import {', '.join(_by_type(self.abc))}")
        if self.typing:
            std.append(f"from typing import {', '.join(_by_type(self.typing))}")
        third = sorted(line for line in self.third_party if line.startswith("import "))
        third += sorted(line for line in self.third_party if line.startswith("from "))
        first: list[str] = []
        if self.errors:
            first.append(f"from damestoilet_contracts import {', '.join(_by_type(self.errors))}")
        if self.model:
            first.append(
                f"from damestoilet_contracts.model import {', '.join(_by_type(self.model))}"
            )
        local: list[str] = []
        if self.local:
            local.append(f"from . import {', '.join(sorted(self.local, key=natural_key))}")
        for source, name, alias in sorted(self.pb2, key=lambda i: [natural_key(p) for p in i]):
            local.append(f"from {source} import {name} as {alias}")
        return tuple(tuple(block) for block in (std, third, first, local) if block)


def relative_import_lines(items: Iterable[tuple[str, str, str]]) -> list[str]:
    """``from .module import name [as alias]`` lines for (module, name, alias) items, as isort
    writes them: modules in natural order, plain names combined, each alias on its own line."""
    by_module: dict[str, set[tuple[str, str]]] = {}
    for module, name, alias in items:
        by_module.setdefault(module, set()).add((name, alias))
    lines: list[str] = []
    for module in sorted(by_module, key=natural_key):
        pairs = by_module[module]
        plain = [name for name, alias in pairs if name == alias]
        if plain:
            lines.append(f"from .{module} import {', '.join(_by_type(plain))}")
        aliased = sorted(
            ((n, a) for n, a in pairs if n != a),
            key=lambda p: (natural_key(p[0]), natural_key(p[1])),
        )
        lines.extend(f"from .{module} import {name} as {alias}" for name, alias in aliased)
    return lines


def _by_type(names: Iterable[str]) -> list[str]:
    # isort's order-by-type: CONSTANTS, then Classes, then functions, each in natural order.
    def key(name: str) -> tuple[int, list[tuple[int, str | int]], str]:
        group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return group, natural_key(name), name

    return sorted(set(names), key=key)


def wrapped_str(text: str, width: int = 64) -> str:
    """``text`` as adjacent string literals of at most ``width`` characters, split at spaces.

    Inside a call the formatter puts each piece on its own line when the whole does not fit,
    so a long message never makes a line longer than ruff's limit.
    """
    return " ".join(py_str(chunk) for chunk in split_text(text, width))


def split_text(text: str, width: int) -> list[str]:
    """``text`` cut into pieces of at most ``width`` characters, after spaces where possible."""
    pieces: list[str] = []
    current = ""
    for token in re.findall(r"\S+\s*|\s+", text):
        while len(token) > width:  # a word longer than a line is cut anywhere
            if current:
                pieces.append(current)
                current = ""
            pieces.append(token[:width])
            token = token[width:]
        if current and len(current) + len(token) > width:
            pieces.append(current)
            current = ""
        current += token
    if current or not pieces:
        pieces.append(current)
    return pieces


def wrap_doc(text: str, width: int) -> list[str]:
    """A docstring or comment ``text`` as lines of at most ``width`` characters.

    Whitespace is collapsed; backslashes and triple quotes are neutralised so the text can
    sit in a docstring. A word longer than ``width`` stays whole on its own line.
    """
    words = text.replace("\\", "/").replace('"""', "'''").split()
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines
