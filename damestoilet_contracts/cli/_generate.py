"""``damestoilet generate``: write, or check, the Python or TypeScript package of a schema dir."""

from __future__ import annotations

from pathlib import Path

import click

from damestoilet_contracts._errors import CodegenError, ContractError, SchemaError
from damestoilet_contracts.generator import (
    LANGS,
    check_npm_name,
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
    "--lang",
    type=click.Choice(LANGS),
    default="python",
    show_default=True,
    help="Language of the generated package.",
)
@click.option(
    "--package",
    default=None,
    help="Import name of the generated package (Python), or its npm name (ts); default: the "
    "name of the --out folder.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 listing the files that would be added, changed or removed.",
)
def generate(schema_dir: Path, out: Path, lang: str, package: str | None, check: bool) -> None:
    """Generate typed event classes and flush handlers from SCHEMA_DIR into --out.

    Python: one module per schema namespace, handlers.py (HANDLERS, EVENTS), the package
    __init__, and protoc's modules for Protobuf contracts. TypeScript (--lang ts): an ESM
    package (package.json, tsconfig.json, src/*.ts) with the same classes, the version-2
    envelope and a Redis Streams emitter; it needs Node and prettier (see docs/typescript.md).
    Output is byte-identical run after run; generated files are recognised by their header,
    other files in --out are left alone. Exit 0 when written or up to date, 1 when the schemas
    are wrong or (with --check) the output differs.

    \b
    Examples:
      damestoilet generate schemas --out codegen
      damestoilet generate schemas --out codegen --check
      damestoilet generate schemas --out src/shop/events --package shop.events
      damestoilet generate schemas --lang ts --out gen-ts --package shop-events
    """
    name = package if package is not None else out.resolve().name
    try:
        (check_npm_name if lang == "ts" else check_package_name)(name)
    except CodegenError as exc:
        raise click.BadParameter(str(exc), param_hint="--package") from exc
    try:
        files = generate_directory(
            schema_dir, package=name, lang="ts" if lang == "ts" else "python"
        )
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
            + (" --lang ts" if lang == "ts" else "")
            + (f" --package {package}" if package is not None else ""),
            err=True,
        )
        raise SystemExit(1)
    diff = write_output(files, out)
    counts = f"{len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed"
    click.echo(f"{out}: {len(files)} generated files ({counts})")
