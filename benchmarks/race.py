"""The stale-set race (issue 5), printed: keys left stale after the last invalidation, with
the read-through helper (fill leases) and with plain cache-aside, on the same workload
against a redis-server this script starts on a free loopback port.

    python benchmarks/race.py [--runs 5] [--keys 30] [--readers 12] [--writers 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.race import run_race
from tests.servers import redis_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keys", type=int, default=30)
    parser.add_argument("--readers", type=int, default=12)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--writes-per-writer", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as (port, _):
        client = redis.Redis(host="127.0.0.1", port=port)
        print(
            f"redis-server on 127.0.0.1:{port}; {args.keys} keys, {args.readers} readers, "
            f"{args.writers} writers x {args.writes_per_writer} writes, loader delay 2-15 ms"
        )
        print(
            f"{'strategy':<8} {'mode':<7} {'run':>3} {'reads':>6} {'loads':>6} "
            f"{'writes':>6} {'cached':>6} {'stale':>6}"
        )
        totals: dict[tuple[str, str], int] = {}
        for strategy, mode in (("helper", "delete"), ("plain", "delete"), ("helper", "soft")):
            for run in range(args.runs):
                r = run_race(
                    client,
                    strategy,
                    mode=mode,
                    keys=args.keys,
                    readers=args.readers,
                    writers=args.writers,
                    writes_per_writer=args.writes_per_writer,
                    seed=run,
                )
                totals[(strategy, mode)] = totals.get((strategy, mode), 0) + r.stale
                print(
                    f"{strategy:<8} {mode:<7} {run:>3} {r.reads:>6} {r.loads:>6} "
                    f"{r.writes:>6} {r.cached:>6} {r.stale:>6}"
                )
        client.close()
    n = args.runs * args.keys
    print()
    print(
        f"stale keys with the helper (fill leases), delete purges: "
        f"{totals[('helper', 'delete')]} of {n}"
    )
    print(
        f"stale keys with plain cache-aside (get, load, set):      "
        f"{totals[('plain', 'delete')]} of {n}"
    )
    print(
        f"stale keys with the helper, soft purges (after grace):   "
        f"{totals[('helper', 'soft')]} of {n}"
    )


if __name__ == "__main__":
    main()
