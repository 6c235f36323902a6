"""``damestoilet lint``: the problems of a schema directory, as text, JSON or GitHub annotations."""

from __future__ import annotations

import json
from pathlib import Path

import click

from damestoilet_contracts._errors import Problem
from damestoilet_contracts.lint import lint_directory


@click.command("lint")
@click.argument(
    "schema_dir", default="schemas", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: `path:line: message`; json: one array of objects; github: workflow commands "
    "that annotate the lines in a pull request (like buf's --error-format).",
)
def lint(schema_dir: Path, output_format: str) -> None:
    """Check every schema and the flush graph of SCHEMA_DIR (default: schemas).

    Prints each problem, sorted, on stdout, and nothing (text, github) or [] (json) when the
    contracts are clean; warnings and notes say so (`path:line: warning: message`). Exit 0
    when there is no error (warnings and notes alone do not fail), 1 when there is one.

    \b
    Examples:
      damestoilet lint
      damestoilet lint path/to/schemas --format json
      damestoilet lint schemas --format github     # in a GitHub Actions step
    """
    problems = lint_directory(schema_dir)
    if output_format == "json":
        click.echo(json.dumps([_as_dict(p) for p in problems], indent=2))
    else:
        for problem in problems:
            click.echo(_github(problem) if output_format == "github" else str(problem))
    errors = sum(1 for p in problems if p.is_error)
    if errors:
        click.echo(f"{errors} problem{'s' if errors != 1 else ''} in {schema_dir}", err=True)
        raise SystemExit(1)


_GITHUB_COMMANDS = {"error": "error", "warning": "warning", "note": "notice"}


def _as_dict(problem: Problem) -> dict[str, object]:
    where = problem.location
    return {
        "path": where.path,
        "line": where.line,
        "column": where.column,
        "severity": problem.severity,
        "message": problem.message,
    }


def _github(problem: Problem) -> str:
    """A GitHub Actions workflow command (``::error``, ``::warning``, ``::notice``), escaped
    as the runner expects."""
    where = problem.location
    properties = [f"file={_property(where.path)}", f"line={where.line}"]
    if where.column:
        properties.append(f"col={where.column}")
    properties.append("title=damestoilet lint")
    command = _GITHUB_COMMANDS.get(problem.severity, "error")
    return f"::{command} {','.join(properties)}::{_data(problem.message)}"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
