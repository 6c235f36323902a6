"""The storm benchmark's source load, as a model without Redis: what peak a guarded purge can
reach at best, and what the stratified stale moments change.

benchmarks/storm.py measures one run on a real Redis through the real cache; this script draws,
for --trials runs, when each key's refill reaches the source under the same assumptions and no
machine in the way: --entries keys (default 50,000) read at random at --reads a second (so
each key is read on average every entries/reads seconds, a Poisson process); the first
--max-keys deleted at once and refilled at their first read; every other key stale at its
moment over the window and refilled at its first read after it (once; a read after the grace
finds it gone and refills it too). The moments come from the guard's own StormBudget
(stratified) or are drawn independently (what the guard did before), and the script prints
the mean, least and most of the runs' peak queries in a 1 s window, as benchmarks/storm.py
counts them (sliding by 100 ms), for each window in --spread.

    python benchmarks/storm_model.py                       # 300 and 600 s, the benchmark's load
    python benchmarks/storm_model.py --reads 250000        # hot keys: each read 5 times a second
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.model import StormGuard
from damestoilet_contracts.runtime._storm import StormBudget


def peak(refills: np.ndarray) -> int:
    """The most refills in any 1 s window, sliding by 100 ms."""
    buckets = np.bincount((refills * 10).astype(int))
    return int(np.convolve(buckets, np.ones(10, dtype=int), "valid").max())


def trial(args: argparse.Namespace, spread: float, stratified: bool, seed: int) -> int:
    rng = np.random.default_rng(seed)
    spread_keys = args.entries - args.max_keys
    if stratified:
        budget = StormBudget(random.Random(seed))
        moments = np.array(budget.delays_ms(StormGuard(args.max_keys, spread), spread_keys))
        moments = moments / 1000.0
    else:
        moments = rng.uniform(0.0, spread, spread_keys)
    between_reads = args.entries / args.reads  # mean seconds between two reads of one key
    refills = np.concatenate(
        [
            moments + rng.exponential(between_reads, spread_keys),
            rng.exponential(between_reads, args.max_keys),  # deleted at once
        ]
    )
    return peak(refills)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--reads", type=float, default=2000.0, help="reads per second")
    parser.add_argument("--max-keys", type=int, default=1000)
    parser.add_argument("--spread", type=float, nargs="+", default=[300.0, 600.0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    print(
        f"{args.entries} keys, {args.reads:g} reads/s, storm_max_keys {args.max_keys}; "
        f"peak source queries in 1 s over {args.trials} runs: mean (least-most)"
    )
    for spread in args.spread:
        steady = (args.entries - args.max_keys) / spread
        cells = []
        for stratified in (False, True):
            peaks = [trial(args, spread, stratified, seed) for seed in range(args.trials)]
            name = "stratified" if stratified else "independent"
            cells.append(f"{name} {np.mean(peaks):.0f} ({min(peaks)}-{max(peaks)})")
        print(f"  {spread:g} s (steady {steady:.0f}/s): " + ", ".join(cells))


if __name__ == "__main__":
    main()
