"""A JSON parser that remembers where things are: the line of every object, array and key.

Python's :mod:`json` keeps no positions, and a schema error without a line is of little use.
:func:`loads` returns the same values as :func:`json.loads`, except that objects are
:class:`JsonObject` and arrays :class:`JsonArray`, which carry the line and column of their
opening bracket, of each key and of each element. Errors are :class:`json.JSONDecodeError`
with the stdlib's wording, so messages read the same as ``json.loads``'s.
"""

from __future__ import annotations

import json
import re
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Scalars (strings, numbers, constants) are left to the stdlib, so they parse and fail exactly
# as with json.loads; only objects and arrays, whose positions we keep, are parsed here.
_SCALARS = json.JSONDecoder()


class JsonObject(dict[str, Any]):
    """A JSON object that knows the line and column of its ``{`` and of each key."""

    __slots__ = ("column", "key_lines", "line")

    def __init__(self, line: int, column: int) -> None:
        super().__init__()
        self.line = line
        self.column = column
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """The line of ``key`` (its value starts there too, in any sane layout), or our own."""
        return self.key_lines.get(key, self.line)


class JsonArray(list[Any]):
    """A JSON array that knows the line and column of its ``[`` and of each element."""

    __slots__ = ("column", "item_lines", "line")

    def __init__(self, line: int, column: int) -> None:
        super().__init__()
        self.line = line
        self.column = column
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        """The line where element ``index`` starts."""
        return self.item_lines[index]


def loads(text: str) -> Any:
    """Parse ``text`` as one JSON value, keeping positions (see the module docstring).

    Returns the value. Raises :class:`json.JSONDecodeError` (a ``ValueError``) with the
    stdlib's message, line and column when ``text`` is not valid JSON.
    """
    return _Parser(text).document()


class _Parser:
    """Recursive descent over one document; ``pos`` is the index of the next character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # Offsets of line starts, so that a position becomes (line, column) by bisection.
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def where(self, pos: int) -> tuple[int, int]:
        lo, hi = 0, len(self.line_starts)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1, pos - self.line_starts[lo] + 1

    def fail(self, message: str, pos: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, pos)

    def skip(self) -> None:
        match = _WHITESPACE.match(self.text, self.pos)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()

    def document(self) -> Any:
        self.skip()
        value = self.value()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("Extra data", self.pos)
        return value

    def value(self) -> Any:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail("Expecting value", pos)
        ch = text[pos]
        if ch == "{":
            return self.object()
        if ch == "[":
            return self.array()
        result, self.pos = _SCALARS.raw_decode(text, pos)
        return result

    def object(self) -> JsonObject:
        result = JsonObject(*self.where(self.pos))
        self.pos += 1
        self.skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            if not self.text.startswith('"', self.pos):
                raise self.fail("Expecting property name enclosed in double quotes", self.pos)
            key_line = self.where(self.pos)[0]
            key, self.pos = _SCALARS.raw_decode(self.text, self.pos)
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("Expecting ':' delimiter", self.pos)
            self.pos += 1
            self.skip()
            result[key] = self.value()
            result.key_lines[key] = key_line
            self.skip()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return result
            if not self.text.startswith(",", self.pos):
                raise self.fail("Expecting ',' delimiter", self.pos)
            self.pos += 1
            self.skip()

    def array(self) -> JsonArray:
        result = JsonArray(*self.where(self.pos))
        self.pos += 1
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            result.item_lines.append(self.where(self.pos)[0])
            result.append(self.value())
            self.skip()
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return result
            if not self.text.startswith(",", self.pos):
                raise self.fail("Expecting ',' delimiter", self.pos)
            self.pos += 1
            self.skip()
