"""Properties of key templates: parsing inverts formatting, braces escape, fan-out counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from damestoilet_contracts import TemplateError
from damestoilet_contracts.model import Placeholder, format_template, parse_template

_identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_placeholders = st.lists(_identifiers, min_size=1, max_size=3).map(
    lambda path: Placeholder(tuple(path))
)
# Literals may hold anything, braces included; format_template doubles them.
_literals = st.text(alphabet=st.sampled_from("ab:-_{}. /*?[]"), min_size=1, max_size=6)


@st.composite
def _parts(draw: st.DrawFn) -> list[str | Placeholder]:
    """Parts as parse_template returns them: no empty literal, no two literals in a row."""
    raw = draw(st.lists(st.one_of(_placeholders, _literals), max_size=8))
    parts: list[str | Placeholder] = []
    for part in raw:
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return parts


@given(_parts())
def test_parse_inverts_format(parts: list[str | Placeholder]) -> None:
    assert parse_template(format_template(parts)).parts == tuple(parts)


@given(_parts())
def test_format_inverts_parse_on_formatted_text(parts: list[str | Placeholder]) -> None:
    source = format_template(parts)
    assert format_template(parse_template(source).parts) == source


@given(st.text(alphabet=st.sampled_from("ab{}"), max_size=12))
def test_doubled_braces_are_literal_braces(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    template = parse_template(escaped)
    assert template.placeholders == ()
    assert template.render({}) == ([text] if text else [""])


@pytest.mark.parametrize("source", ["a{", "a}", "{}", "{a.}", "{a b}", "{{a}", "{a{b}}"])
def test_malformed_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(source)


@given(
    st.lists(
        st.lists(st.text(alphabet="xyz", min_size=1, max_size=3), max_size=4),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_render_fans_out_to_the_product_of_list_lengths(
    lists: list[list[str]], with_scalar: bool
) -> None:
    names = [f"f{i}" for i in range(len(lists))]
    source = ":".join("{" + name + "}" for name in names)
    values: dict[str, str | list[str]] = dict(zip(names, lists, strict=True))
    if with_scalar:
        source += ":{one}"
        values["one"] = "s"
    keys = parse_template(source).render(values, cap=10_000)
    assert len(keys) == math.prod(len(items) for items in lists)
    # keys are distinct when the elements of each list are distinct
    if all(len(set(items)) == len(items) for items in lists):
        assert len(set(keys)) == len(keys)


@given(st.integers(1, 5), st.integers(1, 5))
def test_repeated_placeholder_fans_out_once_per_occurrence(n: int, m: int) -> None:
    values = {"a": [str(i) for i in range(n)], "b": [str(i) for i in range(m)]}
    assert len(parse_template("{a}-{b}-{a}").render(values)) == n * m * n
