"""Generation time for many contracts: ``damestoilet generate`` on a synthesised schema folder.

Writes --contracts event types (default 200; three quarters Avro, one quarter Protobuf, ten
event types per namespace) into a temporary schema folder, each with a nested record, an enum,
an array that fans out, an optional field and four flush rules, plus a flush graph that every
event cascades through. Then it times, best of --repeat runs (default 3):

* the whole generation in this process (load + protoc + naming pass + render + ruff format),
  with each phase's share;
* ``damestoilet generate --out DIR`` as a fresh process, as CI runs it (imports included);
* ``damestoilet generate --check`` on the written folder.

    python benchmarks/codegen_generate.py [--contracts 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.generator import (
    _build,
    _package,
    _protobuf,
    _render,
    generate,
    write_output,
)
from damestoilet_contracts.loaders import load_contracts

PER_NAMESPACE = 10

GRAPH = """targets:
  default: {grace_seconds: 30}
  cdn: {grace_seconds: 60}
caches:
  bench.item: {key: "bench:item:{item_id}"}
  bench.search: {tag: "bench:search:{item_id}", derived_from: [bench.item]}
  bench.page: {key: "page:item:{item_id}", target: cdn, derived_from: [bench.search]}
"""


def avro_schema(namespace: str, name: str) -> dict[str, object]:
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "doc": f"Synthetic event {name}.",
        "damestoilet": {
            "flush": [
                {"key": "item:{item_id}"},
                {"key": "item:{item_id}:store:{store_ids}"},
                {"tag": "region:{place.region}", "mode": "soft"},
                {"key": "coupon:{coupon}", "if_absent": "skip"},
                {"cache": "bench.item"},
            ]
        },
        "fields": [
            {"name": "item_id", "type": "string"},
            {"name": "store_ids", "type": {"type": "array", "items": "string"}},
            {"name": "quantity", "type": "int"},
            {"name": "price_cents", "type": "long"},
            {"name": "coupon", "type": ["null", "string"], "default": None},
            {
                "name": "state",
                "type": {"type": "enum", "name": f"{name}State", "symbols": ["OPEN", "CLOSED"]},
            },
            {
                "name": "place",
                "type": {
                    "type": "record",
                    "name": f"{name}Place",
                    "fields": [
                        {"name": "region", "type": "string"},
                        {"name": "city", "type": "string"},
                    ],
                },
            },
            {"name": "changed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }


def proto_file(package: str, name: str) -> str:
    return f"""syntax = "proto3";

package {package};

import "damestoilet/v1/options.proto";

// Synthetic event {name}.
message {name} {{
  option (damestoilet.v1.event) = {{
    flush: {{key: "item:{{item_id}}"}}
    flush: {{key: "item:{{item_id}}:store:{{store_ids}}"}}
    flush: {{tag: "state:{{state}}" mode: MODE_SOFT}}
    flush: {{key: "coupon:{{coupon}}" if_absent: IF_ABSENT_SKIP}}
    flush: {{cache: "bench.item"}}
  }};

  enum State {{
    STATE_UNSPECIFIED = 0;
    STATE_OPEN = 1;
  }}

  message Place {{
    string region = 1;
    string city = 2;
  }}

  string item_id = 1;
  repeated string store_ids = 2;
  int32 quantity = 3;
  int64 price_cents = 4;
  optional string coupon = 5;
  State state = 6;
  Place place = 7;
}}
"""


def synthesise(root: Path, count: int) -> None:
    """``count`` event types under ``root``: Avro first, the last quarter Protobuf."""
    (root / "avro").mkdir(parents=True)
    (root / "flush-graph.yaml").write_text(GRAPH)
    avro_count = count - count // 4
    for index in range(count):
        group, name = index // PER_NAMESPACE, f"Event{index:04d}Changed"
        if index < avro_count:
            namespace = f"bench.g{group:03d}.v1"
            path = root / "avro" / f"{namespace}.{name}.avsc"
            path.write_text(json.dumps(avro_schema(namespace, name), indent=2))
        else:
            folder = root / "proto" / "bench" / f"p{group:03d}" / "v1"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"event{index:04d}.proto").write_text(
                proto_file(f"bench.p{group:03d}.v1", name)
            )


def timed_phases(schemas: Path) -> dict[str, float]:
    """One in-process generation, phase by phase (seconds)."""
    phases: dict[str, float] = {}
    start = time.perf_counter()
    contracts = load_contracts(schemas)
    phases["load (loaders, protoc for descriptors)"] = time.perf_counter() - start
    mark = time.perf_counter()
    names = sorted({e.source for e in contracts.events.values() if e.format == "proto"})
    proto = _protobuf.run_protoc(schemas, names, "bench_codegen")
    phases["protoc (pb2 + pyi)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    view = _build.build_package(contracts, "bench_codegen", proto)
    phases["naming pass (views, plan code)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    files = _render.render_package(view, proto.files, proto.sources)
    phases["render (Jinja2)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    _render.format_files(files)
    phases["ruff format"] = time.perf_counter() - mark
    phases["total"] = time.perf_counter() - start
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _package.check_package_name("bench_codegen")

    with tempfile.TemporaryDirectory(prefix="damestoilet-bench-") as tmp:
        schemas = Path(tmp) / "schemas"
        synthesise(schemas, args.contracts)
        out = Path(tmp) / "bench_codegen"

        runs = [timed_phases(schemas) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["total"])
        files = generate(load_contracts(schemas), package="bench_codegen")
        write_output(files, out)
        lines = sum(text.count("\n") for text in files.values())

        cli = ["damestoilet", "generate", str(schemas), "--out", str(out)]
        process = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            process.append(time.perf_counter() - start)
        check = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([*cli, "--check"], check=True, capture_output=True)
            check.append(time.perf_counter() - start)

    print(
        f"contracts: {args.contracts} event types ({args.contracts // 4} Protobuf), "
        f"{len(files)} files, {lines} lines generated"
    )
    print(f"in process, best of {args.repeat} (seconds):")
    for phase, seconds in best.items():
        print(f"  {phase:<40} {seconds:7.3f}")
    median = statistics.median(r["total"] for r in runs)
    print(f"  {'median total':<40} {median:7.3f}")
    print(
        f"damestoilet generate --out (new process): best {min(process):.3f} s, "
        f"median {statistics.median(process):.3f} s"
    )
    print(
        f"damestoilet generate --check (new process): best {min(check):.3f} s, "
        f"median {statistics.median(check):.3f} s"
    )
    verdict = "met" if min(process) < 3.0 else "NOT met"
    print(f"target: under 3 s for {args.contracts} contracts: {verdict}")


if __name__ == "__main__":
    main()
