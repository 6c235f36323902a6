"""``damestoilet breaking``: what a schema change breaks, against a directory or a git revision."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from damestoilet_contracts._errors import SchemaError

if TYPE_CHECKING:
    from damestoilet_contracts.lint import AvroMode


@click.command("breaking")
@click.argument(
    "schema_dir", default="schemas", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--against",
    required=True,
    metavar="REF_OR_DIR",
    help="The old version: a schema directory, or a git revision (branch, tag, commit).",
)
@click.option(
    "--avro-mode",
    type=click.Choice(["BACKWARD", "FORWARD", "FULL", "NONE"], case_sensitive=False),
    default="FULL",
    show_default=True,
    help="Avro reader/writer compatibility to require.",
)
def breaking(schema_dir: Path, against: str, avro_mode: str) -> None:
    """Report breaking changes of SCHEMA_DIR against an older version of it.

    Checks Avro reader/writer compatibility, Protobuf with `buf breaking`, and the flush rules
    themselves (which neither sees): a removed or narrowed rule is breaking, an added one is
    not. Exit 0 when nothing breaks, 1 with one `path:line: message` line per problem.

    \b
    Examples:
      damestoilet breaking schemas --against origin/main
      damestoilet breaking schemas --against ../released/schemas --avro-mode BACKWARD
    """
    from damestoilet_contracts.lint import check_breaking, checkout_schemas

    mode = cast("AvroMode", avro_mode.upper())
    try:
        with checkout_schemas(against, schema_dir) as old_root:
            problems = check_breaking(schema_dir, old_root, avro_mode=mode)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in problems:
        click.echo(str(problem))
    if problems:
        raise SystemExit(1)
