"""``damestoilet emit``: plan and emit events of a schema directory from JSON, one or in bulk."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.cli._payload import payload_encoder
from damestoilet_contracts.cli._worker import resolve_signing
from damestoilet_contracts.compiler import compile_event, evaluate
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.model import DEFAULT_FANOUT_CAP
from damestoilet_contracts.model.json_form import payload_from_json
from damestoilet_contracts.runtime import DEFAULT_STREAM, Emitter, Envelope
from damestoilet_contracts.runtime._redact import redact

#: Events sent per pipeline when reading one JSON object per line.
_CHUNK = 1000
#: Bad payloads listed before the rest are only counted.
_SHOWN_ERRORS = 20


@click.command("emit")
@click.argument("schema_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("type_name", metavar="TYPE")
@click.option(
    "--json",
    "payload_text",
    required=True,
    metavar="JSON",
    help="The payload as a JSON object, or - to read one JSON object per line from stdin.",
)
@click.option("--redis", "redis_url", metavar="URL", help="The stream's Redis.")
@click.option(
    "--bus",
    "bus_url",
    metavar="URL",
    help="The bus instead: redis://, rediss://, nats:// (JetStream) or kafka:// "
    "[default: --redis].",
)
@click.option("--cluster", is_flag=True, help="--redis names a node of a Redis Cluster.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="Stream to append to.")
@click.option(
    "--source", default="//damestoilet/cli", show_default=True, help="CloudEvents source."
)
@click.option(
    "--maxlen",
    type=click.IntRange(min=0),
    default=1_000_000,
    show_default=True,
    help="Approximate cap of the stream's length; 0: no cap (trim with `damestoilet trim`).",
)
@click.option(
    "--cap",
    type=click.IntRange(min=1),
    default=DEFAULT_FANOUT_CAP,
    show_default=True,
    help="Most keys one event may fan out to.",
)
@click.option(
    "--signing-key-file",
    "signing_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sign every entry or message with this key (HMAC-SHA256) "
    "[default: $DAMESTOILET_SIGNING_KEY].",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not print the envelope ids.")
def emit(
    schema_dir: Path,
    type_name: str,
    payload_text: str,
    redis_url: str | None,
    bus_url: str | None,
    cluster: bool,
    stream: str,
    source: str,
    maxlen: int,
    cap: int,
    signing_key_file: Path | None,
    quiet: bool,
) -> None:
    """Emit TYPE events of SCHEMA_DIR onto the stream: each payload (in the JSON form that
    `damestoilet plan` and the generated from_dict() read) is checked, planned, encoded (Avro
    or Protobuf) and sent in an envelope; prints each envelope id.

    With --json - every line of stdin is one payload, sent in pipelines of 1000 (for manual
    purges and benchmarks). Every payload is checked before any is sent: a bad one (its line
    is named) sends nothing. Exit 1 with a message when a schema is wrong, the type unknown,
    a payload bad or the bus unreachable.

    \b
    Examples:
      damestoilet emit schemas catalog.v1.ProductPriceChanged --redis redis://127.0.0.1:6379/0 \\
        --json '{"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 5}'
      damestoilet emit schemas catalog.v1.CategoryRenamed --redis redis://127.0.0.1:6379/0 \\
        --json - < payloads.jsonl
      damestoilet emit schemas catalog.v1.CategoryRenamed --bus nats://127.0.0.1:4222 \\
        --json '{"category_id": "c1", "old_name": "Shoes", "new_name": "Footwear"}'
    """
    url = bus_url or redis_url
    if url is None:
        raise click.UsageError("give --redis URL or --bus URL")
    try:
        contracts = load_linted(schema_dir)
        event = contracts.events.get(type_name)
        if event is None:
            known = ", ".join(sorted(contracts.events)) or "none"
            raise DamestoiletError(
                f"unknown event type {type_name!r}; {schema_dir} defines: {known}"
            )
        spec = compile_event(event, contracts.graph)
        content_type, encode = payload_encoder(event, schema_dir)
    except DamestoiletError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc

    def envelope(payload: dict[str, Any]) -> Envelope:
        # The JSON form, checked whole, as `damestoilet plan` and the generated from_dict() do.
        typed = payload_from_json(event, payload)
        return Envelope.new(
            type=event.full_name,
            data=encode(typed),
            plan=evaluate(spec, event, typed, cap=cap),
            source=source,
            datacontenttype=content_type,
            dataschema=event.schema_fingerprint,
            rulesfingerprint=event.rules_fingerprint,
        )

    # Every payload is planned and encoded before the first is sent: one bad line sends nothing.
    envelopes: list[Envelope] = []
    bad: list[str] = []
    for number, text in _lines(payload_text):
        try:
            envelopes.append(envelope(_object(text)))
        except (DamestoiletError, ValueError) as exc:
            where = f"line {number}: " if payload_text == "-" else ""
            bad.append(f"{where}{exc}")
    if bad:
        for message in bad[:_SHOWN_ERRORS]:
            click.echo(message, err=True)
        if len(bad) > _SHOWN_ERRORS:
            click.echo(f"... and {len(bad) - _SHOWN_ERRORS} more bad payload(s)", err=True)
        click.echo(f"{len(bad)} bad payload(s); nothing was emitted", err=True)
        raise SystemExit(1)
    sent = 0
    try:
        with Emitter.from_url(
            url,
            source=source,
            stream=stream,
            maxlen=maxlen or None,
            cluster=cluster,
            signing=resolve_signing([signing_key_file] if signing_key_file else []),
        ) as emitter:
            for start in range(0, len(envelopes), _CHUNK):
                sent += _send(emitter, envelopes[start : start + _CHUNK], quiet)
    except (DamestoiletError, ValueError) as exc:
        click.echo(redact(f"cannot emit to {url}: {exc}; {sent} event(s) were emitted"), err=True)
        raise SystemExit(1) from exc
    if payload_text == "-":
        click.echo(f"emitted {sent} event(s) onto {stream}", err=True)


def _send(emitter: Emitter, chunk: list[Envelope], quiet: bool) -> int:
    ids = emitter.emit_envelopes(chunk)
    if not quiet:
        for event_id in ids:
            click.echo(event_id)
    return len(ids)


def _lines(payload_text: str) -> Iterator[tuple[int, str]]:
    if payload_text != "-":
        yield 1, payload_text
        return
    for number, line in enumerate(sys.stdin, start=1):
        if line.strip():
            yield number, line


def _object(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("a payload must be a JSON object (the event's fields by name)")
    return payload
