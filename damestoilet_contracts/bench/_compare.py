"""Runs the comparison: the same workload against each strategy in turn, on one Redis.

Per strategy: empty both databases, write every source row at version 0, start the
strategy, prefill the cache, then replay the workload's schedule (reader threads at the read
rate, one writer at the write rate), open-loop: a reader that falls behind does not skip
reads, and the rate actually achieved is reported. Redis CPU is ``used_cpu_sys +
used_cpu_user`` from ``INFO cpu``, taken at the end of the warm-up and at the end.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts.bench._codegen import forget_events, generate_events
from damestoilet_contracts.bench._local import local_redis
from damestoilet_contracts.bench._strategies import (
    STRATEGIES,
    BenchEnv,
    Strategy,
    source_key,
    source_value,
    version_of,
)
from damestoilet_contracts.bench._workload import (
    TIME_SCALE,
    CompareSettings,
    Measures,
    Recorder,
    Workload,
    measure,
)
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.runtime._redact import redact

#: Reports progress: the strategy's label and the share of its run done (0..1).
Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """One strategy's figures over the measured window."""

    name: str
    label: str
    measures: Measures
    #: Redis CPU seconds (sys + user) over the measured window.
    redis_cpu_s: float
    #: Reads per second actually made in the measured window.
    read_rate: float
    #: Reads that raised (a Redis or loader error); they count in no figure.
    errors: int
    #: Length of the measured window (s).
    measured_s: float
    #: Per command (``INFO commandstats`` name, ``cmdstat_get``), the calls and microseconds
    #: of Redis CPU over the measured window: where ``redis_cpu_s`` went, beyond the network.
    commands: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def redis_core_share(self) -> float:
        """Redis CPU as a share of one core over the measured window."""
        return self.redis_cpu_s / self.measured_s if self.measured_s > 0 else 0.0

    def to_dict(self, baseline_cpu_s: float | None) -> dict[str, Any]:
        """The JSON-ready figures; ``baseline_cpu_s`` is TTL-only's CPU, if it ran."""
        m = self.measures
        return {
            "name": self.name,
            "label": self.label,
            "reads": m.reads,
            "read_rate": round(self.read_rate, 1),
            "stale_reads": m.stale,
            "stale_rate": m.stale_rate,
            "hits": m.hits,
            "hit_ratio": m.hit_ratio,
            "writes": m.writes,
            "redis_cpu_s": round(self.redis_cpu_s, 4),
            "redis_core_share": round(self.redis_core_share, 4),
            "redis_cpu_vs_ttl_only": relative(self.redis_cpu_s, baseline_cpu_s),
            "flush_latency_ms": {
                "p50": m.latency.p50_ms,
                "p99": m.latency.p99_ms,
                "mean": m.latency.mean_ms,
                "flushed": m.latency.count,
                "unflushed": m.latency.unflushed,
            },
            "errors": self.errors,
        }


def relative(value: float, baseline: float | None) -> float | None:
    """``value`` over ``baseline`` minus one (+0.23 = 23% more), None without a baseline."""
    if baseline is None or baseline <= 0:
        return None
    return value / baseline - 1


@dataclass(frozen=True, slots=True)
class CompareReport:
    """Every strategy's result, with the settings and the server they ran on."""

    settings: CompareSettings
    results: tuple[StrategyResult, ...]
    redis_version: str
    local_server: bool

    @property
    def baseline_cpu_s(self) -> float | None:
        """TTL-only's Redis CPU seconds, if it ran."""
        return next((r.redis_cpu_s for r in self.results if r.name == "ttl-only"), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report."""
        s = self.settings
        return {
            "settings": {
                "duration_s": s.duration_s,
                "warmup_s": s.warmup,
                "read_rate": s.read_rate,
                "write_rate": s.write_rate,
                "keys": s.keys,
                "skew": s.skew,
                "ttl_s": s.ttl_s,
                "backstop_ttl_s": s.backstop_ttl_s,
                "manual_delay_s": s.manual_delay_s,
                "tolerance_ms": s.tolerance_ms,
                "db_latency_ms": s.db_latency_ms,
                "readers": s.readers,
                "seed": s.seed,
                "time_scale": TIME_SCALE,
            },
            "redis_version": self.redis_version,
            "local_server": self.local_server,
            "strategies": [r.to_dict(self.baseline_cpu_s) for r in self.results],
        }


def run_compare(
    settings: CompareSettings,
    *,
    redis_url: str | None = None,
    schemas: Path,
    strategies: Sequence[type[Strategy]] = STRATEGIES,
    progress: Progress | None = None,
    bus_url: str | None = None,
) -> CompareReport:
    """Run every strategy of ``strategies`` on the same workload and return their figures.

    ``redis_url`` names a scratch server whose database and the next one are emptied
    between strategies; None starts a local redis-server for the run. ``schemas`` is the
    contract directory the damestoilet strategy plans from; ``bus_url`` carries its events on
    another bus (``nats://...``) instead of a stream in the cache's Redis. Raises
    :class:`DamestoiletError` when Redis cannot be reached or used, and what the loaders
    raise for wrong schemas.
    """
    workload = Workload.build(settings)
    contracts = load_linted(schemas)
    with tempfile.TemporaryDirectory(prefix="dsbench-") as scratch, _server(redis_url) as url:
        events = generate_events(contracts, Path(scratch))
        try:
            with _clients(url, settings) as (cache, source, source_db):
                version = str(cache.info("server").get("redis_version", "?"))
                results = []
                for strategy_cls in strategies:
                    env = BenchEnv(
                        settings,
                        url,
                        cache,
                        source,
                        source_db,
                        Recorder(),
                        contracts,
                        events,
                        bus_url,
                    )
                    results.append(_run_one(strategy_cls, env, workload, progress))
        except redis.RedisError as exc:
            raise DamestoiletError(redact(f"the benchmark lost Redis at {url}: {exc}")) from exc
        except RuntimeError as exc:  # a purger process that would not start
            raise DamestoiletError(str(exc)) from exc
        finally:
            forget_events(events)
    return CompareReport(settings, tuple(results), version, redis_url is None)


@contextlib.contextmanager
def _clients(url: str, settings: CompareSettings) -> Iterator[tuple[redis.Redis, redis.Redis, int]]:
    """The cache's client (the URL's database), the source's (the next one) and its db."""
    try:
        cache = redis.Redis.from_url(url, max_connections=settings.readers + 16)
    except ValueError as exc:
        raise DamestoiletError(redact(f"not a Redis URL: {url!r}: {exc}")) from exc
    db = int(cache.connection_pool.connection_kwargs.get("db", 0))
    if db >= 15:
        cache.close()
        raise DamestoiletError(
            redact(f"use a database below 15 in {url}: the next holds the source")
        )
    # the same server and credentials, the next database (a URL's /db wins over db=)
    pool = cache.connection_pool
    source = redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class,
            max_connections=settings.readers + 8,
            **{**pool.connection_kwargs, "db": db + 1},
        )
    )
    try:
        yield cache, source, db + 1
    finally:
        cache.close()
        source.close()


@contextlib.contextmanager
def _server(redis_url: str | None) -> Iterator[str]:
    if redis_url is not None:
        yield redis_url
        return
    with local_redis() as url:
        yield url


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _commands(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """``INFO commandstats`` as calls and microseconds per command."""
    stats = client.info("commandstats")
    return {name: (int(row["calls"]), int(row["usec"])) for name, row in stats.items()}


def command_delta(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """The calls and microseconds each command took between two :func:`_commands` readings
    (commands run inside a script are counted in both the script and themselves)."""
    out = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = before.get(name, (0, 0))
        if usec > usec0:
            out[name] = (calls - calls0, usec - usec0)
    return out


def _run_one(
    strategy_cls: type[Strategy],
    env: BenchEnv,
    workload: Workload,
    progress: Progress | None,
) -> StrategyResult:
    s = env.settings
    env.cache.flushdb()
    env.source.flushdb()
    pipe = env.source.pipeline(transaction=False)
    for entity in range(s.keys):
        pipe.set(source_key(entity), source_value(0))
    pipe.execute()

    strategy = strategy_cls(env)
    stop = threading.Event()
    errors: list[int] = []
    strategy.start()
    try:
        strategy.prefill(random.Random(s.seed))
        t0 = time.monotonic() + 0.05
        threads = [
            threading.Thread(
                target=_reader,
                args=(strategy, env, workload, t0, stop, errors, reads_taken),
                name=f"reader-{i}",
                daemon=True,
            )
            for i, reads_taken in enumerate(_split(len(workload.reads), s.readers))
        ]
        threads.append(
            threading.Thread(
                target=_writer, args=(strategy, env, workload, t0, stop), name="writer", daemon=True
            )
        )
        for t in threads:
            t.start()
        measured_from = t0 + s.warmup
        end = t0 + s.total_s
        _wait_until(measured_from, strategy_cls.label, t0, s.total_s, progress)
        commands0, cpu0 = _commands(env.cache), _cpu(env.cache)
        _wait_until(end, strategy_cls.label, t0, s.total_s, progress)
        cpu1, commands1 = _cpu(env.cache), _commands(env.cache)
        stop.set()
        for t in threads:
            t.join(10)
        strategy.drain(2.0)
    finally:
        stop.set()
        strategy.stop()
    measures = measure(
        env.recorder,
        measured_from,
        end,
        s.tolerance_ms / 1000,
        purges_expected=strategy_cls.purges,
    )
    return StrategyResult(
        strategy_cls.name,
        strategy_cls.label,
        measures,
        cpu1 - cpu0,
        measures.reads / s.duration_s,
        sum(errors),
        s.duration_s,
        command_delta(commands0, commands1),
    )


def _split(total: int, parts: int) -> list[range]:
    # reader i takes reads i, i+parts, i+2*parts, ...: each thread keeps its own share of
    # the schedule, so no lock sits on the read path
    return [range(i, total, parts) for i in range(parts)]


def _reader(
    strategy: Strategy,
    env: BenchEnv,
    workload: Workload,
    t0: float,
    stop: threading.Event,
    errors: list[int],
    indexes: range,
) -> None:
    rate = env.settings.read_rate
    recorder = env.recorder
    failed = 0
    for i in indexes:
        wait = t0 + i / rate - time.monotonic()
        if (wait > 0 and stop.wait(wait)) or stop.is_set():
            break
        entity = workload.reads[i]
        began = time.monotonic()
        try:
            value, hit = strategy.read(entity)
        except (redis.RedisError, LookupError):
            failed += 1
            continue
        recorder.read(began, entity, version_of(value), hit)
    errors.append(failed)  # list.append is atomic: no lock on the read path


def _writer(
    strategy: Strategy, env: BenchEnv, workload: Workload, t0: float, stop: threading.Event
) -> None:
    rate = env.settings.write_rate
    for j, entity in enumerate(workload.writes):
        wait = t0 + j / rate - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        if stop.is_set():
            return
        version = j + 1
        sent = time.monotonic()
        try:
            env.source.set(source_key(entity), source_value(version))
        except redis.RedisError:
            continue  # not committed: nothing to flush, nothing to count
        env.recorder.commit(entity, version, sent, time.monotonic())
        with contextlib.suppress(redis.RedisError):  # a lost invalidation shows as unflushed
            strategy.committed(entity, version, sent)


def _wait_until(
    deadline: float, label: str, t0: float, total: float, progress: Progress | None
) -> None:
    while True:
        now = time.monotonic()
        if progress is not None:
            progress(label, min(1.0, max(0.0, (now - t0) / total)))
        if now >= deadline:
            return
        time.sleep(min(0.25, deadline - now))
