"""``damestoilet asyncapi``: the AsyncAPI 3.0 document of a schema directory."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from damestoilet_contracts._errors import ContractError, SchemaError
from damestoilet_contracts.describe import asyncapi_document, parse_bus
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.runtime import DEFAULT_STREAM


class _Dumper(yaml.SafeDumper):
    """YAML without anchors (the document repeats a few objects on purpose), and multi-line
    text (a .proto file) as a literal block."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


@click.command("asyncapi")
@click.argument("schema_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--bus",
    "bus_urls",
    multiple=True,
    metavar="URL",
    help="A bus the events travel on (redis://, nats://, kafka://); repeat for several "
    "[default: redis://127.0.0.1:6379/0].",
)
@click.option(
    "--stream",
    default=DEFAULT_STREAM,
    show_default=True,
    help="The stream, subject or topic the events travel on.",
)
@click.option("--title", help="info.title [default: '<SCHEMA_DIR> invalidation events'].")
@click.option("--api-version", default="1.0.0", show_default=True, help="info.version.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="How to write the document.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document to this file instead of stdout.",
)
def asyncapi(
    schema_dir: Path,
    bus_urls: tuple[str, ...],
    stream: str,
    title: str | None,
    api_version: str,
    output_format: str,
    out: Path | None,
) -> None:
    """Write the AsyncAPI 3.0 document of SCHEMA_DIR's events.

    One message per event type, its payload the event's Avro schema or .proto text; per bus a
    server, a channel and two operations (services send, the coordinator receives); the flush
    rules, the compiled cascade stages and the flush graph as x-damestoilet-* extensions.
    Exit 0 when written, 1 when the schemas are wrong, 2 for a bad --bus.

    \b
    Examples:
      damestoilet asyncapi schemas > asyncapi.yaml
      damestoilet asyncapi schemas --bus redis://cache:6379/0 --bus kafka://broker:9092 \\
        --format json --out asyncapi.json
    """
    try:
        buses = [parse_bus(url, stream) for url in bus_urls or ("redis://127.0.0.1:6379/0",)]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bus") from exc
    try:
        contracts = load_linted(schema_dir)
        document = asyncapi_document(
            contracts,
            buses,
            title=title or f"{schema_dir.resolve().name} invalidation events",
            version=api_version,
        )
    except ContractError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{schema_dir}: fix these problems (damestoilet lint) first", err=True)
        raise SystemExit(1) from exc
    except (SchemaError, ValueError) as exc:
        click.echo(f"damestoilet asyncapi: {exc}", err=True)
        raise SystemExit(1) from exc
    if output_format == "json":
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"{out}: AsyncAPI {document['asyncapi']}, {len(contracts.events)} messages")
