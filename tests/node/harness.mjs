// Cross-language harness: one JSON request per stdin line, one JSON answer per stdout line.
// A request names a compiled package (its index.js), an event type, a payload written by Python
// (base64) and the envelope's id, time and source. The answer holds what TypeScript makes of it:
// the event decoded and rebuilt (so its checks run), its plan, the handler's plan, its bytes and
// its version-2 envelope; or the error it threw.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const packages = new Map();
async function load(index) {
  if (!packages.has(index)) {
    packages.set(index, await import(pathToFileURL(index).href));
  }
  return packages.get(index);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  const request = JSON.parse(line);
  const pkg = await load(request.index);
  let answer;
  try {
    const cls = pkg.EVENTS[request.type];
    const event = cls.fromBytes(Buffer.from(request.payload, "base64"));
    const plan = event.flushPlan();
    const envelope = pkg.Envelope.fromEvent(event, {
      source: request.source,
      id: request.id,
      ms: request.ms,
    });
    answer = {
      plan: JSON.parse(pkg.planToJson(plan)),
      handler: JSON.parse(pkg.planToJson(pkg.HANDLERS[request.type](event.toBytes()))),
      bytes: Buffer.from(event.toBytes()).toString("base64"),
      envelope: Buffer.from(envelope.toBytes()).toString("base64"),
    };
  } catch (error) {
    answer = { error: error.name, message: String(error.message) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
