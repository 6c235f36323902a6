"""The TypeScript generator's figures, each beside its Python baseline from the same run.

1. Generation time for --contracts event types (default 200, the synthetic contracts of
   codegen_generate.py): ``generate_ts`` in this process, phase by phase, and the Python
   ``generate`` of the same contracts; best of --repeat runs (default 3).
2. Events per second on one core, construct + encode + plan: the four-field, two-rule event of
   codegen_events.py (Avro and Protobuf) and the reference catalog.v1.ProductPriceChanged,
   through the generated TypeScript classes in node and the generated Python classes in this
   process; --events per round (default 200,000), best of --repeat rounds. Node and Python
   are pinned to the same CPU and run one after the other.

    python benchmarks/ts_codegen.py [--contracts 200] [--events 200000] [--repeat 3]

Needs node/node_modules (npm ci --prefix node, as scripts/setup.sh does).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from codegen_events import AVRO, PROTO, rate  # noqa: E402
from codegen_generate import synthesise  # noqa: E402

from damestoilet_contracts.generator import (  # noqa: E402
    _protobuf,
    _ts_build,
    _ts_render,
    generate,
    generate_directory,
    write_output,
)
from damestoilet_contracts.loaders import load_contracts  # noqa: E402

NODE_MODULES = ROOT / "node" / "node_modules"

NODE_LOOP = """
import { pathToFileURL } from "node:url";
const pkg = await import(pathToFileURL(process.argv[2]).href);
const [events, repeat] = [Number(process.argv[3]), Number(process.argv[4])];
const { EVENTS, ProductPriceChanged } = pkg;
const avro = EVENTS["bench.v1.ItemChanged"], proto = EVENTS["benchpb.v1.ItemChanged"];
function item(cls) {
  return (n) => {
    for (let i = 0; i < n; i++) {
      const e = new cls({ itemId: "item-42", shopId: "shop-7", version: BigInt(i), active: true });
      e.toBytes();
      e.flushPlan();
    }
  };
}
function reference(n) {
  for (let i = 0; i < n; i++) {
    const e = new ProductPriceChanged({ productId: "p1", storeIds: ["s1", "s2"],
      categoryId: "c1", priceCents: BigInt(i) });
    e.toBytes();
    e.flushPlan();
  }
}
const sample = new avro({ itemId: "item-42", shopId: "shop-7", version: 1n, active: true });
const parts = {
  construct: (n) => {
    for (let i = 0; i < n; i++) {
      new avro({ itemId: "item-42", shopId: "shop-7", version: BigInt(i), active: true });
    }
  },
  toBytes: (n) => { for (let i = 0; i < n; i++) sample.toBytes(); },
  flushPlan: (n) => { for (let i = 0; i < n; i++) sample.flushPlan(); },
};
function rate(loop) {
  let best = Infinity;
  loop(Math.min(events, 20000)); // warm up the JIT
  for (let r = 0; r < repeat; r++) {
    const start = process.hrtime.bigint();
    loop(events);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return events / best;
}
console.log(JSON.stringify({
  avro: rate(item(avro)), proto: rate(item(proto)), reference: rate(reference),
  construct: rate(parts.construct), toBytes: rate(parts.toBytes), flushPlan: rate(parts.flushPlan),
}));
"""


def best_of(repeat: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    runs = [run() for _ in range(repeat)]
    return min(runs, key=lambda r: r["total"])


def ts_phases(schemas: Path) -> dict[str, float]:
    phases: dict[str, float] = {}
    start = time.perf_counter()
    contracts = load_contracts(schemas)
    phases["load (loaders, protoc for descriptors)"] = time.perf_counter() - start
    mark = time.perf_counter()
    names = sorted({e.source for e in contracts.events.values() if e.format == "proto"})
    proto = _protobuf.run_protoc(schemas, names, "_ts")
    phases["protoc (descriptor set)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    view = _ts_build.build_ts_package(contracts, "bench-ts", proto)
    phases["naming pass (views, plan code)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    files = _ts_render.render_ts_package(view, name="bench-ts")
    phases["render (Jinja2)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    _ts_render.format_ts_files(files)
    phases["prettier (one run for every file)"] = time.perf_counter() - mark
    phases["total"] = time.perf_counter() - start
    return phases


def python_generation(schemas: Path) -> dict[str, float]:
    start = time.perf_counter()
    generate(load_contracts(schemas), package="bench_codegen")
    return {"total": time.perf_counter() - start}


def generation(contracts: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="damestoilet-bench-ts-") as tmp:
        schemas = Path(tmp) / "schemas"
        synthesise(schemas, contracts)
        ts = best_of(repeat, lambda: ts_phases(schemas))
        python = best_of(repeat, lambda: python_generation(schemas))
        files = generate_directory(schemas, package="bench-ts", lang="ts")
        lines = sum(text.count("\n") for text in files.values())
    print(
        f"generation of {contracts} contracts, best of {repeat} ({len(files)} files, {lines} lines)"
    )
    for label, value in ts.items():
        print(f"  TypeScript {label:<42} {value:6.2f} s")
    print(f"  baseline: Python generate of the same contracts    {python['total']:6.2f} s")


def events(count: int, repeat: int, cpu: set[int]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="damestoilet-bench-ts-"))
    schemas = tmp / "schemas"
    (schemas / "avro").mkdir(parents=True)
    (schemas / "proto" / "benchpb" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text((ROOT / "schemas" / "flush-graph.yaml").read_text())
    (schemas / "avro" / "bench.v1.ItemChanged.avsc").write_text(json.dumps(AVRO))
    (schemas / "proto" / "benchpb" / "v1" / "items.proto").write_text(PROTO)
    # The bench events beside the reference contracts, in one package for each language.
    for source in (ROOT / "schemas").rglob("*"):
        if source.is_file() and source.name != "flush-graph.yaml":
            target = schemas / source.relative_to(ROOT / "schemas")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    write_output(generate_directory(schemas, package="bench-ts", lang="ts"), tmp / "ts")
    (tmp / "ts" / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    subprocess.run(
        [str(NODE_MODULES / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=tmp / "ts", check=True
    )
    (tmp / "loop.mjs").write_text(NODE_LOOP)
    node = subprocess.run(
        [
            "taskset",
            "-c",
            str(min(cpu)),
            "node",
            str(tmp / "loop.mjs"),
            str(tmp / "ts" / "dist" / "index.js"),
            str(count),
            str(repeat),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    ts = json.loads(node.stdout)
    node_version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True
    ).stdout.strip()

    write_output(generate_directory(schemas, package="bench_events_ts"), tmp / "bench_events_ts")
    sys.path.insert(0, str(tmp))
    package = importlib.import_module("bench_events_ts")
    avro, proto = package.EVENTS["bench.v1.ItemChanged"], package.EVENTS["benchpb.v1.ItemChanged"]
    reference_cls = package.EVENTS["catalog.v1.ProductPriceChanged"]

    def item(cls: type) -> Callable[[int], None]:
        def loop(n: int) -> None:
            for i in range(n):
                event = cls(item_id="item-42", shop_id="shop-7", version=i, active=True)
                event.to_bytes()
                event.flush_plan()

        return loop

    def reference(n: int) -> None:
        for i in range(n):
            event = reference_cls(
                product_id="p1", store_ids=("s1", "s2"), category_id="c1", price_cents=i
            )
            event.to_bytes()
            event.flush_plan()

    python = {
        "avro": rate(item(avro), count, repeat),
        "proto": rate(item(proto), count, repeat),
        "reference": rate(reference, count, repeat),
    }
    print(
        f"events/s, construct + encode + plan, {count} per round, best of {repeat}, "
        f"CPU {min(cpu)}, node {node_version}, Python {sys.version.split()[0]}"
    )
    rows = [
        ("four fields, two rules, Avro", "avro"),
        ("four fields, two rules, Protobuf", "proto"),
        ("reference ProductPriceChanged (7 keys, 3 stages)", "reference"),
    ]
    print(f"  {'event':<50} {'TypeScript':>12} {'Python':>12}")
    for label, key in rows:
        print(f"  {label:<50} {ts[key]:>12,.0f} {python[key]:>12,.0f}")
    for key in ("construct", "toBytes", "flushPlan"):
        print(f"  TypeScript Avro part alone: {key:<22} {ts[key]:>12,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, default=200)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cpu = {min(os.sched_getaffinity(0))} if hasattr(os, "sched_getaffinity") else {0}
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpu)
    generation(args.contracts, args.repeat)
    events(args.events, args.repeat, cpu)


if __name__ == "__main__":
    main()
