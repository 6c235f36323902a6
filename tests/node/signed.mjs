// A Node service signing what it emits: `node signed.mjs REDIS_URL WRONG_KEY`, with the key in
// $DAMESTOILET_SIGNING_KEY, appends one event signed with that key, one signed with WRONG_KEY
// and one unsigned, and prints their envelope ids, one per line.
import assert from "node:assert/strict";

import { CartUpdated, ProductPriceChanged, RedisEmitter, SIGNING_KEY_ENV, signingKeyFromEnv } from "reference";

const [url, wrongKey] = process.argv.slice(2);
assert.equal(signingKeyFromEnv({}), null);
assert.equal(signingKeyFromEnv({ [SIGNING_KEY_ENV]: "" }), null);
assert.throws(() => new RedisEmitter(null, { source: "//node/x", signingKey: "short" }), {
  message: /at least 16 bytes/,
});

const signed = RedisEmitter.fromUrl(url, { source: "//node/catalog", signingKey: signingKeyFromEnv() });
const forged = RedisEmitter.fromUrl(url, { source: "//node/catalog", signingKey: wrongKey });
const unsigned = RedisEmitter.fromUrl(url, { source: "//node/catalog" });
assert.equal(signed.signed, true);
assert.equal(unsigned.signed, false);
try {
  const ids = [
    await signed.emit(new ProductPriceChanged({ productId: "p1", storeIds: ["s1"], categoryId: "c1", priceCents: 5n })),
    ...(await forged.emitMany([new CartUpdated({ cartId: "c9", customerId: "u9", lines: [] })])),
    await unsigned.emit(new CartUpdated({ cartId: "c8", customerId: "u8", lines: [] })),
  ];
  process.stdout.write(ids.join("\n") + "\n");
} finally {
  await Promise.all([signed.close(), forged.close(), unsigned.close()]);
}
