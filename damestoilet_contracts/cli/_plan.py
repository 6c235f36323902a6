"""``damestoilet plan``: the flush plan one event payload compiles to, as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.compiler import plan_for
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.model import DEFAULT_FANOUT_CAP


@click.command("plan")
@click.argument("schema_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("type_name", metavar="TYPE")
@click.option(
    "--json",
    "payload_text",
    required=True,
    metavar="JSON",
    help="The event payload as a JSON object, or - to read it from stdin.",
)
@click.option(
    "--cap",
    type=click.IntRange(min=1),
    default=DEFAULT_FANOUT_CAP,
    show_default=True,
    help="Most keys one event may fan out to.",
)
@click.option("--indent", type=click.IntRange(min=0), help="Pretty-print with this indent.")
def plan(schema_dir: Path, type_name: str, payload_text: str, cap: int, indent: int | None) -> None:
    """Print the flush plan of one TYPE event of SCHEMA_DIR for a payload, as JSON.

    The payload is in the JSON form that `damestoilet emit` and the generated from_dict() read:
    nested objects for records, lists for repeated fields, enums by symbol, UUIDs as text,
    timestamps as RFC 3339 with an offset. Exit 1 with a message on stderr when a schema is
    wrong, the type is unknown, the JSON is bad, a field is unknown, missing, empty or of the
    wrong type, or the keys exceed --cap.

    \b
    Examples:
      damestoilet plan schemas catalog.v1.ProductPriceChanged \\
        --json '{"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 5}'
      damestoilet plan schemas orders.v1.OrderStatusChanged --json - < payload.json
    """
    text = sys.stdin.read() if payload_text == "-" else payload_text
    try:
        payload = json.loads(text)
    except ValueError as exc:
        click.echo(f"--json is not valid JSON: {exc}; pass one JSON object", err=True)
        raise SystemExit(1) from exc
    if not isinstance(payload, dict):
        click.echo("--json must be a JSON object (the event's fields by name)", err=True)
        raise SystemExit(1)
    try:
        result = plan_for(load_linted(schema_dir), type_name, payload, cap)
    except DamestoiletError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc
    click.echo(json.dumps(result.to_dict(), indent=indent))
