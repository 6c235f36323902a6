// A Node service producing onto Kafka: `node kafka.mjs KAFKA_URL STREAM IDEMPOTENT`, with the key
// in $DAMESTOILET_SIGNING_KEY, produces one event and then two in one request with a signing
// emitter, and one with an emitter that does not sign, and prints the four envelope ids.
import assert from "node:assert/strict";

import { brokersOf, CartUpdated, KafkaEmitter, ProductPriceChanged, signingKeyFromEnv, topicName } from "reference";

const [url, stream, idempotent] = process.argv.slice(2);
assert.equal(topicName("damestoilet:events"), "damestoilet.events");
assert.deepEqual(brokersOf("kafka://a:1,b:2?partitions=3"), ["a:1", "b:2"]);
assert.throws(() => brokersOf("kafka://"), { message: /names no broker/ });
const options = { source: "//node/catalog", stream, idempotent: idempotent === "1" };
await assert.rejects(KafkaEmitter.connect(url, { ...options, signingKey: "short" }), { message: /at least 16 bytes/ });

const signed = await KafkaEmitter.connect(url, { ...options, signingKey: signingKeyFromEnv() });
const unsigned = await KafkaEmitter.connect(url, options);
try {
  const ids = [
    await signed.emit(new ProductPriceChanged({ productId: "pé1", storeIds: ["s1"], categoryId: "c1", priceCents: 5n })),
    ...(await signed.emitMany([
      new CartUpdated({ cartId: "c9", customerId: "u9", lines: [] }),
      new CartUpdated({ cartId: "c8", customerId: "u8", lines: [] }),
    ])),
    await unsigned.emit(new CartUpdated({ cartId: "c7", customerId: "u7", lines: [] })),
  ];
  process.stdout.write(ids.join("\n") + "\n");
} finally {
  await Promise.all([signed.close(), unsigned.close()]);
}
await assert.rejects(signed.emit(new CartUpdated({ cartId: "x", customerId: "x", lines: [] })), {
  name: "EmitterClosedError",
});
