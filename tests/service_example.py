"""A service written the way a user writes one: it imports the generated events from codegen/,
builds them from its own domain values and hands them to an emitter.

Nothing here knows about schemas, templates or the flush graph: the generated classes carry
their contract, and a wrong value fails where the event is built.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence

from codegen import (
    Address,
    AssetReplaced,
    CartLine,
    CartUpdated,
    OrderStatus,
    OrderStatusChanged,
    ProductPriceChanged,
    ProductStockChanged,
    UserProfileUpdated,
)
from damestoilet_contracts.runtime import ContractEvent, Emitter

SOURCE = "//shop/catalog-service"


def price_changed(
    product_id: str, category_id: str, cents: int, stores: Sequence[str] = ()
) -> ProductPriceChanged:
    """The event for a new price of ``product_id`` in ``stores``."""
    return ProductPriceChanged(
        product_id=product_id,
        store_ids=tuple(stores),
        category_id=category_id,
        price_cents=cents,
    )


def stock_changed(product_id: str, warehouse_id: str, quantity: int) -> ProductStockChanged:
    """The event for a new stock level, stamped now."""
    return ProductStockChanged(
        product_id=product_id,
        warehouse_id=warehouse_id,
        quantity=quantity,
        changed_at=datetime.datetime.now(datetime.UTC),
    )


def profile_updated(
    user_id: uuid.UUID, locale: str, country: str, city: str, email: str | None = None
) -> UserProfileUpdated:
    """The event for a changed profile; without an email the by-email key is not flushed."""
    return UserProfileUpdated(
        user_id=user_id,
        email=email,
        locale=locale,
        address=Address(country=country, city=city),
    )


def cart_updated(
    cart_id: str, customer_id: str, lines: Iterable[tuple[str, int]], coupon: str | None = None
) -> CartUpdated:
    """The event for a changed cart, its lines as (sku, quantity)."""
    return CartUpdated(
        cart_id=cart_id,
        customer_id=customer_id,
        lines=tuple(CartLine(sku=sku, quantity=quantity) for sku, quantity in lines),
        coupon_code=coupon,
    )


def order_shipped(order_id: str, customer_id: str) -> OrderStatusChanged:
    """The event for an order that left the warehouse."""
    return OrderStatusChanged(
        order_id=order_id, customer_id=customer_id, status=OrderStatus.ORDER_STATUS_SHIPPED
    )


def asset_replaced(asset_id: str, product_id: str, variants: Sequence[str]) -> AssetReplaced:
    """The event for a new upload of an asset and its variants."""
    return AssetReplaced(asset_id=asset_id, variant_ids=tuple(variants), product_id=product_id)


def publish(emitter: Emitter, events: Sequence[ContractEvent]) -> list[str]:
    """Emit ``events`` in one batch; returns their event ids."""
    return emitter.emit_many(events)
