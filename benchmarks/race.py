"""The stale-set race (issue 5), printed: keys left stale after the last invalidation, with
the read-through helper (fill leases) and with plain cache-aside, on the same workload
against a redis-server (or, with --cluster, a 3-primary Redis Cluster) that this script
starts on free loopback ports.

    python benchmarks/race.py [--runs 5] [--keys 30] [--readers 12] [--writers 4] [--cluster]

Cases: purges by key (delete), by a tag the readers fill the key under (delete), and soft
purges by key (counted once the grace window is over).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis
import redis.cluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.race import run_race
from tests.servers import redis_cluster, redis_server

CASES = (
    ("helper", "delete", "key"),
    ("plain", "delete", "key"),
    ("helper", "delete", "tag"),
    ("plain", "delete", "tag"),
    ("helper", "soft", "key"),
)


@contextlib.contextmanager
def server(cluster: bool) -> Iterator[redis.Redis | redis.cluster.RedisCluster]:
    with tempfile.TemporaryDirectory() as tmp:
        if cluster:
            with redis_cluster(Path(tmp)) as ports:
                print(f"3-primary Redis Cluster on 127.0.0.1 ports {ports}")
                client: redis.Redis | redis.cluster.RedisCluster = redis.cluster.RedisCluster(
                    host="127.0.0.1", port=ports[0]
                )
                yield client
        else:
            with redis_server(Path(tmp)) as (port, _):
                print(f"redis-server on 127.0.0.1:{port}")
                client = redis.Redis(host="127.0.0.1", port=port)
                yield client
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keys", type=int, default=30)
    parser.add_argument("--readers", type=int, default=12)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--writes-per-writer", type=int, default=200)
    parser.add_argument("--cluster", action="store_true", help="run on a 3-primary cluster")
    args = parser.parse_args()
    totals: dict[tuple[str, str, str], int] = {}
    with server(args.cluster) as client:
        print(
            f"{args.keys} keys, {args.readers} reader threads, {args.writers} writer threads "
            f"x {args.writes_per_writer} writes, loader delay 2-15 ms"
        )
        print(
            f"{'strategy':<8} {'mode':<7} {'op':<4} {'run':>3} {'reads':>6} {'loads':>6} "
            f"{'writes':>6} {'cached':>6} {'stale':>6}"
        )
        for strategy, mode, op in CASES:
            for run in range(args.runs):
                r = run_race(
                    client,
                    strategy,
                    mode=mode,
                    op=op,
                    keys=args.keys,
                    readers=args.readers,
                    writers=args.writers,
                    writes_per_writer=args.writes_per_writer,
                    seed=run,
                )
                case = (strategy, mode, op)
                totals[case] = totals.get(case, 0) + r.stale
                print(
                    f"{strategy:<8} {mode:<7} {op:<4} {run:>3} {r.reads:>6} {r.loads:>6} "
                    f"{r.writes:>6} {r.cached:>6} {r.stale:>6}"
                )
    n = args.runs * args.keys
    print()
    names = {"helper": "read-through helper (fill leases)", "plain": "plain cache-aside"}
    for (strategy, mode, op), stale in totals.items():
        print(f"stale keys, {names[strategy]:<33} {mode:<6} by {op}: {stale:>3} of {n}")


if __name__ == "__main__":
    main()
