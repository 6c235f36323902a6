"""Cross-language properties: TypeScript and Python generated from the same contracts agree.

For every reference contract and every golden case event, hypothesis draws valid events (and
envelope ids, times and sources) with the Python classes; one node process then decodes each
payload with the TypeScript classes, rebuilds the event (so its checks run), plans it and
encodes it again. Then, for every drawn event:

* the TypeScript plan equals the Python plan, the TypeScript handler's plan and the
  interpreter's plan of the TypeScript bytes;
* the TypeScript bytes decode in Python to the same event (and are the same bytes);
* the version-2 envelopes are byte-identical for the same id, time and source.

The events are drawn first and checked in one batch (one node start for all of them), so a
failure names the example but is not shrunk by hypothesis.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damestoilet_contracts.compiler import compile_event, evaluate
from damestoilet_contracts.runtime import Envelope
from damestoilet_contracts.runtime._envelope import format_time
from tests.fixtures_typescript import ts_schema_dirs
from tests.test_generator_properties import (
    CASES,
    ROOT,
    _contracts,
    _decoded,
    _import,
    _instances,
)
from tests.typescript import TESTS_NODE, node

EXAMPLES = 25
SOURCES = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8)
# A JavaScript object lists keys like "0" or "42" first, in numeric order, whatever the order
# they were added in; a map holding one among other keys may be written in another order.
_INDEX_KEY = re.compile(r"^(0|[1-9][0-9]{0,8})$")


def _python_package(ts_name: str) -> tuple[str, Path]:
    """(package, folder on sys.path) of the Python package generated from the same schemas."""
    if ts_name == "reference":
        return "codegen", ROOT
    expected = CASES / ts_name / "expected-codegen"
    found = [p for p in expected.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    return found[0].name, expected


def _cases() -> list[tuple[str, str]]:
    return [
        (ts_name, type_name)
        for ts_name, schemas in ts_schema_dirs().items()
        for type_name in sorted(_contracts(schemas).events)
    ]


def _has_index_like_map_keys(value: Any) -> bool:
    """Whether a map anywhere in ``value`` holds an index-like key beside other keys."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(
            _has_index_like_map_keys(getattr(value, f.name)) for f in dataclasses.fields(value)
        )
    if isinstance(value, Mapping):
        if len(value) > 1 and any(_INDEX_KEY.match(k) for k in value):
            return True
        return any(_has_index_like_map_keys(v) for v in value.values())
    if isinstance(value, tuple):
        return any(_has_index_like_map_keys(v) for v in value)
    return False


def _draw_examples(ts_name: str, type_name: str) -> list[dict[str, Any]]:
    """Events of ``type_name`` drawn by hypothesis, each with an envelope id, time, source."""
    package, base = _python_package(ts_name)
    module = _import(package, base)
    event_type = _contracts(ts_schema_dirs()[ts_name]).events[type_name]
    cls = module.EVENTS[type_name]
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(
        event=_instances(cls, event_type.format == "proto"),
        event_id=st.uuids(),
        ms=st.integers(0, 2**41),
        source=SOURCES,
    )
    def collect(event: Any, event_id: Any, ms: int, source: str) -> None:
        drawn.append({"event": event, "id": str(event_id), "ms": ms, "source": source})

    collect()
    return drawn


@pytest.fixture(scope="module")
def answers(ts_packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """(ts package, type, example, TypeScript's answer) for every drawn example, one node run."""
    batch: list[tuple[str, str, dict[str, Any]]] = []
    for ts_name, type_name in _cases():
        batch.extend(
            (ts_name, type_name, example) for example in _draw_examples(ts_name, type_name)
        )
    requests = [
        json.dumps(
            {
                "index": str(ts_packages[ts_name]),
                "type": type_name,
                "payload": base64.b64encode(example["event"].to_bytes()).decode(),
                "id": example["id"],
                "ms": example["ms"],
                "source": example["source"],
            }
        )
        for ts_name, type_name, example in batch
    ]
    out = node(
        TESTS_NODE / "harness.mjs", tmp_path_factory.mktemp("harness"), stdin="\n".join(requests)
    )
    # split on "\n" only: keys may hold U+2028 and the like, which splitlines() splits on
    replies = [json.loads(line) for line in out.split("\n") if line.strip()]
    assert len(replies) == len(batch)
    return [(*item, reply) for item, reply in zip(batch, replies, strict=True)]


def test_every_case_was_drawn_many_times(answers: list[Any]) -> None:
    per_case: dict[tuple[str, str], int] = {}
    for ts_name, type_name, _, _ in answers:
        per_case[(ts_name, type_name)] = per_case.get((ts_name, type_name), 0) + 1
    assert set(per_case) == set(_cases())
    assert min(per_case.values()) >= 10, per_case


def test_typescript_accepts_every_event_python_builds(answers: list[Any]) -> None:
    refused = [(t, ty, e["event"], r) for t, ty, e, r in answers if "error" in r]
    assert refused == []


def test_typescript_plan_equals_python_handler_and_interpreter_plans(answers: list[Any]) -> None:
    for ts_name, type_name, example, reply in answers:
        event = example["event"]
        contracts = _contracts(ts_schema_dirs()[ts_name])
        event_type = contracts.events[type_name]
        python_plan = event.flush_plan().to_dict()
        assert reply["plan"] == python_plan, (ts_name, event)
        assert reply["handler"] == python_plan, (ts_name, event)
        ts_bytes = base64.b64decode(reply["bytes"])
        spec = compile_event(event_type, contracts.graph)
        assert evaluate(spec, event_type, _decoded(event_type, ts_bytes)).to_dict() == python_plan


def test_typescript_bytes_decode_in_python_to_the_same_event(answers: list[Any]) -> None:
    for ts_name, type_name, example, reply in answers:
        event = example["event"]
        ts_bytes = base64.b64decode(reply["bytes"])
        assert type(event).from_bytes(ts_bytes) == event, (ts_name, type_name, event)
        if not _has_index_like_map_keys(event):
            assert ts_bytes == event.to_bytes(), (ts_name, type_name, event)


def test_envelopes_are_byte_identical_for_the_same_id_time_and_source(answers: list[Any]) -> None:
    compared = 0
    for ts_name, type_name, example, reply in answers:
        event = example["event"]
        if _has_index_like_map_keys(event):
            continue  # map order differs (docs/typescript.md, Limits); bytes decode the same
        python = Envelope(
            id=example["id"],
            source=example["source"],
            type=event.EVENT_TYPE,
            time=format_time(example["ms"]),
            datacontenttype=event.CONTENT_TYPE,
            dataschema=event.SCHEMA_FINGERPRINT,
            data=event.to_bytes(),
            plan=event.flush_plan(),
            rulesfingerprint=event.RULES_FINGERPRINT,
            partitionkey=event.partition_key(),
        ).to_bytes(version=2)
        assert base64.b64decode(reply["envelope"]) == python, (ts_name, type_name, example)
        compared += 1
    assert compared >= 0.9 * len(answers)
