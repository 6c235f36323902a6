"""``damestoilet generate``: write, or check, the Python package generated from a schema folder."""

from __future__ import annotations

from pathlib import Path

import click

from damestoilet_contracts._errors import CodegenError, ContractError, SchemaError
from damestoilet_contracts.generator import (
    check_package_name,
    diff_output,
    generate_directory,
    write_output,
)


@click.command("generate")
@click.argument("schema_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the generated package (created if missing).",
)
@click.option(
    "--package",
    default=None,
    help="Import name of the generated package (default: the name of the --out folder).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 listing the files that would be added, changed or removed.",
)
def generate(schema_dir: Path, out: Path, package: str | None, check: bool) -> None:
    """Generate typed event classes and flush handlers from SCHEMA_DIR into --out.

    One module per schema namespace, handlers.py (HANDLERS, EVENTS), the package __init__, and
    protoc's modules for Protobuf contracts. Output is byte-identical run after run; generated
    files are recognised by their header, other files in --out are left alone. Exit 0 when
    written or up to date, 1 when the schemas are wrong or (with --check) the output differs.

    \b
    Examples:
      damestoilet generate schemas --out codegen
      damestoilet generate schemas --out codegen --check
      damestoilet generate schemas --out src/shop/events --package shop.events
    """
    name = package if package is not None else out.resolve().name
    try:
        check_package_name(name)
    except CodegenError as exc:
        raise click.BadParameter(str(exc), param_hint="--package") from exc
    try:
        files = generate_directory(schema_dir, package=name)
    except ContractError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{schema_dir}: fix these problems (damestoilet lint) first", err=True)
        raise SystemExit(1) from exc
    except (SchemaError, CodegenError) as exc:
        click.echo(f"damestoilet generate: {exc}", err=True)
        raise SystemExit(1) from exc
    if check:
        diff = diff_output(files, out)
        if diff.clean:
            click.echo(f"{out}: up to date ({len(files)} generated files)")
            return
        for line in diff.lines():
            what, _, path = line.partition(": ")
            click.echo(f"{what}: {(out / path).as_posix()}")
        click.echo(
            f"{out} is out of date; run: damestoilet generate {schema_dir} --out {out}"
            + (f" --package {package}" if package is not None else ""),
            err=True,
        )
        raise SystemExit(1)
    diff = write_output(files, out)
    counts = f"{len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed"
    click.echo(f"{out}: {len(files)} generated files ({counts})")
