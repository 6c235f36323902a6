"""The soft-purge windows of a worker command: ``--flush-graph FILE`` and ``--grace T=S``.

The coordinator never looks at the graph on its hot path; it reads the windows once, at
start, and hands them to its purge target.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _parse(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in value:
        name, sep, text = item.partition("=")
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not sep or not name or not seconds >= 0:
            raise click.BadParameter(f"{item!r}: write TARGET=SECONDS, e.g. pricing=10")
        out[name] = seconds
    return out


def grace_options(command: F) -> F:
    """Add ``--flush-graph`` and ``--grace`` to a click command (parameters ``flush_graph``
    and ``grace``); resolve them with :func:`resolve_grace`."""
    command = click.option(
        "--grace",
        multiple=True,
        metavar="TARGET=S",
        callback=_parse,
        help="Soft-purge window of a target in seconds (repeatable); wins over --flush-graph.",
    )(command)
    return click.option(
        "--flush-graph",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Read every target's grace_seconds from this flush-graph.yaml at start "
        "[default: 30 s for every target].",
    )(command)


def resolve_grace(flush_graph: Path | None, grace: dict[str, float]) -> dict[str, float]:
    """The windows of ``flush_graph`` (if given) overlaid with ``grace``.

    Raises :class:`click.ClickException` (exit 1) listing the graph's problems when it is wrong.
    """
    windows: dict[str, float] = {}
    if flush_graph is not None:
        from damestoilet_contracts.loaders import load_graph

        graph, problems = load_graph(flush_graph)
        if problems:
            listing = "\n".join(str(p) for p in sorted(problems))
            raise click.ClickException(f"{flush_graph} is not a valid flush graph:\n{listing}")
        windows.update(graph.grace)
    windows.update(grace)
    return windows
