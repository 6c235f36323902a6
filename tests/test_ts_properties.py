"""Cross-language properties: TypeScript and Python generated from the same contracts agree.

For every reference contract and every golden case event, hypothesis draws valid events (and
envelope ids, times and sources) with the Python classes; one node process then decodes each
payload with the TypeScript classes, rebuilds the event (so its checks run), plans it and
encodes it again. Then, for every drawn event:

* the TypeScript plan equals the Python plan, the TypeScript handler's plan and the
  interpreter's plan of the TypeScript bytes;
* the TypeScript bytes decode in Python to the same event (and are the same bytes);
* the version-2 envelopes are byte-identical for the same id, time and source;
* the JSON form (docs/typescript.md, "The JSON form"): TypeScript's fromJson() of Python's
  to_json() gives Python's bytes, its toDict() (as toJson()) is Python's to_dict(), keys in
  schema order, and fromJson(toJson()) and fromDict(toDict()) give the event back.

A table of bad payloads (those of tests/test_json_form.py and a few more) is refused by
TypeScript's fromDict() and fromJson() with the PayloadError message Python gives.

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

from damestoilet_contracts import PayloadError
from damestoilet_contracts.compiler import compile_event, evaluate
from damestoilet_contracts.model import json_form
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
def batch() -> list[tuple[str, str, dict[str, Any]]]:
    """(ts package, type, example) for every drawn example of every case."""
    drawn: list[tuple[str, str, dict[str, Any]]] = []
    for ts_name, type_name in _cases():
        drawn.extend(
            (ts_name, type_name, example) for example in _draw_examples(ts_name, type_name)
        )
    return drawn


def _node_lines(script: str, requests: list[str], folder: Path) -> list[Any]:
    out = node(TESTS_NODE / script, folder, stdin="\n".join(requests))
    # split on "\n" only: keys may hold U+2028 and the like, which splitlines() splits on
    replies = [json.loads(line) for line in out.split("\n") if line.strip()]
    assert len(replies) == len(requests)
    return replies


@pytest.fixture(scope="module")
def answers(
    ts_packages: dict[str, Path],
    batch: list[tuple[str, str, dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Any]:
    """(ts package, type, example, TypeScript's answer) for every drawn example, one node run."""
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
    replies = _node_lines("harness.mjs", requests, tmp_path_factory.mktemp("harness"))
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


# -- the JSON form ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def json_answers(
    ts_packages: dict[str, Path],
    batch: list[tuple[str, str, dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Any]:
    """(ts package, type, example, TypeScript's JSON-form answer) for every drawn example."""
    requests = [
        json.dumps(
            {
                "index": str(ts_packages[ts_name]),
                "type": type_name,
                "json": example["event"].to_json(),
                "payload": base64.b64encode(example["event"].to_bytes()).decode(),
            }
        )
        for ts_name, type_name, example in batch
    ]
    replies = _node_lines("json_form.mjs", requests, tmp_path_factory.mktemp("json-form"))
    return [(*item, reply) for item, reply in zip(batch, replies, strict=True)]


def test_typescript_from_json_of_python_to_json_gives_python_bytes(json_answers: list[Any]) -> None:
    for ts_name, type_name, example, reply in json_answers:
        event = example["event"]
        assert "error" not in reply, (ts_name, type_name, event, reply)
        ts_bytes = base64.b64decode(reply["bytes"])
        assert type(event).from_bytes(ts_bytes) == event, (ts_name, type_name, event)
        if not _has_index_like_map_keys(event):
            assert ts_bytes == event.to_bytes(), (ts_name, type_name, event)


def test_typescript_to_dict_is_python_to_dict_in_schema_order(json_answers: list[Any]) -> None:
    for ts_name, type_name, example, reply in json_answers:
        # The event as both languages decode it from the same bytes (a decimal -0.00 is 0.00).
        python = type(example["event"]).from_bytes(example["event"].to_bytes()).to_dict()
        assert json.loads(reply["toJson"]) == json.loads(json.dumps(python)), (ts_name, python)
        assert reply["keys"] == list(python), (ts_name, type_name)


def test_typescript_json_form_round_trips(json_answers: list[Any]) -> None:
    for ts_name, type_name, example, reply in json_answers:
        event = example["event"]
        for again in (reply["again"], reply["dictAgain"]):
            assert type(event).from_bytes(base64.b64decode(again)) == event, (ts_name, event)
        assert reply["again"] == reply["bytes"], (ts_name, type_name, event)


_PRICE = {"product_id": "p1", "store_ids": ["s1", "s2"], "category_id": "c1", "price_cents": 1299}
_USER = {
    "user_id": "6f1c2b7e-0d4a-4e0b-9b7a-2f4d1c3e5a60",
    "email": None,
    "locale": "nl",
    "address": {"country": "NL", "city": "Utrecht"},
}
_STOCK = {"product_id": "p", "warehouse_id": "w", "quantity": 3}
_PAYMENT = {
    "payment_id": "6F1C2B7E-0D4A-4E0B-9B7A-2F4D1C3E5A60",
    "captured_at": "2026-01-02T03:04:05.123Z",
    "settled_at": "2026-01-02T03:04:05.123Z",
    "value_date": "2026-01-02",
    "amount": "12.30",
    "refund_of": None,
}
_SNAPSHOT = {"snapshot_id": "s", "counts": {"a": 1}, "labels": {}, "slots": {}, "reserved": None}
_PRICE_TYPE = "catalog.v1.ProductPriceChanged"
_LOGICAL = ("codegen-logical", "golden.logical.v1.PaymentCaptured")
_MAP = ("codegen-map", "golden.maps.v1.InventorySnapshot")


def _bad(text: str, package: str = "reference", type_name: str = _PRICE_TYPE) -> Any:
    return pytest.param(package, type_name, text, id=text[:40])


def _bad_price(**changes: Any) -> Any:
    return _bad(json.dumps({**_PRICE, **changes}))


REFUSED = [
    _bad_price(price_cent=5),
    _bad_price(zz=1, price_cent=5, aa=2, Product_id="x"),
    _bad(json.dumps({k: v for k, v in _PRICE.items() if k != "category_id"})),
    _bad(json.dumps({})),
    _bad_price(price_cents=None),
    _bad_price(store_ids="s1"),
    _bad_price(store_ids=["s1", 2]),
    _bad_price(store_ids=["s1", None]),
    _bad_price(store_ids=["s1", {"a": [1, True, None, 1.5, "it's"]}]),
    _bad_price(price_cents="x" * 80),
    _bad_price(price_cents="\u00e9" * 70),
    _bad_price(category_id=1e-7),
    _bad_price(category_id=1.5e300),
    _bad_price(price_cents='say "hi"\n\t\x7f\u00e9\u200b\U0001f600\\'),
    _bad_price(price_cents="it's"),
    _bad_price(price_cents=2**63),
    _bad_price(price_cents=-(2**63) - 1),
    *(_bad_price(price_cents=bad) for bad in ("1.0", " 1", "+1", "1e3", 1.5, True, [])),
    _bad(json.dumps({"__proto__": 1, **_PRICE})),
    _bad("[1]"),
    _bad('"text"'),
    _bad("null"),
    *(_bad(text) for text in ("{", "", "[1,", '{"a" 1}', '{"a": 1,}', "[1] x", '"abc', "{'a': 1}")),
    *(_bad(text) for text in ('["\\x"]', '"\\u12"', '"a\tb"', "[-]", "01", "\ufeff{}", " \n ")),
    _bad('{"product_id": "p\\q"}'),
    _bad('{\n  "product_id": "p",\n  "store_ids": [1 2]}'),
    _bad(
        json.dumps({"order_id": "o", "customer_id": "c", "status": 2}),
        type_name="orders.v1.OrderStatusChanged",
    ),
    _bad(
        json.dumps({"order_id": "o", "customer_id": "c", "status": "PAID"}),
        type_name="orders.v1.OrderStatusChanged",
    ),
    *(
        _bad(json.dumps({**_USER, "address": address}), type_name="users.v1.UserProfileUpdated")
        for address in (
            {"country": "NL", "city": 7},
            {"country": "NL", "city": "U", "town": "U"},
            {"city": "U"},
            "Utrecht",
        )
    ),
    *(
        _bad(json.dumps({**_STOCK, "changed_at": bad}), type_name="catalog.v1.ProductStockChanged")
        for bad in (
            "2026-01-02T03:04:05",
            1767323045,
            "2026-02-30T03:04:05Z",
            "2026-01-02",
            "2026-01-02T03:04:05+23:60",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:04:60Z",
        )
    ),
    *(
        _bad(json.dumps({**_PAYMENT, field: bad}), *_LOGICAL)
        for field, bad in [
            ("amount", 12.3),
            ("amount", "NaN"),
            ("amount", "1e3"),
            ("value_date", "2026-01-02T00:00:00Z"),
            ("value_date", "2026-13-01"),
            ("payment_id", "urn:uuid:6f1c2b7e-0d4a-4e0b-9b7a-2f4d1c3e5a60"),
            ("captured_at", "2026-01-02 03:04:05+25:00"),
            ("refund_of", 5),
        ]
    ),
    *(
        _bad(json.dumps({**_SNAPSHOT, **changes}), *_MAP)
        for changes in (
            {"counts": {"eur": "x"}},
            {"counts": [1]},
            {"slots": {"a1": {"aisle": "a", "shelf": 2**40}}},
            {"slots": {"a1": {"aisle": "a", "shelve": 1}}},
            {"reserved": {"it's": 1.5}},
        )
    ),
]


@pytest.fixture(scope="module")
def refusals(ts_packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """TypeScript's refusals of every REFUSED payload, one node run."""
    requests = [
        json.dumps(
            {"index": str(ts_packages[p.values[0]]), "type": p.values[1], "refuse": p.values[2]}
        )
        for p in REFUSED
    ]
    return _node_lines("json_form.mjs", requests, tmp_path_factory.mktemp("refusals"))


@pytest.mark.parametrize(("ts_name", "type_name", "text"), REFUSED)
def test_typescript_refuses_a_bad_payload_with_the_python_message(
    ts_name: str, type_name: str, text: str, refusals: list[Any]
) -> None:
    package, base = _python_package(ts_name)
    cls = _import(package, base).EVENTS[type_name]
    with pytest.raises(PayloadError) as caught:
        cls.from_json(text)
    reply = refusals[[p.values[2] for p in REFUSED].index(text)]
    expected = f"PayloadError: {caught.value}"
    assert reply["fromJson"] == expected
    if not expected.startswith(f"PayloadError: event {type_name}: not valid JSON"):
        assert reply["fromDict"] == expected


ACCEPTED = [
    pytest.param("reference", _PRICE_TYPE, json.dumps({**_PRICE, **changes}), id=str(changes))
    for changes in (
        {"price_cents": "-12"},
        {"price_cents": 2**62 + 1},
        {"price_cents": -(2**63)},
        {"price_cents": "9223372036854775807"},
        {"store_ids": []},
    )
] + [
    pytest.param(
        "reference",
        _PRICE_TYPE,
        '{"product_id":"p","product_id":"q","store_ids":[],"category_id":"c","price_cents":1}',
        id="repeated-key",
    ),
    pytest.param(
        "reference",
        "catalog.v1.ProductStockChanged",
        json.dumps({**_STOCK, "changed_at": "2026-01-02 03:04:05.5-02:30"}),
        id="offset",
    ),
    pytest.param(
        "reference",
        "catalog.v1.ProductStockChanged",
        json.dumps({**_STOCK, "changed_at": "2026-01-02T03:04:05.120+02:60"}),
        id="offset-of-60-minutes",
    ),
    pytest.param(*_LOGICAL, json.dumps(_PAYMENT), id="logical"),
    pytest.param(*_MAP, json.dumps({**_SNAPSHOT, "counts": {"b": 2**40, "a": -1}}), id="map"),
]


@pytest.mark.parametrize(("ts_name", "type_name", "text"), ACCEPTED)
def test_typescript_reads_the_json_python_reads_to_the_same_bytes(
    ts_name: str, type_name: str, text: str, ts_packages: dict[str, Path], tmp_path: Path
) -> None:
    package, base = _python_package(ts_name)
    event = _import(package, base).EVENTS[type_name].from_json(text)
    request = {
        "index": str(ts_packages[ts_name]),
        "type": type_name,
        "json": text,
        "payload": base64.b64encode(event.to_bytes()).decode(),
    }
    [reply] = _node_lines("json_form.mjs", [json.dumps(request)], tmp_path)
    assert base64.b64decode(reply["bytes"]) == event.to_bytes()
    assert json.loads(reply["toJson"]) == event.to_dict()


BASE64 = [
    "",
    "QQ==",
    "QQ",
    "QQ=",
    "QUI=",
    "QUJD",
    "QUJD=",
    "QUJD==",
    "Q",
    "QR==",
    "Q===",
    "a b=",
    "-_8=",
]


def test_base64_is_read_as_python_reads_it(ts_packages: dict[str, Path], tmp_path: Path) -> None:
    """No reference contract has a bytes field, so the runtime's coercer is held alone."""
    index = str(ts_packages["reference"])
    requests = [json.dumps({"index": index, "bytes": text}) for text in BASE64]
    for text, reply in zip(BASE64, _node_lines("json_form.mjs", requests, tmp_path), strict=True):
        try:
            expected = {
                "bytes": json_form.dump_bytes(json_form.binary(text, json_form.At("test", "f")))
            }
        except PayloadError as exc:
            expected = {"error": "PayloadError", "message": str(exc)}
        assert reply == expected, text
