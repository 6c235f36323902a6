// What a Node service sees of the generated reference package (schemas/): construction checks,
// the fan-out cap, decoding errors, the envelope and UUIDv7. Run by tests/test_ts_generator.py
// with node's own test runner; DAMESTOILET_TS_INDEX is the compiled package's index.js.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const pkg = await import(pathToFileURL(process.env.DAMESTOILET_TS_INDEX).href);
const { ProductPriceChanged, CartUpdated, CartLine, ProductStockChanged, OrderStatusChanged } = pkg;

const price = (overrides = {}) =>
  new ProductPriceChanged({
    productId: "p1",
    storeIds: ["s1", "s2"],
    categoryId: "c1",
    priceCents: 1299n,
    ...overrides,
  });

test("an event is frozen and its arrays are frozen copies", () => {
  const stores = ["s1"];
  const event = price({ storeIds: stores });
  stores.push("s2");
  assert.deepEqual(event.storeIds, ["s1"]);
  assert.ok(Object.isFrozen(event) && Object.isFrozen(event.storeIds));
});

test("a value of the wrong type is a TypeError naming Class.member", () => {
  assert.throws(() => price({ productId: 7 }), {
    name: "TypeError",
    message: /ProductPriceChanged\.productId must be a string, not number 7/,
  });
  assert.throws(() => price({ storeIds: "s1" }), { name: "TypeError", message: /storeIds must be an array/ });
  assert.throws(() => price({ storeIds: ["s1", 2] }), { name: "TypeError", message: /storeIds\[\]/ });
});

test("a 64-bit integer must be a bigint, so that it cannot lose precision", () => {
  assert.throws(() => price({ priceCents: 1299 }), { name: "TypeError", message: /must be a bigint/ });
  assert.equal(price({ priceCents: 9007199254740993n }).priceCents, 9007199254740993n);
  const decoded = ProductPriceChanged.fromBytes(price({ priceCents: 2n ** 63n - 1n }).toBytes());
  assert.equal(decoded.priceCents, 2n ** 63n - 1n);
});

test("an integer outside its wire type is a RangeError", () => {
  assert.throws(() => price({ priceCents: 2n ** 63n }), { name: "RangeError", message: /does not fit the wire type long/ });
  const line = (quantity) => new CartLine({ sku: "k", quantity });
  assert.throws(() => line(2 ** 31), { name: "RangeError", message: /int32/ });
  assert.throws(() => line(1.5), { name: "TypeError", message: /an integer number/ });
});

test("an empty template value is refused: it would widen the purge", () => {
  assert.throws(() => price({ productId: "" }), {
    name: "EmptyValueError",
    message: /field 'product_id' is empty/,
  });
  assert.throws(() => price({ storeIds: ["s1", ""] }), {
    name: "EmptyValueError",
    message: /field 'store_ids' holds an empty string/,
  });
  assert.ok(new pkg.EmptyValueError("x") instanceof pkg.DamestoiletError);
});

test("an optional field may be left out; an if_absent skip rule then adds no key", () => {
  const cart = new CartUpdated({ cartId: "c", customerId: "u", lines: [] });
  assert.equal(cart.couponCode, null);
  assert.deepEqual(cart.flushPlan().stages[0].map((o) => o.key), ["cart:c", "cart:summary:u"]);
  const coupon = new CartUpdated({ cartId: "c", customerId: "u", lines: [], couponCode: "X" });
  assert.deepEqual(coupon.flushPlan().stages[0].map((o) => o.key), ["cart:c", "cart:summary:u", "coupon:X:carts"]);
  assert.deepEqual(CartUpdated.fromBytes(coupon.toBytes()), coupon);
});

test("the fan-out cap is checked when the event is built and again by flushPlan(cap)", () => {
  const many = Array.from({ length: 20 }, (_, i) => `s${i}`);
  assert.equal(price({ storeIds: many }).keyCount(), 25); // as Python counts it
  assert.throws(() => price({ storeIds: many }).flushPlan(24), { name: "FanOutError", message: /25 keys, more than the cap of 24/ });
  pkg.setFanoutCap(10);
  try {
    assert.throws(() => price({ storeIds: many }), { name: "FanOutError" });
  } finally {
    pkg.setFanoutCap(pkg.DEFAULT_FANOUT_CAP);
  }
  assert.throws(() => pkg.setFanoutCap(0), RangeError);
});

test("repeated keys within a stage are dropped, the first kept", () => {
  const plan = price({ storeIds: ["s1", "s1"] }).flushPlan();
  assert.deepEqual(plan.stages[0].map((o) => o.key), ["catalog:product:p1", "pricing:s1:p1", "catalog:listing:c1:", "category:c1"]);
});

test("enums are their symbols; an unknown symbol is a TypeError", () => {
  const order = new OrderStatusChanged({ orderId: "o", customerId: "u", status: pkg.OrderStatus.ORDER_STATUS_SHIPPED });
  assert.equal(OrderStatusChanged.fromBytes(order.toBytes()).status, "ORDER_STATUS_SHIPPED");
  assert.throws(() => new OrderStatusChanged({ orderId: "o", customerId: "u", status: "SHIPPED" }), TypeError);
});

test("timestamps are Dates; bytes that are not a payload are a PayloadError", () => {
  const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6));
  const stock = new ProductStockChanged({ productId: "p", warehouseId: "w", quantity: 3, changedAt: at });
  assert.equal(ProductStockChanged.fromBytes(stock.toBytes()).changedAt.getTime(), at.getTime());
  assert.throws(() => ProductPriceChanged.fromBytes(new Uint8Array([0xff, 0xff, 0xff])), { name: "PayloadError" });
  assert.throws(() => CartUpdated.fromBytes(new Uint8Array([0x0a, 0x05, 0x61])), { name: "PayloadError" });
});

test("an envelope needs its attributes, and its plan must be for its type", () => {
  const event = price();
  const envelope = pkg.Envelope.fromEvent(event, { source: "//svc/catalog" });
  assert.match(envelope.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(envelope.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  assert.deepEqual(Array.from(envelope.toBytes().subarray(0, 4)), [0x44, 0x53, 0x45, 2]);
  assert.throws(() => pkg.Envelope.fromEvent(event, { source: "" }), { name: "EnvelopeError", message: /source is empty/ });
  assert.throws(
    () => new pkg.Envelope("i", "s", "other.Type", envelope.time, "avro/binary", "", new Uint8Array(), event.flushPlan()),
    { name: "EnvelopeError", message: /the plan is for/ },
  );
});

test("UUIDv7 ids increase strictly within the process", () => {
  const ids = Array.from({ length: 2000 }, () => pkg.uuid7().id);
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
});

test("a key with a lone surrogate is refused: Python would refuse it too", () => {
  const event = price({ productId: "p\ud800" });
  assert.throws(() => pkg.Envelope.fromEvent(event, { source: "//svc" }).toBytes(), { name: "EnvelopeError" });
});
