"""Properties of the generated code, for every reference contract and every golden case event.

For any valid event built from the generated class: the plan the emitter computes
(``flush_plan()``) equals the plan the generated handler computes from the encoded bytes; the
bytes decode back to an equal event; and both equal what the interpreter
(:func:`damestoilet_contracts.compiler.evaluate`) renders from the same bytes decoded without
the generated code (fastavro with the schema, protobuf's ``MessageToDict``). The JSON form
round-trips (``from_dict(to_dict())``, ``from_json(to_json())``), and what ``damestoilet plan``
and ``damestoilet emit`` make of ``to_dict()`` without the generated code is the same plan and
the same bytes. And the event of tests/cases/equivalent, generated once from Avro and once
from Protobuf, plans the same.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import importlib
import io
import json
import sys
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from damestoilet_contracts import EmptyValueError
from damestoilet_contracts.cli._payload import payload_encoder
from damestoilet_contracts.compiler import compile_event, evaluate, plan_for
from damestoilet_contracts.generator import generate_directory, write_output
from damestoilet_contracts.loaders import load_contracts
from damestoilet_contracts.model import ContractSet, EventType, Kind
from damestoilet_contracts.model.json_form import payload_from_json, payload_to_json

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6)
MOMENTS = st.datetimes(
    min_value=datetime.datetime(1970, 1, 1),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(datetime.UTC),
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


def _packages() -> list[tuple[str, Path, Path]]:
    """(package, schema dir, folder to put on sys.path) of codegen/ and each golden case."""
    found = [("codegen", ROOT / "schemas", ROOT)]
    for case in sorted(CASES.glob("codegen-*")):
        for package in sorted((case / "expected-codegen").iterdir()):
            if package.is_dir() and not package.name.startswith((".", "__")):
                found.append((package.name, case / "schemas", package.parent))
    return found


_CONTRACTS: dict[Path, ContractSet] = {}


def _contracts(schema_dir: Path) -> ContractSet:
    if schema_dir not in _CONTRACTS:
        _CONTRACTS[schema_dir] = load_contracts(schema_dir)
    return _CONTRACTS[schema_dir]


def _cases() -> list[Any]:
    params = []
    for package, schema_dir, base in _packages():
        for type_name in sorted(_contracts(schema_dir).events):
            params.append(
                pytest.param(package, schema_dir, base, type_name, id=f"{package}:{type_name}")
            )
    return params


def _import(package: str, base: Path) -> types.ModuleType:
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    return importlib.import_module(package)


def _values(hint: Any, proto: bool) -> st.SearchStrategy[Any]:
    """Valid values of a generated field annotation (already resolved to real types)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.one_of(st.none(), *(_values(a, proto) for a in inner))
    if origin is tuple or origin is Sequence:
        return st.lists(_values(typing.get_args(hint)[0], proto), max_size=3).map(tuple)
    if origin is Mapping:
        return st.dictionaries(TEXT, _values(typing.get_args(hint)[1], proto), max_size=3)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: TEXT,
        # Protobuf's unsigned fields refuse negatives; Avro's int and long take both.
        int: st.integers(0, 2**31 - 1) if proto else st.integers(-(2**31), 2**31 - 1),
        bool: st.booleans(),
        float: st.floats(width=32, allow_nan=False, allow_infinity=False),
        bytes: st.binary(max_size=6),
        uuid.UUID: st.uuids(),
        datetime.datetime: MOMENTS,
        datetime.date: st.dates(datetime.date(1970, 1, 1), datetime.date(2100, 1, 1)),
        decimal.Decimal: st.decimals(-(10**6), 10**6, places=2, allow_nan=False),
    }
    if hint in simple:
        return simple[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if dataclasses.is_dataclass(hint):
        return _instances(hint, proto)
    raise AssertionError(f"no strategy for {hint!r}")


def _instances(cls: Any, proto: bool) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _values(hints[f.name], proto) for f in dataclasses.fields(cls)}

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kwargs = draw(st.fixed_dictionaries(fields))
        try:
            return cls(**kwargs)
        except EmptyValueError:
            # A field an if_absent=error rule needs was drawn as None: not a valid event.
            assume(False)

    return build()


def _decoded(event_type: EventType, payload: bytes) -> dict[str, Any]:
    """The payload decoded without the generated code, in the interpreter's JSON shape."""
    if event_type.format == "avro":
        schema = fastavro.parse_schema(json.loads(event_type.source))
        datum = fastavro.schemaless_reader(io.BytesIO(payload), schema, None)
        assert isinstance(datum, dict)
        return datum
    descriptor = descriptor_pool.Default().FindMessageTypeByName(event_type.full_name)
    message = message_factory.GetMessageClass(descriptor).FromString(payload)
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@pytest.mark.parametrize(("package", "schema_dir", "base", "type_name"), _cases())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_emitter_plan_equals_handler_and_interpreter_plans_and_bytes_round_trip(
    package: str, schema_dir: Path, base: Path, type_name: str, data: st.DataObject
) -> None:
    module = _import(package, base)
    contracts = _contracts(schema_dir)
    event_type = contracts.events[type_name]
    cls = module.EVENTS[type_name]
    event = data.draw(_instances(cls, event_type.format == "proto"), label="event")

    plan = event.flush_plan()
    payload = event.to_bytes()

    assert module.HANDLERS[type_name](payload) == plan
    assert cls.from_bytes(payload) == event
    spec = compile_event(event_type, contracts.graph)
    assert evaluate(spec, event_type, _decoded(event_type, payload)) == plan


@pytest.mark.parametrize(("package", "schema_dir", "base", "type_name"), _cases())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_the_json_form_round_trips_and_plan_and_emit_read_it_as_the_class_does(
    package: str, schema_dir: Path, base: Path, type_name: str, data: st.DataObject
) -> None:
    module = _import(package, base)
    contracts = _contracts(schema_dir)
    event_type = contracts.events[type_name]
    cls = module.EVENTS[type_name]
    event = data.draw(_instances(cls, event_type.format == "proto"), label="event")

    as_dict = event.to_dict()
    assert cls.from_dict(as_dict) == event
    assert cls.from_json(event.to_json()) == event
    assert json.loads(event.to_json()) == json.loads(json.dumps(as_dict))

    # What plan and emit do with the same payload, from the schemas alone.
    parsed = json.loads(event.to_json())
    assert plan_for(contracts, type_name, parsed) == event.flush_plan()
    typed = payload_from_json(event_type, parsed)
    assert payload_to_json(event_type, typed) == as_dict
    _content_type, encode = payload_encoder(event_type, schema_dir)
    assert cls.from_bytes(encode(typed)) == event


def _string_fields_in_templates(contracts: ContractSet, event_type: EventType) -> list[int]:
    """Indexes of the event's required top-level string fields that a template names."""
    spec = compile_event(event_type, contracts.graph)
    named = {p.path[0] for op in spec.ops for p in op.template.placeholders if len(p.path) == 1}
    return [
        index
        for index, field in enumerate(event_type.fields)
        if field.name in named and field.type.kind is Kind.STRING and not field.type.nullable
    ]


@pytest.mark.parametrize(("package", "schema_dir", "base", "type_name"), _cases())
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_an_empty_template_value_is_refused_by_the_class_as_by_the_interpreter(
    package: str, schema_dir: Path, base: Path, type_name: str, data: st.DataObject
) -> None:
    module = _import(package, base)
    contracts = _contracts(schema_dir)
    event_type = contracts.events[type_name]
    indexes = _string_fields_in_templates(contracts, event_type)
    if not indexes:
        return  # no template names a required string field of this event
    cls = module.EVENTS[type_name]
    event = data.draw(_instances(cls, event_type.format == "proto"), label="event")
    index = data.draw(st.sampled_from(indexes), label="field")
    name = event_type.fields[index].name
    attr = dataclasses.fields(cls)[index].name

    payload = _decoded(event_type, event.to_bytes())
    payload[name] = ""
    with pytest.raises(EmptyValueError, match=repr(name)):
        evaluate(compile_event(event_type, contracts.graph), event_type, payload)
    with pytest.raises(EmptyValueError, match=repr(name)):
        dataclasses.replace(event, **{attr: ""})


@pytest.fixture(scope="module")
def equivalent_classes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """ProductPriceChanged generated from tests/cases/equivalent/avro and .../proto."""
    base = tmp_path_factory.mktemp("equivalent")
    classes = []
    for variant in ("avro", "proto"):
        package = f"equivalent_{variant}"
        files = generate_directory(CASES / "equivalent" / variant / "schemas", package=package)
        write_output(files, base / package)
        classes.append(_import(package, base).ProductPriceChanged)
    return classes[0], classes[1]


@settings(max_examples=60, deadline=None)
@given(
    product_id=TEXT,
    store_ids=st.lists(TEXT, max_size=4).map(tuple),
    category_id=TEXT,
    price_cents=st.integers(-(2**63), 2**63 - 1),
)
def test_the_same_event_generated_from_avro_and_protobuf_plans_the_same(
    equivalent_classes: tuple[Any, Any],
    product_id: str,
    store_ids: tuple[str, ...],
    category_id: str,
    price_cents: int,
) -> None:
    avro_cls, proto_cls = equivalent_classes
    values = {
        "product_id": product_id,
        "store_ids": store_ids,
        "category_id": category_id,
        "price_cents": price_cents,
    }
    avro, proto = avro_cls(**values), proto_cls(**values)
    assert avro.flush_plan() == proto.flush_plan()
    assert avro_cls.EVENT_TYPE == proto_cls.EVENT_TYPE
    assert avro_cls.RULES_FINGERPRINT == proto_cls.RULES_FINGERPRINT
    assert (avro_cls.CONTENT_TYPE, proto_cls.CONTENT_TYPE) == (
        "avro/binary",
        "application/x-protobuf",
    )
