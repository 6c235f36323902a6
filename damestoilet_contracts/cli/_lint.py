"""``damestoilet lint``: every problem of a schema directory, one ``path:line: message`` a line."""

from __future__ import annotations

from pathlib import Path

import click

from damestoilet_contracts.lint import lint_directory


@click.command("lint")
@click.argument(
    "schema_dir", default="schemas", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def lint(schema_dir: Path) -> None:
    """Check every schema and the flush graph of SCHEMA_DIR (default: schemas).

    Prints each problem as `path:line: message`, sorted, on stdout, and nothing when the
    contracts are clean; warnings and notes say so (`path:line: warning: message`). Exit 0
    when there is no error (warnings and notes alone do not fail), 1 when there is one.

    \b
    Examples:
      damestoilet lint
      damestoilet lint path/to/schemas
    """
    problems = lint_directory(schema_dir)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(1 for p in problems if p.is_error)
    if errors:
        click.echo(f"{errors} problem{'s' if errors != 1 else ''} in {schema_dir}", err=True)
        raise SystemExit(1)
