"""The JSON form of payloads (docs/codegen.md, "The JSON form"): the generated ``from_dict()`` and
``from_json()``, ``damestoilet plan`` and ``damestoilet emit`` accept the same payloads and
refuse the same ones with the same message, a :class:`PayloadError` naming the field."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from codegen import (
    CartUpdated,
    OrderStatusChanged,
    ProductPriceChanged,
    ProductStockChanged,
    UserProfileUpdated,
)
from codegen.orders_v1 import OrderStatus
from damestoilet_contracts import DamestoiletError, EmptyValueError, PayloadError
from damestoilet_contracts.cli import main
from damestoilet_contracts.loaders import load_contracts
from damestoilet_contracts.model.json_form import payload_from_json
from tests.conftest import SCHEMAS

ROOT = Path(__file__).resolve().parent.parent
LOGICAL = ROOT / "tests" / "cases" / "codegen-logical"
PRICE: dict[str, Any] = {
    "product_id": "p1",
    "store_ids": ["s1", "s2"],
    "category_id": "c1",
    "price_cents": 1299,
}
USER: dict[str, Any] = {
    "user_id": "6f1c2b7e-0d4a-4e0b-9b7a-2f4d1c3e5a60",
    "email": None,
    "locale": "nl",
    "address": {"country": "NL", "city": "Utrecht"},
}


def _refused(cls: Any, data: object) -> str:
    with pytest.raises(PayloadError) as caught:
        cls.from_dict(data)
    return str(caught.value)


# -- round trips ------------------------------------------------------------------------------


def test_from_dict_of_to_dict_is_the_event() -> None:
    event = ProductPriceChanged.from_dict(PRICE)
    assert event == ProductPriceChanged(
        product_id="p1", store_ids=("s1", "s2"), category_id="c1", price_cents=1299
    )
    assert event.to_dict() == PRICE
    assert ProductPriceChanged.from_dict(event.to_dict()) == event


def test_from_json_reads_what_to_json_writes_and_bytes_too() -> None:
    event = UserProfileUpdated.from_dict(USER)
    assert event.user_id == uuid.UUID(USER["user_id"])
    assert json.loads(event.to_json()) == USER
    assert UserProfileUpdated.from_json(event.to_json()) == event
    assert UserProfileUpdated.from_json(event.to_json().encode()) == event


def test_a_protobuf_enum_is_read_and_written_by_its_value_name() -> None:
    data = {"order_id": "o1", "customer_id": "c7", "status": "ORDER_STATUS_PAID"}
    event = OrderStatusChanged.from_dict(data)
    assert event.status is OrderStatus.ORDER_STATUS_PAID
    assert event.to_dict() == data
    assert OrderStatusChanged.from_dict({**data, "status": OrderStatus.ORDER_STATUS_PAID}) == event


def test_timestamps_need_an_offset_and_come_back_in_utc_with_z() -> None:
    data = {"product_id": "p", "warehouse_id": "w", "quantity": 3}
    event = ProductStockChanged.from_dict({**data, "changed_at": "2026-01-02T03:04:05.5+02:00"})
    assert event.changed_at == datetime.datetime(2026, 1, 2, 1, 4, 5, 500000, datetime.UTC)
    assert event.to_dict()["changed_at"] == "2026-01-02T01:04:05.500000Z"
    message = _refused(ProductStockChanged, {**data, "changed_at": "2026-01-02T03:04:05"})
    assert message == (
        "event catalog.v1.ProductStockChanged: field 'changed_at' must be an RFC 3339 "
        "timestamp with an offset, such as 2026-01-02T03:04:05Z, got string "
        "'2026-01-02T03:04:05'"
    )
    _refused(ProductStockChanged, {**data, "changed_at": 1767323045})  # no epoch numbers


def test_64_bit_integers_may_be_decimal_text_as_protobuf_json_writes_them() -> None:
    assert ProductPriceChanged.from_dict({**PRICE, "price_cents": "-12"}).price_cents == -12
    for bad in ("1.0", " 1", "+1", "1e3", 1.5, True):
        message = _refused(ProductPriceChanged, {**PRICE, "price_cents": bad})
        assert "field 'price_cents' must be an integer (a JSON number or decimal text)" in message


def test_logical_types_of_the_golden_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(LOGICAL / "expected-codegen"))
    from golden_logical import PaymentCaptured

    data = {
        "payment_id": "6F1C2B7E-0D4A-4E0B-9B7A-2F4D1C3E5A60",
        "captured_at": "2026-01-02T03:04:05.123Z",
        "settled_at": "2026-01-02T03:04:05.123456Z",
        "value_date": "2026-01-02",
        "amount": "12.30",
        "refund_of": None,
    }
    event = PaymentCaptured.from_dict(data)
    assert event.amount == decimal.Decimal("12.30")
    assert event.value_date == datetime.date(2026, 1, 2)
    assert PaymentCaptured.from_dict(event.to_dict()) == event
    assert event.to_dict()["payment_id"] == data["payment_id"].lower()
    for field, bad, expected in [
        ("amount", 12.3, "a decimal as text"),
        ("amount", "NaN", "a decimal as text"),
        ("value_date", "2026-01-02T00:00:00Z", "a date as YYYY-MM-DD"),
        ("value_date", "2026-13-01", "a date as YYYY-MM-DD"),
        ("payment_id", "urn:uuid:6f1c2b7e-0d4a-4e0b-9b7a-2f4d1c3e5a60", "a UUID"),
    ]:
        assert f"field {field!r} must be {expected}" in _refused(
            PaymentCaptured, {**data, field: bad}
        )
    sys.modules.pop("golden_logical", None)


# -- the errors -------------------------------------------------------------------------------


def test_an_unknown_field_is_named_with_the_closest_one() -> None:
    message = _refused(ProductPriceChanged, {**PRICE, "price_cent": 5})
    assert message == (
        "event catalog.v1.ProductPriceChanged: unknown field 'price_cent'; did you mean "
        "'price_cents'? (the fields are: product_id, store_ids, category_id, price_cents)"
    )


def test_a_missing_or_null_required_field_is_named() -> None:
    payload = {k: v for k, v in PRICE.items() if k != "category_id"}
    assert _refused(ProductPriceChanged, payload) == (
        "event catalog.v1.ProductPriceChanged: required field 'category_id' is missing; "
        "give it a value"
    )
    assert "required field 'price_cents' is null" in _refused(
        ProductPriceChanged, {**PRICE, "price_cents": None}
    )


def test_a_wrong_type_names_the_field_what_it_must_be_and_what_it_got() -> None:
    assert _refused(ProductPriceChanged, {**PRICE, "store_ids": "s1"}) == (
        "event catalog.v1.ProductPriceChanged: field 'store_ids' must be an array, got string 's1'"
    )
    assert _refused(ProductPriceChanged, {**PRICE, "store_ids": ["s1", 2]}) == (
        "event catalog.v1.ProductPriceChanged: field 'store_ids[1]' must be a string, got number 2"
    )
    assert _refused(OrderStatusChanged, {"order_id": "o", "customer_id": "c", "status": 2}) == (
        "event orders.v1.OrderStatusChanged: field 'status' must be one of the symbols "
        "ORDER_STATUS_UNSPECIFIED, ORDER_STATUS_PLACED, ORDER_STATUS_PAID, "
        "ORDER_STATUS_SHIPPED, ORDER_STATUS_CANCELLED, got number 2"
    )


def test_nested_fields_are_named_by_their_path() -> None:
    assert "field 'address.city' must be a string, got number 7" in _refused(
        UserProfileUpdated, {**USER, "address": {"country": "NL", "city": 7}}
    )
    assert "unknown field 'town' of 'address'" in _refused(
        UserProfileUpdated, {**USER, "address": {"country": "NL", "city": "U", "town": "U"}}
    )
    assert "required field 'address.country' is missing" in _refused(
        UserProfileUpdated, {**USER, "address": {"city": "U"}}
    )


def test_a_payload_that_is_not_an_object_or_not_json_is_refused() -> None:
    assert _refused(ProductPriceChanged, [1]) == (
        "event catalog.v1.ProductPriceChanged: the payload must be an object (the fields by "
        "name), got array [1]"
    )
    with pytest.raises(PayloadError, match="not valid JSON"):
        ProductPriceChanged.from_json("{")


def test_an_integer_outside_its_wire_type_is_a_payload_error() -> None:
    message = _refused(ProductPriceChanged, {**PRICE, "price_cents": 2**63})
    assert "field 'price_cents' = 9223372036854775808 does not fit the wire type long" in message


def test_no_bad_payload_escapes_as_a_raw_builtin_error() -> None:
    """Every refusal is a DamestoiletError (PayloadError, or EmptyValueError for a template)."""
    bad_values: list[object] = [None, 1, 1.5, True, "x", "", [], ["x"], {}, {"a": 1}]
    for field in PRICE:
        for value in bad_values:
            with contextlib.suppress(DamestoiletError):
                ProductPriceChanged.from_dict({**PRICE, field: value})


def test_an_empty_template_value_is_still_the_empty_value_error() -> None:
    with pytest.raises(EmptyValueError, match="field 'product_id' is empty"):
        ProductPriceChanged.from_dict({**PRICE, "product_id": ""})


def test_the_interpreter_refuses_as_the_generated_class_does() -> None:
    contracts = load_contracts(SCHEMAS)
    event_type = contracts.events[CartUpdated.EVENT_TYPE]
    fields = [f.name for f in event_type.record.fields]
    # An empty object is refused for its first required field, as the interpreter refuses it.
    with pytest.raises(PayloadError, match=f"required field '{fields[0]}' is missing") as caught:
        CartUpdated.from_dict({})
    with pytest.raises(PayloadError) as interpreted:
        payload_from_json(event_type, {})
    assert str(interpreted.value) == str(caught.value)


# -- plan and emit take the same payloads -----------------------------------------------------

SAME = [
    pytest.param(PRICE, id="good"),
    pytest.param({**PRICE, "price_cents": "1299"}, id="decimal-text"),
    pytest.param({**PRICE, "price_cent": 5}, id="unknown-field"),
    pytest.param({k: v for k, v in PRICE.items() if k != "price_cents"}, id="missing-field"),
    pytest.param({**PRICE, "price_cents": 12.5}, id="float-for-int"),
    pytest.param({**PRICE, "store_ids": "s1"}, id="string-for-array"),
    pytest.param({**PRICE, "product_id": ""}, id="empty-template-value"),
]


@pytest.mark.redis
@pytest.mark.parametrize("payload", SAME)
def test_plan_emit_and_from_dict_accept_and_refuse_the_same_payloads(
    payload: dict[str, Any], redis_url: str, redis_client: redis.Redis
) -> None:
    text = json.dumps(payload)
    type_name = ProductPriceChanged.EVENT_TYPE
    planned = CliRunner().invoke(main, ["plan", str(SCHEMAS), type_name, "--json", text])
    emitted = CliRunner().invoke(
        main,
        ["emit", str(SCHEMAS), type_name, "--redis", redis_url, "--stream", "s", "--json", text],
    )
    try:
        event = ProductPriceChanged.from_dict(payload)
    except DamestoiletError as exc:
        assert planned.exit_code == emitted.exit_code == 1, (planned.output, emitted.output)
        assert planned.output.splitlines()[0] == emitted.output.splitlines()[0] == str(exc)
        assert redis_client.xlen("s") == 0
    else:
        assert planned.exit_code == emitted.exit_code == 0, (planned.output, emitted.output)
        assert json.loads(planned.output) == event.flush_plan().to_dict()
        assert redis_client.xlen("s") == 1
