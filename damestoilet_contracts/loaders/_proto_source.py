"""Where things stand in a ``.proto`` file: SourceCodeInfo spans, and each flush rule's line.

protoc records one span per option statement, not per element of an aggregate value (and the
paths it gives for ``option (damestoilet.v1.event).flush = {...}`` do not count earlier rules),
so the rules are found by reading the statement's text: each ``flush`` entry of the aggregate,
or each ``.flush`` statement, in the order protoc applies them. ``//`` and ``/* */`` comments
are skipped as protoc skips them; ``#`` is not a comment there (see :meth:`rule_lines`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from google.protobuf import descriptor_pb2

Path = tuple[int, ...]
_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)"""
    r"""|(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<word>[A-Za-z_][\w.]*)|(?P<other>.)""",
    re.DOTALL,
)
_OPEN = frozenset("{<")
_CLOSE = frozenset("}>")


class SourceInfo:
    """The SourceCodeInfo of one file, by path, with the file's text for reading statements."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto, text: str | None) -> None:
        self._spans: dict[Path, Sequence[int]] = {}
        self._comments: dict[Path, str] = {}
        for location in file.source_code_info.location:
            path = tuple(location.path)
            if path not in self._spans:
                self._spans[path] = tuple(location.span)
                self._comments[path] = (
                    location.leading_comments or location.trailing_comments
                ).strip()
        self._lines = text.splitlines() if text is not None else []

    def position(self, path: Path) -> tuple[int, int] | None:
        """The 1-based line and column where the element at ``path`` starts, or None."""
        span = self._spans.get(path)
        if not span:
            return None
        return span[0] + 1, span[1] + 1

    def comment(self, path: Path) -> str:
        """The leading (else trailing) comment of the element at ``path``, stripped."""
        return " ".join(self._comments.get(path, "").split())

    def rule_lines(self, option_path: Path) -> tuple[list[int], list[int]]:
        """The 1-based line of each flush rule of the option at ``option_path``, in order.

        ``option_path`` is the message's path followed by the options field and the extension
        number. Statements are read in source order; a rule not found is simply not listed.
        Also returns the lines of any ``#`` in the option's value: protoc joins the value onto
        one line before parsing it as text format, so a ``#`` there silently drops every rule
        after it.
        """
        statements = sorted(
            {
                (span[0], span[1], span[2] if len(span) == 4 else span[0], path == option_path)
                for path, span in self._spans.items()
                if path[: len(option_path)] == option_path
            }
        )
        lines: list[int] = []
        hashes: list[int] = []
        seen: set[tuple[int, int]] = set()
        for start_line, start_col, end_line, whole in statements:
            if (start_line, start_col) in seen:
                continue
            seen.add((start_line, start_col))
            tokens = list(self._tokens(start_line, start_col, end_line))
            hashes.extend(line for token, line in tokens if token == "#")
            lines.extend(_rules_in_aggregate(tokens) if whole else [start_line + 1])
        return lines, hashes

    def _tokens(self, start_line: int, start_col: int, end_line: int) -> Iterator[tuple[str, int]]:
        """(token, 1-based line) for the text from the start of a span to its last line."""
        lines = list(self._lines[start_line : end_line + 1])
        if not lines:
            return
        first = _char_index(lines[0], start_col)
        lines[0] = " " * first + lines[0][first:]
        text = "\n".join(lines)
        line = start_line + 1
        offset = 0
        for match in _TOKEN.finditer(text):
            line += text.count("\n", offset, match.start())
            offset = match.start()
            if match.lastgroup in ("word", "string", "other"):
                yield match.group(), line


def _char_index(text: str, column: int) -> int:
    """The index in ``text`` of protoc's 0-based ``column``, which counts a tab to the next 8."""
    col = 0
    for index, ch in enumerate(text):
        if col >= column:
            return index
        col = (col // 8 + 1) * 8 if ch == "\t" else col + 1
    return len(text)


def _rules_in_aggregate(tokens: Sequence[tuple[str, int]]) -> list[int]:
    """The line of each ``flush`` entry in ``option (...) = { flush: {...} flush: [...] }``."""
    lines: list[int] = []
    try:
        start = next(i for i, (tok, _) in enumerate(tokens) if tok == "=")
    except StopIteration:
        return lines
    depth = 0
    i = start + 1
    while i < len(tokens):
        token, line = tokens[i]
        if token == "#":
            break  # protoc drops the rest of the value, and so the rules in it
        if token in _OPEN or token == "[":
            depth += 1
        elif token in _CLOSE or token == "]":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and token == "flush":
            j = i + 1
            if j < len(tokens) and tokens[j][0] == ":":
                j += 1
            if j < len(tokens) and tokens[j][0] == "[":
                # A list of rules: each element at the list's own depth is one rule.
                j += 1
                inner = 0
                while j < len(tokens) and not (tokens[j][0] == "]" and inner == 0):
                    tok, tok_line = tokens[j]
                    if tok == "#":
                        return lines
                    if tok in _OPEN:
                        if inner == 0:
                            lines.append(tok_line)
                        inner += 1
                    elif tok in _CLOSE:
                        inner -= 1
                    j += 1
                i = j + 1
                continue
            lines.append(line)
            i = j
            continue
        i += 1
    return lines
