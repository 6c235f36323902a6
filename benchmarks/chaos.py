"""The fault suite: the flush path's promise under SIGKILLs, Redis restarts, poison entries,
duplicates and forged plans (docs/trust.md).

On a redis-server of its own (AOF on, a free loopback port), --events events (default
100,000), each purging two keys in two stages, are emitted from a thread over the run,
with 1% poison entries of six kinds, 1% duplicates and forged plans of three kinds mixed
in, while `damestoilet coordinator` processes (plans checked against the contracts) are
killed with SIGKILL --kills times (default 20) at random moments, every fourth restarted
under a new consumer name, and Redis is restarted --redis-restarts times (default 2). A
last coordinator drains the stream. Printed: events emitted, purged, dead-lettered (by
reason), lost, stale target keys left, unrelated keys lost; the goal is 0 lost, 0 stale,
0 unrelated lost, every poison and forged entry dead-lettered with its reason, nothing
innocent dead-lettered and nothing twice. Exit 0 when the goal is met, 1 when not.

    python benchmarks/chaos.py [--events 100000] [--kills 20] [--redis-restarts 2]
                               [--poison 0.01] [--duplicates 0.01] [--seed 9]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from damestoilet_contracts.bench._chaos import run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--redis-restarts", type=int, default=2)
    parser.add_argument("--poison", type=float, default=0.01)
    parser.add_argument("--duplicates", type=float, default=0.01)
    parser.add_argument("--unrelated", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; seed {args.seed}")
    report = run_chaos(
        events=args.events,
        kills=args.kills,
        redis_restarts=args.redis_restarts,
        poison_share=args.poison,
        duplicate_share=args.duplicates,
        unrelated=args.unrelated,
        seed=args.seed,
        echo=lambda line: print(line, file=sys.stderr),
    )
    print("\n".join(report.lines()))
    return 0 if report.goal_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
