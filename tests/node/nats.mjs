// A Node service emitting onto NATS JetStream: `node nats.mjs NATS_URL SUBJECT` publishes one
// event, then two in one call, then the first envelope again (a producer retrying after a
// lost ack, which the stream's duplicate window drops), and prints the three envelope ids.
import assert from "node:assert/strict";

import { CartLine, CartUpdated, JetStreamEmitter, ProductPriceChanged, percentEncode, streamName } from "reference";

const [url, subject] = process.argv.slice(2);
assert.equal(streamName("damestoilet:events"), "DAMESTOILET_EVENTS");
assert.equal(percentEncode('a b"%é'), "a%20b%22%25%C3%A9");

const emitter = await JetStreamEmitter.connect(url, { source: "//node/catalog", subject });
try {
  // a key past ASCII: percent-encoded in its header, escaped in the plan's JSON as Python does
  const price = emitter.envelope(
    new ProductPriceChanged({ productId: "pé1", storeIds: ["s1", "s2"], categoryId: "c1", priceCents: 9007199254740993n }),
  );
  const ids = await emitter.emitEnvelopes([price]);
  ids.push(
    ...(await emitter.emitMany([
      new CartUpdated({ cartId: "c9", customerId: "u9", lines: [new CartLine({ sku: "k", quantity: 2 })], couponCode: "X" }),
      new CartUpdated({ cartId: "c8", customerId: "u8", lines: [] }),
    ])),
  );
  await emitter.emitEnvelopes([price]);
  process.stdout.write(ids.join("\n") + "\n");
} finally {
  await emitter.close();
}
await assert.rejects(emitter.emitMany([new CartUpdated({ cartId: "x", customerId: "x", lines: [] })]), {
  name: "EmitterClosedError",
});
