"""``damestoilet graph``: a picture of the flush graph, as dot, Mermaid or PNG."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from damestoilet_contracts._errors import ContractError
from damestoilet_contracts.describe import flush_picture
from damestoilet_contracts.lint import load_linted


@click.command("graph")
@click.argument("schema_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["dot", "mermaid", "png"]),
    default="dot",
    show_default=True,
    help="Graphviz source, a Mermaid flowchart, or a PNG rendered by Graphviz's dot.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout (needed for png on a terminal).",
)
def graph(schema_dir: Path, output_format: str, out: Path | None) -> None:
    """Draw the flush graph of SCHEMA_DIR: events, what each purges, cascades, targets.

    Read left to right: an event points at what its rules purge in stage 1 (cache nodes,
    rule templates), a cache node at the nodes derived from it (purged one stage later),
    each of them (dashed) at its target. PNG needs Graphviz's dot on PATH. Exit 0 when
    written, 1 when the schemas are wrong or dot fails, 2 usage.

    \b
    Examples:
      damestoilet graph schemas > flush.dot
      damestoilet graph schemas --format mermaid
      damestoilet graph schemas --format png --out docs/flush-graph.png
    """
    try:
        picture = flush_picture(load_linted(schema_dir))
    except ContractError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{schema_dir}: fix these problems (damestoilet lint) first", err=True)
        raise SystemExit(1) from exc
    if output_format != "png":
        text = picture.to_dot() if output_format == "dot" else picture.to_mermaid()
        if out is None:
            click.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
        return
    if out is None and sys.stdout.isatty():
        raise click.UsageError("a PNG is not for a terminal: pass --out FILE or redirect stdout")
    png = _render_png(picture.to_dot())
    if out is None:
        click.get_binary_stream("stdout").write(png)
    else:
        out.write_bytes(png)
        click.echo(f"{out}: {len(png)} bytes")


def _render_png(dot_source: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        click.echo(
            "damestoilet graph: --format png needs Graphviz's dot (apt-get install graphviz, "
            "brew install graphviz); --format dot or mermaid need nothing",
            err=True,
        )
        raise SystemExit(1)
    done = subprocess.run(
        [dot, "-Tpng", "-Gdpi=72"], input=dot_source.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        click.echo(f"damestoilet graph: dot failed ({done.returncode}): {message}", err=True)
        raise SystemExit(1)
    return done.stdout
