"""The pytest plugin, used here as a service's tests would use it: its fixtures come from
``damestoilet_contracts.testing.plugin`` (the ``pytest11`` entry point; tests/conftest.py
also lists it, for a checkout whose install predates the entry point)."""

from __future__ import annotations

import asyncio
import textwrap
import tomllib
from pathlib import Path

import pytest
import redis

from codegen import (
    CartLine,
    CartUpdated,
    CategoryRenamed,
    OrderStatus,
    OrderStatusChanged,
    ProductPriceChanged,
)
from damestoilet_contracts._errors import EmitterClosedError, EmptyValueError
from damestoilet_contracts.model import Plan
from damestoilet_contracts.testing import Drain, MemoryBus, PurgeCheck, assert_plan
from tests.runtime_support import KeysChanged

ROOT = Path(__file__).resolve().parent.parent


def _price(product_id: str = "p1") -> ProductPriceChanged:
    return ProductPriceChanged(
        product_id=product_id, store_ids=("s1", "s2"), category_id="c1", price_cents=5
    )


PRICE_KEYS = [
    "catalog:product:p1",
    "pricing:s1:p1",
    "pricing:s2:p1",
    "catalog:listing:c1:",
    "category:c1",
]


def test_assert_purges_holds_the_plan_and_a_real_purge_avro(assert_purges: PurgeCheck) -> None:
    planned = [op.key for op in _price().flush_plan().ops]
    assert set(PRICE_KEYS) <= set(planned)  # the cascade adds derived nodes' keys
    assert_purges(_price(), planned)


def test_assert_purges_with_a_protobuf_event_and_an_absent_optional(assert_purges) -> None:
    cart = CartUpdated(
        cart_id="k1", customer_id="u1", lines=(CartLine(sku="x", quantity=1),), coupon_code=None
    )
    assert_purges(cart, ["cart:k1", "cart:summary:u1"])  # no coupon: that rule is skipped


def test_assert_purges_names_missing_and_unexpected_keys(assert_purges: PurgeCheck) -> None:
    order = OrderStatusChanged(
        order_id="o1", customer_id="u1", status=OrderStatus.ORDER_STATUS_SHIPPED
    )
    keys = [op.key for op in order.flush_plan().ops]
    with pytest.raises(AssertionError, match=r"missing \['order:o2'\]") as info:
        assert_purges(order, [*keys[1:], "order:o2"])
    assert f"not expected [{keys[0]!r}]" in str(info.value)


def test_assert_purges_fails_when_nothing_purges(
    damestoilet_redis: redis.Redis, damestoilet_redis_url: str, damestoilet_emitter
) -> None:
    """A drain that purges nothing (another stream) must fail the check, naming the entry."""
    idle = Drain(damestoilet_redis_url, "some-other-stream")
    check = PurgeCheck(damestoilet_redis, damestoilet_emitter, idle)
    renamed = CategoryRenamed(category_id="c9", old_name="a", new_name="b")
    keys = [op.key for op in renamed.flush_plan().ops]
    with pytest.raises(AssertionError, match="left entries unpurged"):
        check(renamed, keys)


def test_emitter_and_drain_fixtures(
    damestoilet_redis: redis.Redis, damestoilet_emitter, damestoilet_drain
) -> None:
    damestoilet_redis.set("catalog:product:p7", "old")
    damestoilet_emitter.emit(_price("p7"))
    stats = damestoilet_drain()
    assert stats.events == 1
    assert damestoilet_redis.exists("catalog:product:p7") == 0


def test_memory_bus_records_emits_with_no_redis(damestoilet_memory_bus: MemoryBus) -> None:
    with damestoilet_memory_bus.emitter(source="//shop/catalog") as emitter:
        emitter.emit(_price())
        emitter.emit_many([_price("p2"), _price("p3")])
    assert damestoilet_memory_bus.types == ["catalog.v1.ProductPriceChanged"] * 3
    assert "catalog:product:p2" in damestoilet_memory_bus.planned()
    assert damestoilet_memory_bus.envelopes[0].source == "//shop/catalog"
    with pytest.raises(EmitterClosedError):
        emitter.emit(_price())

    class Unplannable(KeysChanged):
        def flush_plan(self) -> Plan:
            raise EmptyValueError("product_id is empty")

    with damestoilet_memory_bus.emitter() as emitter, pytest.raises(EmptyValueError):
        emitter.emit_many([_price("p4"), Unplannable(keys=["k"])])  # planned first: none sent
    assert len(damestoilet_memory_bus.envelopes) == 3


def test_async_memory_emitter_is_the_twin(damestoilet_memory_bus: MemoryBus) -> None:
    async def main() -> None:
        async with damestoilet_memory_bus.async_emitter() as emitter:
            await emitter.emit(_price())
        with pytest.raises(EmitterClosedError):
            await emitter.emit(_price())

    asyncio.run(main())
    assert (
        damestoilet_memory_bus.planned("catalog.v1.ProductPriceChanged")[0] == "catalog:product:p1"
    )


def test_assert_plan_is_pure_and_order_free() -> None:
    planned = [op.key for op in _price().flush_plan().ops]
    assert_plan(_price(), reversed(planned))
    with pytest.raises(AssertionError, match="missing"):
        assert_plan(_price(), [*planned, "nope"])


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry = project["entry-points"]["pytest11"]
    assert entry == {"damestoilet_contracts.testing.plugin": "damestoilet_contracts.testing.plugin"}


def test_a_service_repo_uses_the_plugin(pytester: pytest.Pytester) -> None:
    """A user's test file run by pytest in a fresh process: passing and failing checks."""
    pytester.makepyfile(
        test_service=textwrap.dedent(
            """
            from codegen import ProductPriceChanged

            def price():
                return ProductPriceChanged(
                    product_id="p1", store_ids=("s1",), category_id="c1", price_cents=5
                )

            def test_purges(assert_purges):
                assert_purges(price(), [op.key for op in price().flush_plan().ops])

            def test_wrong_keys(assert_purges):
                assert_purges(price(), ["catalog:product:p2"])

            def test_unit(damestoilet_memory_bus):
                damestoilet_memory_bus.emitter().emit(price())
                assert damestoilet_memory_bus.types == ["catalog.v1.ProductPriceChanged"]
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "damestoilet_contracts.testing.plugin", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.re_match_lines([r".*missing \['catalog:product:p2'\].*"])


def test_a_missing_redis_server_fails_with_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(damestoilet_redis):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "damestoilet_contracts.testing.plugin",
        "--damestoilet-redis-exec", "no-such-redis-server",
    )  # fmt: skip
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no-such-redis-server not found: install Redis*"])
