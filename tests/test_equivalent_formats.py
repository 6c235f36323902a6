"""The same event written in Avro and in Protobuf gives the same plan (tests/cases/equivalent/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damestoilet_contracts.compiler import plan_for
from damestoilet_contracts.loaders import load_contracts
from damestoilet_contracts.model import ContractSet, Kind, Plan

CASE = Path(__file__).resolve().parent / "cases" / "equivalent"
TYPE = "catalog.v1.ProductPriceChanged"


@pytest.fixture(scope="module")
def both() -> tuple[ContractSet, ContractSet]:
    return load_contracts(CASE / "avro" / "schemas"), load_contracts(CASE / "proto" / "schemas")


def _outcome(contracts: ContractSet, payload: dict[str, Any]) -> Plan | str:
    """The plan, or the kind of error, so that a payload both formats refuse compares equal."""
    try:
        return plan_for(contracts, TYPE, payload)
    except Exception as exc:  # both formats must refuse the same payloads, for the same reason
        return type(exc).__name__


def test_both_formats_define_the_event_with_the_same_fields_and_rules(
    both: tuple[ContractSet, ContractSet],
) -> None:
    avro, proto = (c.events[TYPE] for c in both)
    assert (avro.format, proto.format) == ("avro", "proto")
    assert [(f.name, f.type.describe()) for f in avro.fields] == [
        (f.name, f.type.describe()) for f in proto.fields
    ]
    assert [r.describe() for r in avro.rules] == [r.describe() for r in proto.rules]
    assert avro.rules_fingerprint == proto.rules_fingerprint
    assert proto.fields[3].type.kind is Kind.INT  # int64 and Avro long are one kind


def test_both_formats_give_the_expected_plan_for_the_sample_payload(
    both: tuple[ContractSet, ContractSet],
) -> None:
    payload = json.loads((CASE / "plan-input.json").read_text())["payload"]
    expected = json.loads((CASE / "expected-plan.json").read_text())
    avro, proto = (plan_for(c, TYPE, payload) for c in both)
    assert avro == proto
    assert proto.to_dict() == expected
    assert len(proto.stages) == 3


_segment = st.text(alphabet="abcxyz019-_*?[", min_size=0, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    product_id=_segment,
    store_ids=st.lists(_segment, max_size=4),
    category_id=_segment,
    price_cents=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    drop=st.sampled_from([None, "product_id", "store_ids", "category_id"]),
)
def test_both_formats_plan_or_refuse_every_payload_alike(
    both: tuple[ContractSet, ContractSet],
    product_id: str,
    store_ids: list[str],
    category_id: str,
    price_cents: int,
    drop: str | None,
) -> None:
    payload: dict[str, Any] = {
        "product_id": product_id,
        "store_ids": store_ids,
        "category_id": category_id,
        "price_cents": price_cents,
    }
    if drop is not None:
        del payload[drop]
    avro, proto = (_outcome(c, payload) for c in both)
    assert avro == proto
