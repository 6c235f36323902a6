// A Node service that imports the generated package by its npm name and emits with it:
// `node service.mjs REDIS_URL` prints the envelope ids it appended, one per line.
import assert from "node:assert/strict";

import { CartLine, CartUpdated, ProductPriceChanged, RedisEmitter } from "reference";

const emitter = RedisEmitter.fromUrl(process.argv[2], { source: "//node/catalog" });
try {
  const ids = [];
  ids.push(
    await emitter.emit(
      new ProductPriceChanged({
        productId: "p1",
        storeIds: ["s1", "s2"],
        categoryId: "c1",
        priceCents: 9007199254740993n,
      }),
    ),
  );
  ids.push(
    ...(await emitter.emitMany([
      new CartUpdated({
        cartId: "c9",
        customerId: "u9",
        lines: [new CartLine({ sku: "k", quantity: 2 })],
        couponCode: "X",
      }),
      new CartUpdated({ cartId: "c8", customerId: "u8", lines: [] }),
    ])),
  );
  process.stdout.write(ids.join("\n") + "\n");
} finally {
  await emitter.close();
}
const late = new CartUpdated({ cartId: "late", customerId: "late", lines: [] });
await assert.rejects(emitter.emit(late), { name: "EmitterClosedError", message: /nothing was sent/ });
