"""The fault suite (docs/trust.md): the flush path's promise under kills, restarts, poison,
duplicates and forged plans, on a redis-server of its own with AOF on.

:func:`run_chaos` sets two keys per event (``chaos:k:<i>`` and, purged in stage 2,
``chaos:d:<i>``) and ``--unrelated`` keys no event may touch, emits the events from a thread
(retrying a pipeline a Redis restart broke, which makes more duplicates), with poison
entries of several kinds, duplicates of earlier events and forged plans mixed in, while
another thread runs ``damestoilet coordinator`` processes (checking plans against the
contracts through a ``--handlers`` module with ``FLUSH_SPECS``) and kills each with SIGKILL
at a random moment, some restarted under a new consumer name (their pending entries are
then reclaimed), and restarts Redis (``SHUTDOWN``, AOF kept) twice. A last coordinator
drains what is left. The report counts what the goal is about: 0 lost, 0 stale target
keys, 0 unrelated keys lost, every poison and forged entry dead-lettered with its reason,
no innocent event dead-lettered, no entry dead-lettered twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from damestoilet_contracts._process import free_port, redis_args, wait_for_port
from damestoilet_contracts._process import stop as stop_process
from damestoilet_contracts.bench._local import redis_server_binary
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import DEFAULT_GROUP, DEFAULT_STREAM, Envelope
from damestoilet_contracts.runtime.redis._trust import lost_key

TYPE = "chaos.v1.Touched"
#: What the coordinators check plans against: the two keys of an event, nothing else.
SPECS = {
    TYPE: (
        ("key", "default", "delete", "chaos:k:{id}"),
        ("key", "default", "delete", "chaos:d:{id}"),
    )
}
_HANDLERS_MODULE = f"HANDLERS = {{}}\nFLUSH_SPECS = {SPECS!r}\n"

#: The poison and forged entries, by kind, and the start of the reason each must get.
EXPECTED_REASONS = {
    "nested blob": "malformed envelope: an envelope blob holds another blob",
    "surrogate id": "malformed envelope: envelope attribute id holds a control character",
    "NUL in a key": "malformed envelope: malformed flush plan: a target or key holds a control",
    "random bytes": "malformed envelope: not a damestoilet envelope: the blob does not start",
    "not an envelope": "malformed envelope: not a damestoilet envelope: it has no field `e`",
    "truncated blob": "malformed envelope: envelope blob is truncated",
    "forged: undeclared type": "plan refused: type evil.v1.Undeclared is not declared",
    "forged: foreign prefix": "plan refused: prefix 'other:' (target default, delete): no rule",
    "forged: the stream": "plan refused: key 'damestoilet:events' (target default, delete) touches",
}
_POISON = [k for k in EXPECTED_REASONS if not k.startswith("forged")]
_FORGED = [k for k in EXPECTED_REASONS if k.startswith("forged")]


@dataclass
class ChaosReport:
    """What one run did and what it left."""

    events: int = 0
    entries: int = 0
    purged: int = 0
    stale_keys: int = 0
    unrelated_lost: int = 0
    lost: int = 0
    kills: int = 0
    new_consumers: int = 0
    redis_restarts: int = 0
    emit_retries: int = 0
    poison_sent: Counter[str] = field(default_factory=Counter)
    duplicates_sent: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    innocent_dead_lettered: int = 0
    dead_lettered_twice: int = 0
    seconds: float = 0.0

    @property
    def goal_met(self) -> bool:
        """0 lost, 0 stale, 0 unrelated lost, every poison and forged entry dead-lettered
        with its reason, nothing innocent dead-lettered, nothing twice."""
        return (
            self.lost == 0
            and self.stale_keys == 0
            and self.unrelated_lost == 0
            and self.dead_lettered == self.poison_sent
            and self.innocent_dead_lettered == 0
            and self.dead_lettered_twice == 0
        )

    def lines(self) -> list[str]:
        """The report as text, one figure a line."""
        out = [
            f"events emitted:            {self.events} ({self.entries} entries with "
            f"{sum(self.poison_sent.values())} poison/forged and {self.duplicates_sent} "
            f"duplicates; {self.emit_retries} pipelines re-sent after a Redis restart)",
            f"coordinator SIGKILLs:      {self.kills} ({self.new_consumers} restarted under a "
            "new consumer name)",
            f"Redis restarts:            {self.redis_restarts} (AOF on)",
            f"events purged:             {self.purged}",
            f"lost:                      {self.lost}",
            f"stale target keys left:    {self.stale_keys}",
            f"unrelated keys lost:       {self.unrelated_lost}",
            f"innocent events dead-lettered: {self.innocent_dead_lettered}",
            f"entries dead-lettered twice:   {self.dead_lettered_twice}",
            "dead-lettered, by reason (sent -> dead-lettered):",
        ]
        for kind in EXPECTED_REASONS:
            sent, dead = self.poison_sent[kind], self.dead_lettered[kind]
            out.append(f"  {kind:<26} {sent:>6} -> {dead:<6} {EXPECTED_REASONS[kind]}")
        other = {k: n for k, n in self.dead_lettered.items() if k not in EXPECTED_REASONS}
        for reason, n in sorted(other.items()):
            out.append(f"  unexpected: {n} x {reason}")
        out.append(f"took {self.seconds:.1f} s; goal met: {'yes' if self.goal_met else 'NO'}")
        return out


class _Redis:
    """A redis-server with AOF on that can be restarted on the same port and directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = redis_args(redis_server_binary(), self.port, self.workdir, "--appendonly", "yes")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 30)
        client = redis.Redis.from_url(self.url)
        while client.info("persistence").get("loading"):  # replaying the AOF
            time.sleep(0.05)
        client.close()

    def restart(self) -> None:
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(self.url).shutdown()  # fsyncs the AOF first
        assert self.proc is not None
        self.proc.wait(30)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, 30)


def _v1_blob(fields: dict[bytes, bytes]) -> bytes:
    parts = [b"DSE\x01", struct.pack(">H", len(fields))]
    for name, value in fields.items():
        parts += [struct.pack(">H", len(name)), name, struct.pack(">I", len(value)), value]
    return b"".join(parts)


def _v2_blob(head: list[Any]) -> bytes:
    text = json.dumps(head).encode()
    return b"DSE\x02" + struct.pack(">I", len(text)) + text


def _envelope(plan: Plan) -> Envelope:
    return Envelope.new(
        type=plan.type, data=b"", plan=plan, source="//chaos", datacontenttype="avro/binary"
    )


def event_fields(i: int) -> dict[str, bytes]:
    """The entry of valid event ``i``: purges ``chaos:k:<i>``, then ``chaos:d:<i>``."""
    plan = Plan(
        TYPE,
        (
            (FlushOp("key", "default", f"chaos:k:{i}"),),
            (FlushOp("key", "default", f"chaos:d:{i}"),),
        ),
    )
    return _envelope(plan).to_fields(version=2)


def bad_fields(kind: str, rng: random.Random) -> dict[str, bytes]:
    """One poison or forged entry of ``kind`` (a key of :data:`EXPECTED_REASONS`)."""
    head = [
        "1.0", "id-x", "//evil", TYPE, "2026-01-01T00:00:00.000Z", "avro/binary", "", "",
        [[["key", "default", "delete", ["chaos:k:0"]]]],
    ]  # fmt: skip
    if kind == "nested blob":
        blob = _envelope(Plan(TYPE, ())).to_bytes()
        for _ in range(3000):
            blob = _v1_blob({b"e": blob})
        return {"e": blob}
    if kind == "surrogate id":
        head[1] = "\ud800abc"
        return {"e": _v2_blob(head)}
    if kind == "NUL in a key":
        head[8] = [[["key", "default", "delete", ["chaos:k:\x00"]]]]
        return {"e": _v2_blob(head)}
    if kind == "random bytes":
        return {"e": b"XX" + rng.randbytes(62)}
    if kind == "not an envelope":
        return {"hello": b"world"}
    if kind == "truncated blob":
        return {"e": event_fields(0)["e"][:20]}
    if kind == "forged: undeclared type":
        plan = Plan("evil.v1.Undeclared", ((FlushOp("key", "default", "other:1"),),))
    elif kind == "forged: foreign prefix":
        plan = Plan(TYPE, ((FlushOp("prefix", "default", "other:"),),))
    else:
        plan = Plan(TYPE, ((FlushOp("key", "default", DEFAULT_STREAM),),))
    return _envelope(plan).to_fields(version=2)


def _kind_of(reason: str) -> str:
    for kind, start in EXPECTED_REASONS.items():
        if reason.startswith(start):
            return kind
    return reason[:100]


def run_chaos(
    *,
    events: int = 100_000,
    kills: int = 20,
    redis_restarts: int = 2,
    poison_share: float = 0.01,
    duplicate_share: float = 0.01,
    unrelated: int = 10_000,
    seed: int = 9,
    batch: int = 200,
    timeout_s: float = 600.0,
    workdir: Path | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> ChaosReport:
    """Run the fault suite once (see the module docstring) and return its report. Raises
    :class:`DamestoiletError` when redis-server is missing, TimeoutError when the last
    coordinator has not drained the stream within ``timeout_s``."""
    rng = random.Random(seed)
    report = ChaosReport(events=events)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dschaos-")))
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "chaos_contracts.py").write_text(_HANDLERS_MODULE)
        server = _Redis(workdir)
        server.start()
        stack.callback(server.stop)
        client = redis.Redis.from_url(server.url, socket_timeout=10)
        _set_keys(client, events, unrelated)
        entries = _entries(events, poison_share, duplicate_share, rng, report)
        report.entries = len(entries)
        started = time.monotonic()
        # spread over the kills, so that every kill finds the coordinator busy
        spread_s = kills * 1.15
        emitter = threading.Thread(
            target=_emit, args=(server.url, entries, report, spread_s), daemon=True
        )
        emitter.start()
        procs: list[subprocess.Popen[bytes]] = []
        stack.callback(_kill_all, procs)

        def coordinator(consumer: str) -> subprocess.Popen[bytes]:
            proc = _coordinator(server.url, workdir, consumer, batch, len(procs))
            procs.append(proc)
            return proc

        restart_at = {round(kills * (n + 1) / (redis_restarts + 1)) for n in range(redis_restarts)}
        for k in range(kills):
            consumer = "chaos-main"
            if k % 4 == 3:
                consumer = f"chaos-{k}"
                report.new_consumers += 1
            proc = coordinator(consumer)
            time.sleep(rng.uniform(0.3, 2.0))
            if k in restart_at:
                server.restart()
                report.redis_restarts += 1
                echo(f"redis restarted (after {k} kills)")
                time.sleep(rng.uniform(0.1, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            report.kills += 1
            echo(f"kill {k + 1}/{kills} ({consumer})")
        emitter.join(timeout_s)
        last = coordinator("chaos-main")
        _drain(client, emitter, timeout_s)
        last.send_signal(signal.SIGTERM)
        last.wait(30)
        report.seconds = time.monotonic() - started
        _judge(client, events, unrelated, report)
        client.close()
    return report


def _set_keys(client: redis.Redis, events: int, unrelated: int) -> None:
    for start in range(0, events, 10_000):
        stop = min(events, start + 10_000)
        client.mset({f"chaos:{s}:{i}": 1 for i in range(start, stop) for s in ("k", "d")})
    for start in range(0, unrelated, 10_000):
        client.mset({f"other:{i}": 1 for i in range(start, min(unrelated, start + 10_000))})


def _entries(
    events: int, poison: float, duplicates: float, rng: random.Random, report: ChaosReport
) -> list[dict[str, bytes]]:
    out: list[dict[str, bytes]] = []
    sent: list[dict[str, bytes]] = []
    kinds = list(EXPECTED_REASONS)
    for i in range(events):
        fields = event_fields(i)
        out.append(fields)
        sent.append(fields)
        if rng.random() < poison:
            kind = kinds[len(out) % len(kinds)]
            out.append(bad_fields(kind, rng))
            report.poison_sent[kind] += 1
        if rng.random() < duplicates:
            out.append(rng.choice(sent))
            report.duplicates_sent += 1
    return out


def _emit(url: str, entries: list[dict[str, bytes]], report: ChaosReport, spread_s: float) -> None:
    client = redis.Redis.from_url(url, socket_timeout=10)
    began = time.monotonic()
    # Explicit ids make a re-sent pipeline exactly-once: an entry already written refuses
    # its id again (so the counts of poison sent stay exact).
    base = int(time.time() * 1000)
    for start in range(0, len(entries), 500):
        wait = began + spread_s * start / len(entries) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        while True:
            try:
                pipe = client.pipeline(transaction=False)
                for n, fields in enumerate(entries[start : start + 500], start + 1):
                    pipe.xadd(DEFAULT_STREAM, dict(fields), id=f"{base}-{n}")  # type: ignore[arg-type]
                for reply in pipe.execute(raise_on_error=False):
                    if isinstance(reply, redis.ResponseError) and "equal or smaller" not in str(
                        reply
                    ):
                        raise reply
                break
            except redis.RedisError:
                # Redis restarting: send the pipeline again (what was sent is a duplicate)
                report.emit_retries += 1
                time.sleep(0.2)
    client.close()


def _coordinator(
    url: str, workdir: Path, consumer: str, batch: int, n: int
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(workdir), *sys.path])))
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", url, "--consumer", consumer, "--handlers", "chaos_contracts",
        "--batch", str(batch), "--block-ms", "100", "--claim-idle-ms", "1000",
        "--claim-interval", "1", "--retry-base", "0.05", "--retry-max", "0.5",
        "--log-level", "warning",
    ]  # fmt: skip
    log = (workdir / f"coordinator-{n}.log").open("wb")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    log.close()
    return proc


def _drain(client: redis.Redis, emitter: threading.Thread, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, ValueError):
            [group] = [
                g
                for g in client.xinfo_groups(DEFAULT_STREAM)
                if g["name"] == b"damestoilet-coordinator"
            ]
            if not emitter.is_alive() and group["pending"] == 0 and group["lag"] == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the stream was not drained within {timeout_s} s")


def _judge(client: redis.Redis, events: int, unrelated: int, report: ChaosReport) -> None:
    for start in range(0, events, 5000):
        ids = range(start, min(events, start + 5000))
        left = client.exists(*[f"chaos:{s}:{i}" for i in ids for s in ("k", "d")])
        report.stale_keys += int(left)
        pipe = client.pipeline(transaction=False)
        for i in ids:
            pipe.exists(f"chaos:k:{i}", f"chaos:d:{i}")
        report.purged += sum(1 for n in pipe.execute() if n == 0)
    kept = sum(
        int(client.exists(*[f"other:{i}" for i in range(s, min(unrelated, s + 5000))]))
        for s in range(0, unrelated, 5000)
    )
    report.unrelated_lost = unrelated - kept
    report.lost = int(client.hget(lost_key(DEFAULT_STREAM, DEFAULT_GROUP), "total") or 0)
    seen: Counter[bytes] = Counter()
    for _, fields in _letters(client):
        seen[fields[b"dlq_id"]] += 1
        kind = _kind_of(fields[b"dlq_reason"].decode(errors="replace"))
        report.dead_lettered[kind] += 1
        if kind not in EXPECTED_REASONS:
            report.innocent_dead_lettered += 1
    report.dead_lettered_twice = sum(1 for n in seen.values() if n > 1)


def _letters(client: redis.Redis) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    start = "-"
    while True:
        page: Any = client.xrange(f"{DEFAULT_STREAM}:dlq", start, "+", count=1000)
        for entry_id, fields in page:
            if start != "-" and entry_id == start:
                continue
            yield entry_id, fields
        if len(page) < 1000:
            return
        start = page[-1][0]


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
