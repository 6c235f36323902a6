"""A service using the generated events as a user would (tests/service_example.py): the events
it builds carry their plans, refuse bad values at once, and travel through a real Redis stream
to a coordinator that can re-plan them from the payload alone."""

from __future__ import annotations

import uuid

import pytest
import redis

import codegen
from damestoilet_contracts import EmptyValueError
from damestoilet_contracts.runtime import ContractEvent, Emitter, Envelope, load_handlers
from tests import service_example as service


def test_service_builds_events_that_satisfy_the_contract_event_protocol() -> None:
    events = [
        service.price_changed("p1", "c1", 1299, ["s1", "s2"]),
        service.stock_changed("p1", "w1", 3),
        service.profile_updated(uuid.uuid4(), "nl-NL", "NL", "Utrecht"),
        service.cart_updated("cart1", "cust1", [("sku1", 2)], coupon="SPRING"),
        service.order_shipped("o1", "cust1"),
        service.asset_replaced("a1", "p1", ["thumb", "large"]),
    ]
    for event in events:
        assert isinstance(event, ContractEvent)
        assert codegen.EVENTS[event.EVENT_TYPE] is type(event)


def test_price_change_plans_its_keys_and_cascades() -> None:
    plan = service.price_changed("p1", "c1", 1299, ["s1", "s2"]).flush_plan()
    assert [op.key for op in plan.stages[0]] == [
        "catalog:product:p1",
        "pricing:s1:p1",
        "pricing:s2:p1",
        "catalog:listing:c1:",
        "category:c1",
    ]
    assert [op.key for op in plan.stages[1]] == ["search:product:p1"]
    assert [(op.target, op.key) for op in plan.stages[2]] == [("cdn", "/products/p1")]


def test_profile_without_email_skips_the_by_email_key() -> None:
    user = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    without = service.profile_updated(user, "nl", "NL", "Utrecht").flush_plan()
    with_email = service.profile_updated(user, "nl", "NL", "Utrecht", "a@b.nl").flush_plan()
    assert "user:by-email:a@b.nl" in [op.key for op in with_email.ops]
    assert not [op for op in without.ops if op.key.startswith("user:by-email:")]
    assert f"user:profile:{user}" in [op.key for op in without.ops]


def test_service_gets_an_error_where_it_builds_a_bad_event() -> None:
    with pytest.raises(EmptyValueError, match="product_id"):
        service.price_changed("", "c1", 1)
    with pytest.raises(TypeError, match=r"ProductPriceChanged\.price_cents"):
        service.price_changed("p1", "c1", "12.99")  # type: ignore[arg-type]


@pytest.mark.redis
def test_emitted_events_travel_with_their_plan_and_replan_from_the_payload(
    redis_client: redis.Redis,
) -> None:
    events: list[ContractEvent] = [
        service.price_changed("p1", "c1", 1299, ["s1"]),
        service.cart_updated("cart1", "cust1", [("sku1", 2)]),
        service.order_shipped("o1", "cust1"),
    ]
    with Emitter(redis_client, source=service.SOURCE, stream="service-events") as emitter:
        ids = service.publish(emitter, events)
    entries = redis_client.xrange("service-events")
    envelopes = [Envelope.from_fields(fields) for _, fields in entries]
    assert [e.id for e in envelopes] == ids
    for event, envelope in zip(events, envelopes, strict=True):
        assert envelope.type == event.EVENT_TYPE
        assert envelope.datacontenttype == event.CONTENT_TYPE
        assert envelope.plan == event.flush_plan()
        assert codegen.HANDLERS[envelope.type](envelope.data) == envelope.plan


def test_a_coordinator_loads_the_generated_handlers_by_package_name() -> None:
    assert load_handlers("codegen") == dict(codegen.HANDLERS)
