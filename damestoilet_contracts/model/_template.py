"""Key templates: ``catalog:product:{product_id}``, ``{order.customer_id}``, ``{{literal}}``.

A template is parsed once, at load time, into literal text and placeholders. Rendering takes
the values of the placeholders, already looked up in an event, and returns every key they
produce: a placeholder whose value is a list fans out, several lists give their product.
Values render canonically: integers in decimal, booleans as ``true``/``false``, enums by
symbol, UUIDs lowercase with hyphens. An empty value is refused, since an empty segment widens
a prefix or tag purge into a cache storm.
"""

from __future__ import annotations

import enum
import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from damestoilet_contracts._errors import EmptyValueError, FanOutError, TemplateError

#: Default cap on the keys one event may fan out to.
DEFAULT_FANOUT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A ``{a.b.c}`` placeholder: the dotted path of the field it names."""

    path: tuple[str, ...]

    @property
    def dotted(self) -> str:
        """The path as written in the template, ``a.b.c``."""
        return ".".join(self.path)


Part = str | Placeholder


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed key template: ``source`` as written, ``parts`` as literals and placeholders."""

    source: str
    parts: tuple[Part, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """The placeholders in order of appearance, repeats included."""
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    def render(
        self,
        values: Mapping[str, str | Sequence[str]],
        *,
        cap: int = DEFAULT_FANOUT_CAP,
    ) -> list[str]:
        """Every key of this template for ``values``, a map from dotted path to rendered value.

        A value that is a list (already rendered, see :func:`render_value`) fans out. Keys come
        in the order of the product, first placeholder slowest. Raises
        :class:`EmptyValueError` for a missing or empty value and :class:`FanOutError` when the
        product exceeds ``cap``.
        """
        choices: list[Sequence[str]] = []
        count = 1
        for part in self.parts:
            if isinstance(part, str):
                choices.append((part,))
                continue
            name = part.dotted
            if name not in values:
                raise EmptyValueError(f"template {self.source!r}: no value for field {name!r}")
            value = values[name]
            options: Sequence[str] = (value,) if isinstance(value, str) else value
            for option in options:
                if option == "":
                    raise EmptyValueError(
                        f"template {self.source!r}: field {name!r} is empty; an empty segment "
                        "would widen the purge"
                    )
            count *= len(options)
            if count > cap:
                raise FanOutError(
                    f"template {self.source!r}: fans out to more than {cap} keys; raise the cap "
                    "or split the event"
                )
            choices.append(options)
        return ["".join(combo) for combo in itertools.product(*choices)]


def parse_template(source: str) -> Template:
    """Parse ``source`` into a :class:`Template`.

    ``{{`` and ``}}`` are literal braces. Raises :class:`TemplateError` for an unbalanced brace,
    an empty placeholder or a malformed path; the message gives the column (0-based offset).
    """
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "{":
            if source.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = source.find("}", i + 1)
            nested = source.find("{", i + 1)
            if end < 0 or (0 <= nested < end):
                raise TemplateError(
                    f"unbalanced '{{' at column {i} in {source!r}; close it with '}}' or write "
                    "'{{' for a literal brace"
                )
            body = source[i + 1 : end]
            path = tuple(segment.strip() for segment in body.split("."))
            if not body.strip() or any(not segment.isidentifier() for segment in path):
                raise TemplateError(
                    f"placeholder {{{body}}} at column {i} in {source!r} is not a field path; "
                    "write {field} or {record.field}"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(path))
            i = end + 1
        elif ch == "}":
            if source.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError(
                f"unbalanced '}}' at column {i} in {source!r}; write '}}}}' for a literal brace"
            )
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(source, tuple(parts))


def format_template(parts: Sequence[Part]) -> str:
    """The source text of ``parts``, literal braces doubled: inverse of :func:`parse_template`."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, Placeholder):
            out.append("{" + part.dotted + "}")
        else:
            out.append(part.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def render_value(value: object) -> str:
    """The canonical key text of one scalar value (str, int, bool, enum, UUID).

    Raises :class:`EmptyValueError` for None and :class:`TemplateError` for types that are not
    key-safe (floats, bytes, containers).
    """
    if value is None:
        raise EmptyValueError("a template field is absent (None)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TemplateError(
        f"value {value!r} of type {type(value).__name__} is not key-safe; "
        "use strings, integers, booleans, enums or UUIDs in key templates"
    )
