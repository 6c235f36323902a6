"""Events per second through the generated code, on one core: construct + to_bytes() +
flush_plan(), against the interpreter on the same event in the same run.

The event is the issue's: four fields (two strings, a long, a boolean) and two key rules,
``item:{item_id}`` and ``shop:{shop_id}:item:{item_id}``, generated once as Avro and once as
Protobuf into a temporary package. Each loop runs --events times (default 200,000), best of
--repeat rounds (default 3), with the process pinned to one CPU:

* generated Avro and generated Protobuf classes: build, encode, plan;
* the baseline: the same work without generated code: a dict payload encoded with fastavro
  (schema parsed once) and planned by ``damestoilet_contracts.compiler.evaluate`` (plan
  compiled once), which interprets the templates;
* the parts of the Avro figure (construct, to_bytes, flush_plan alone), and the reference
  catalog.v1.ProductPriceChanged of codegen/ (five rules, a two-store fan-out, three stages).

    python benchmarks/codegen_events.py [--events 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fastavro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.compiler import compile_event, evaluate
from damestoilet_contracts.generator import generate_directory, write_output
from damestoilet_contracts.loaders import load_contracts

AVRO = {
    "type": "record",
    "name": "ItemChanged",
    "namespace": "bench.v1",
    "damestoilet": {"flush": [{"key": "item:{item_id}"}, {"key": "shop:{shop_id}:item:{item_id}"}]},
    "fields": [
        {"name": "item_id", "type": "string"},
        {"name": "shop_id", "type": "string"},
        {"name": "version", "type": "long"},
        {"name": "active", "type": "boolean"},
    ],
}
PROTO = """syntax = "proto3";
package benchpb.v1;
import "damestoilet/v1/options.proto";
message ItemChanged {
  option (damestoilet.v1.event) = {
    flush: {key: "item:{item_id}"}
    flush: {key: "shop:{shop_id}:item:{item_id}"}
  };
  string item_id = 1;
  string shop_id = 2;
  int64 version = 3;
  bool active = 4;
}
"""


def rate(loop: Callable[[int], None], events: int, repeat: int) -> float:
    """Best events per second of ``loop(events)`` over ``repeat`` rounds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        loop(events)
        best = min(best, time.perf_counter() - start)
    return events / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cpu = "unpinned"
    if hasattr(os, "sched_setaffinity"):
        first = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {first})
        cpu = f"pinned to CPU {first}"

    tmp = Path(tempfile.mkdtemp(prefix="damestoilet-bench-"))
    schemas = tmp / "schemas"
    (schemas / "avro").mkdir(parents=True)
    (schemas / "proto" / "benchpb" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text("targets:\n  default: {grace_seconds: 30}\n")
    (schemas / "avro" / "bench.v1.ItemChanged.avsc").write_text(json.dumps(AVRO))
    (schemas / "proto" / "benchpb" / "v1" / "items.proto").write_text(PROTO)
    write_output(generate_directory(schemas, package="bench_events"), tmp / "bench_events")
    sys.path.insert(0, str(tmp))
    package = importlib.import_module("bench_events")
    avro_cls = package.EVENTS["bench.v1.ItemChanged"]
    proto_cls = package.EVENTS["benchpb.v1.ItemChanged"]

    contracts = load_contracts(schemas)
    event_type = contracts.events["bench.v1.ItemChanged"]
    spec = compile_event(event_type, contracts.graph)
    schema = fastavro.parse_schema(AVRO)

    def generated(cls: type) -> Callable[[int], None]:
        def loop(n: int) -> None:
            for i in range(n):
                event = cls(item_id="item-42", shop_id="shop-7", version=i, active=True)
                event.to_bytes()
                event.flush_plan()

        return loop

    def interpreter(n: int) -> None:
        writer = fastavro.schemaless_writer
        for i in range(n):
            payload = {"item_id": "item-42", "shop_id": "shop-7", "version": i, "active": True}
            buffer = io.BytesIO()
            writer(buffer, schema, payload)
            buffer.getvalue()
            evaluate(spec, event_type, payload)

    sample = avro_cls(item_id="item-42", shop_id="shop-7", version=1, active=True)
    assert sample.flush_plan() == evaluate(spec, event_type, sample._to_avro())

    def construct(n: int) -> None:
        for i in range(n):
            avro_cls(item_id="item-42", shop_id="shop-7", version=i, active=True)

    def to_bytes(n: int) -> None:
        for _ in range(n):
            sample.to_bytes()

    def flush_plan(n: int) -> None:
        for _ in range(n):
            sample.flush_plan()

    import codegen  # the reference contracts, as committed

    def reference(n: int) -> None:
        cls = codegen.ProductPriceChanged
        for i in range(n):
            event = cls(product_id="p1", store_ids=("s1", "s2"), category_id="c1", price_cents=i)
            event.to_bytes()
            event.flush_plan()

    n, r = args.events, args.repeat
    figures = [
        ("generated Avro: construct + to_bytes + flush_plan", rate(generated(avro_cls), n, r)),
        ("generated Protobuf: same", rate(generated(proto_cls), n, r)),
        ("baseline: dict + fastavro + compiler.evaluate", rate(interpreter, n, r)),
        ("  Avro part: construct (with checks)", rate(construct, n, r)),
        ("  Avro part: to_bytes", rate(to_bytes, n, r)),
        ("  Avro part: flush_plan", rate(flush_plan, n, r)),
        ("reference ProductPriceChanged (7 keys, 3 stages)", rate(reference, n, r)),
    ]
    print(f"{n} events per round, best of {r}, one process, {cpu}, Python {sys.version.split()[0]}")
    for label, value in figures:
        print(f"  {label:<52} {value:>10,.0f} events/s")
    speedup = figures[0][1] / figures[2][1]
    print(f"generated Avro vs interpreter baseline: {speedup:.1f}x")
    verdict = "met" if figures[0][1] >= 100_000 else "NOT met"
    print(f"target: at least 100,000 events/s (4 fields, two key rules): {verdict}")


if __name__ == "__main__":
    main()
