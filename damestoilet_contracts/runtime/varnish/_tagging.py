"""The read side of the Varnish target: the ``xkey`` header a service puts on a response, from
the same templates as the flush rules, so the contract, not hand-written strings, decides
which surrogate keys a page carries.

::

    tags = ResponseTags.from_graph(graph, "search.product", "assets.asset")
    response.headers["xkey"] = tags.header(product_id="p1", asset_id="a7")
    # xkey: search:product:p1 assets:asset:a7

A ``tag`` op of the flush plan renders the same strings, and :class:`VarnishPurgeTarget`
encodes both sides with :func:`surrogate_key`, so what a page is tagged with is what a purge
names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from damestoilet_contracts.model import FlushGraph, Template, parse_template

#: The response header the xkey vmod reads surrogate keys from.
XKEY_HEADER = "xkey"


def surrogate_key(tag: str) -> str:
    """``tag`` as one xkey surrogate key: whitespace, commas (xkey's separators), ``%``,
    control and non-ASCII characters percent-encoded (UTF-8), everything else as it is."""
    if tag.isascii() and tag.isprintable() and not any(c in tag for c in " ,%"):
        return tag  # the common case: nothing to encode
    out = []
    for c in tag:
        if c.isascii() and c.isprintable() and c not in " ,%":
            out.append(c)
        else:
            out.append("".join(f"%{b:02X}" for b in c.encode()))
    return "".join(out)


def xkey_header(tags: Iterable[str]) -> str:
    """The value of an ``xkey`` header carrying ``tags`` (each encoded, repeats dropped)."""
    return " ".join(dict.fromkeys(surrogate_key(t) for t in tags))


class ResponseTags:
    """Renders the surrogate keys of a response from key templates (those of flush-graph
    nodes, or of flush rules)."""

    def __init__(self, templates: Iterable[str | Template]) -> None:
        """Take the templates (``"search:product:{product_id}"``); raises TemplateError for a
        malformed one."""
        self.templates: tuple[Template, ...] = tuple(
            t if isinstance(t, Template) else parse_template(t) for t in templates
        )
        if not self.templates:
            raise ValueError("name at least one template")

    @classmethod
    def from_graph(cls, graph: FlushGraph, *nodes: str) -> ResponseTags:
        """The templates of the named ``nodes`` of a flush graph (``load_graph`` reads one);
        raises KeyError naming the nodes that it does not have."""
        missing = [n for n in nodes if n not in graph.nodes]
        if missing:
            known = ", ".join(sorted(graph.nodes))
            raise KeyError(
                f"no cache node {', '.join(missing)} in the flush graph (it has {known})"
            )
        return cls(graph.nodes[n].template for n in nodes)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the templates need, in order of appearance (dotted paths)."""
        seen = {p.dotted: None for t in self.templates for p in t.placeholders}
        return tuple(seen)

    def keys(self, values: Mapping[str, str | Sequence[str]] | None = None, **kw: str) -> list[str]:
        """Every surrogate key for ``values`` (dotted path -> value, or a list that fans
        out) and keyword values; raises EmptyValueError for a missing or empty value."""
        merged: dict[str, str | Sequence[str]] = {**(values or {}), **kw}
        out: dict[str, None] = {}
        for template in self.templates:
            for key in template.render(merged):
                out[key] = None
        return list(out)

    def header(self, values: Mapping[str, str | Sequence[str]] | None = None, **kw: str) -> str:
        """The ``xkey`` header value for these values (see :meth:`keys`)."""
        return xkey_header(self.keys(values, **kw))
