// The JSON form across languages: one JSON request per stdin line, one JSON answer per line.
// A request names a compiled package (its index.js), an event type, and either `json` (Python's
// to_json() of an event) with `payload` (the same event's bytes, base64), or `refuse` (a bad
// payload as JSON text), or `bytes` (a value for the runtime's base64 coercer alone). The
// answer holds what TypeScript makes of it.
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
  const cls = pkg.EVENTS[request.type ?? ""];
  let answer;
  try {
    if (request.bytes !== undefined) {
      const value = pkg.jsonBytes(request.bytes, new pkg.At("test", "f"));
      answer = { bytes: pkg.bytesText(value) };
    } else if (request.refuse !== undefined) {
      // fromDict of the parsed payload and fromJson of its text must both refuse, alike.
      let viaDict = null;
      try {
        cls.fromDict(pkg.parseJson(request.refuse, "test"));
      } catch (error) {
        viaDict = `${error.name}: ${error.message}`;
      }
      let viaJson = null;
      try {
        cls.fromJson(request.refuse);
      } catch (error) {
        viaJson = `${error.name}: ${error.message}`;
      }
      answer = { fromDict: viaDict, fromJson: viaJson };
    } else {
      const fromJson = cls.fromJson(request.json);
      const fromBytes = cls.fromBytes(Buffer.from(request.payload, "base64"));
      const again = cls.fromJson(fromJson.toJson());
      answer = {
        bytes: Buffer.from(fromJson.toBytes()).toString("base64"),
        toJson: fromBytes.toJson(),
        keys: Object.keys(fromBytes.toDict()),
        again: Buffer.from(again.toBytes()).toString("base64"),
        dictAgain: Buffer.from(cls.fromDict(fromBytes.toDict()).toBytes()).toString("base64"),
      };
    }
  } catch (error) {
    answer = { error: error.name, message: String(error.message) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
