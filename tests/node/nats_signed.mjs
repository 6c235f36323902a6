// A Node service signing what it publishes on NATS: `node nats_signed.mjs NATS_URL SUBJECT
// WRONG_KEY`, with the key in $DAMESTOILET_SIGNING_KEY, publishes one event signed with that
// key, one signed with WRONG_KEY and one unsigned, and prints their envelope ids.
import assert from "node:assert/strict";

import { CartUpdated, JetStreamEmitter, ProductPriceChanged, signingKeyFromEnv } from "reference";

const [url, subject, wrongKey] = process.argv.slice(2);
await assert.rejects(JetStreamEmitter.connect(url, { source: "//node/x", subject, signingKey: "short" }), {
  message: /at least 16 bytes/,
});
const signed = await JetStreamEmitter.connect(url, { source: "//node/catalog", subject, signingKey: signingKeyFromEnv() });
const forged = await JetStreamEmitter.connect(url, { source: "//node/catalog", subject, signingKey: wrongKey });
const unsigned = await JetStreamEmitter.connect(url, { source: "//node/catalog", subject });
assert.equal(signed.signed, true);
assert.equal(unsigned.signed, false);
try {
  const ids = [
    await signed.emit(new ProductPriceChanged({ productId: "pé1", storeIds: ["s1"], categoryId: "c1", priceCents: 5n })),
    await forged.emit(new CartUpdated({ cartId: "c9", customerId: "u9", lines: [] })),
    await unsigned.emit(new CartUpdated({ cartId: "c8", customerId: "u8", lines: [] })),
  ];
  process.stdout.write(ids.join("\n") + "\n");
} finally {
  await Promise.all([signed.close(), forged.close(), unsigned.close()]);
}
