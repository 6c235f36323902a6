"""Keys purged per second by RedisPurgeTarget, next to a plain pipelined UNLINK of the same
keys from Python, against the same redis-server in the same run.

The script starts its own redis-server on a free loopback port, loads --resident other keys
(default 1,000,000) that must survive, then for each contender loads --keys target keys
(default 100,000), purges them, checks that every target is gone and every resident key is
still there, and prints keys per second. Contenders:

  plain UNLINK, 1 key/call    a pipeline of single-key UNLINKs (what most code does)
  plain UNLINK, N keys/call   a pipeline of N-key UNLINKs (the fastest plain form)
  purge_stage, one stage      RedisPurgeTarget.purge_stage with every op in one stage
  purge_stage, B ops/stage    one purge_stage call per B ops (a coordinator's batch)

    python benchmarks/purge_throughput.py [--keys 100000] [--resident 1000000] [--repeat 3]
    python benchmarks/purge_throughput.py --cluster   # the same on a 3-primary Redis Cluster

On a cluster a multi-key UNLINK must stay within one slot, so the N-keys/call plain form
groups the keys by slot first, as RedisPurgeTarget does.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
import redis.cluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import RedisPurgeTarget
from tests.servers import redis_cluster, redis_server

LOAD_BATCH = 10_000

Client = redis.Redis | redis.cluster.RedisCluster


def groups(client: Client, keys: list[str], size: int) -> Iterator[list[str]]:
    """``keys`` in groups of at most ``size``, each within one slot on a cluster."""
    if isinstance(client, redis.cluster.RedisCluster):
        by_slot: dict[int, list[str]] = {}
        for k in keys:
            by_slot.setdefault(client.keyslot(k), []).append(k)
        for group in by_slot.values():
            for start in range(0, len(group), size):
                yield group[start : start + size]
    else:
        for start in range(0, len(keys), size):
            yield keys[start : start + size]


def load(client: Client, keys: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for group in groups(client, keys, LOAD_BATCH):
        # MSET by raw command: redis-py blocks pipe.mset on a cluster even within one slot
        pipe.execute_command("MSET", *(part for k in group for part in (k, "x" * 32)))
        if len(pipe) >= 100:
            pipe.execute()
    pipe.execute()


def plain_unlink(client: Client, keys: list[str], per_call: int) -> None:
    pipe = client.pipeline(transaction=False)
    for group in groups(client, keys, per_call):
        pipe.execute_command("UNLINK", *group)  # pipe.unlink refuses several keys on a cluster
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()


def dbsize(client: Client) -> int:
    if isinstance(client, redis.cluster.RedisCluster):
        sizes = client.dbsize(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        return int(sum(sizes.values()) if isinstance(sizes, dict) else sizes)
    return int(client.dbsize())


@contextlib.contextmanager
def server(cluster: bool) -> Iterator[Client]:
    with tempfile.TemporaryDirectory() as tmp:
        if cluster:
            with redis_cluster(Path(tmp)) as ports:
                client: Client = redis.cluster.RedisCluster(host="127.0.0.1", port=ports[0])
                print(f"3-primary Redis Cluster on 127.0.0.1 ports {ports}")
                yield client
        else:
            with redis_server(Path(tmp)) as (port, _proc):
                client = redis.Redis(host="127.0.0.1", port=port)
                print(f"redis-server {client.info('server')['redis_version']} on 127.0.0.1:{port}")
                yield client
        client.close()


def measure(client: Client, keys: list[str], resident: int, purge: Callable[[], None]) -> float:
    """Load ``keys``, time ``purge``, check the outcome; returns keys per second."""
    load(client, keys)
    assert dbsize(client) == resident + len(keys)
    started = time.perf_counter()
    purge()
    elapsed = time.perf_counter() - started
    left = dbsize(client)
    if left != resident:
        raise SystemExit(f"purge left {left - resident} target keys (or removed residents)")
    return len(keys) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="target keys (the backlog)")
    parser.add_argument("--resident", type=int, default=1_000_000, help="other keys resident")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--chunk", type=int, default=500, help="keys per UNLINK call")
    parser.add_argument("--batch", type=int, default=100, help="ops per purge_stage call")
    parser.add_argument("--cluster", action="store_true", help="run on a 3-primary cluster")
    args = parser.parse_args()

    targets = [f"catalog:product:{i}" for i in range(args.keys)]
    ops = [FlushOp("key", "default", k) for k in targets]
    with server(args.cluster) as client:
        started = time.perf_counter()
        load(client, [f"resident:{i}" for i in range(args.resident)])
        print(
            f"loaded {args.resident:,} resident keys in {time.perf_counter() - started:.1f}s; "
            f"purging {args.keys:,} target keys per run, median of {args.repeat} runs"
        )
        target = RedisPurgeTarget(client, chunk_size=args.chunk)

        def per_batch() -> None:
            for start in range(0, len(ops), args.batch):
                target.purge_stage(ops[start : start + args.batch])

        contenders: list[tuple[str, Callable[[], None]]] = [
            ("plain UNLINK, 1 key/call", lambda: plain_unlink(client, targets, 1)),
            (f"plain UNLINK, {args.chunk} keys/call",
             lambda: plain_unlink(client, targets, args.chunk)),
            ("purge_stage, one stage", lambda: target.purge_stage(ops)),
            (f"purge_stage, {args.batch} ops/stage", per_batch),
        ]  # fmt: skip
        results: dict[str, float] = {}
        for name, purge in contenders:
            rates = [measure(client, targets, args.resident, purge) for _ in range(args.repeat)]
            results[name] = statistics.median(rates)
            print(f"  {name:<32} {results[name]:>12,.0f} keys/s")

    best_plain = max(v for k, v in results.items() if k.startswith("plain"))
    print()
    for name, rate in results.items():
        if name.startswith("purge_stage"):
            print(f"{name}: {rate / best_plain:.0%} of the fastest plain pipelined UNLINK")


if __name__ == "__main__":
    main()
