"""Where the Redis CPU of ``damestoilet bench compare`` goes: TTL-only and damestoilet on the
same workload, one after the other in one run, with ``INFO cpu`` over the measured window and
``INFO commandstats`` per command (calls, microseconds), so the difference between the two
can be read command by command.

    python benchmarks/read_path_cpu.py [--duration 20] [--write-rate 30]

A local redis-server is started and stopped; the source of truth lives in its next database,
so its ``GET``/``SET`` count for both. Commands a script runs are counted under the script
(``evalsha``) and under their own names too; the "in commands" total leaves out those only
scripts run. What ``INFO cpu`` counts beyond the commands is the event loop and the network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.bench import CompareSettings, run_compare
from damestoilet_contracts.bench._strategies import STRATEGIES

#: Commands that only scripts run here (the cache's read and fill scripts, the coordinator's
#: done check): counted inside ``evalsha`` already. The done marks' ``SET`` runs in a script
#: too, but the source database's writes are plain ``SET``s, so it is left in.
_IN_SCRIPTS = {"type", "hset", "hdel", "hget", "pexpire", "pttl", "zadd", "sadd", "time", "exists"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds each")
    parser.add_argument("--write-rate", type=float, default=30.0, help="writes per second")
    args = parser.parse_args()
    wanted = [s for s in STRATEGIES if s.name in ("ttl-only", "damestoilet")]
    settings = CompareSettings(duration_s=args.duration, write_rate=args.write_rate)
    schemas = Path(__file__).resolve().parent.parent / "schemas"
    report = run_compare(settings, schemas=schemas, strategies=wanted)
    base = report.results[0]
    for result in report.results:
        rel = result.redis_cpu_s / base.redis_cpu_s - 1 if base.redis_cpu_s else 0.0
        commands = (
            sum(
                usec
                for name, (_, usec) in result.commands.items()
                if name.removeprefix("cmdstat_") not in _IN_SCRIPTS
            )
            / 1e6
        )
        print(
            f"{result.name}: Redis CPU {result.redis_cpu_s:.3f} s over {result.measured_s:g} s "
            f"({rel:+.1%} vs ttl-only); in commands (commandstats) {commands:.3f} s; "
            f"reads {result.measures.reads:,}"
        )
        rows = sorted(result.commands.items(), key=lambda item: -item[1][1])
        for name, (calls, usec) in rows[:14]:
            inner = " (inside scripts)" if name.removeprefix("cmdstat_") in _IN_SCRIPTS else ""
            print(
                f"   {name.removeprefix('cmdstat_'):<12} {calls:>8,} calls "
                f"{usec / 1e3:>9,.1f} ms {usec / max(calls, 1):>7.2f} us/call{inner}"
            )


if __name__ == "__main__":
    main()
