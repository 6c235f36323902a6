"""The consistency checker behind ``damestoilet verify``: sample emitted events, wait, and check
that the keys each event's plan names hold no value written before the event; report the share
of consistent samples, and that share as a count of nines (99.9% = 3 nines), the way Meta's
Polaris reports the consistency of TAO.

What a sample is
    One event read from the stream (the last ``N`` entries, ``XREVRANGE``) whose plan, taken
    from its envelope or from a flush handler of its type, has ops for the targets checked.
    Its keys are found the way a purge finds them: an exact key directly, a prefix by ``SCAN``
    (glob-escaped ``MATCH``, on every primary of a cluster), a tag through its tag set.

The rule, per key (``E`` is the event's time, ms)
    ============================================  ==============================================
    the key is absent                             consistent (purged, or never cached)
    a cache entry with no value (a lease only)    consistent (nothing to read)
    a cache entry filled at ``t >= E``            consistent (refilled after the event)
    a cache entry filled at ``t < E``             consistent only if the op is ``soft`` and the
                                                  entry is marked stale, or the op is a
                                                  ``delete`` that the target's storm guard
                                                  spread and its window (``spread``) has not
                                                  ended; otherwise **stale**
    any other key: a plain ``SET`` key, or an     **unknown age**: nothing in Redis says when it
    entry without a fill time                     was written (``OBJECT IDLETIME`` counts reads
                                                  too). Counted as stale by default
                                                  (``plain="stale"``): a checker must not claim
                                                  what it cannot see; ``plain="skip"`` leaves
                                                  such keys out instead.
    ============================================  ==============================================

    ``t`` is the fill time the read-through cache writes into every entry (``_layout``); it
    comes from the Redis server's clock, ``E`` from the emitter's, so the two hosts' clocks
    must agree (NTP) to well under the delay. A sample is inconsistent if any of its keys is
    stale; otherwise it is *unknown* (left out of the share) if any key is of unknown age;
    otherwise consistent.

    The check cannot see a value written after ``E`` from a load that began before it (a
    fill that raced the event) when the purge then never ran; with fill leases that fill is
    voided by any purge that does run, which is what the check does see.

Nines
    ``log10(samples / max(inconsistent, 1))``: 1 of 1000 stale is 3 nines; with none stale
    the figure is a lower bound (``at_least``), since 1000 samples resolve at most 3 nines.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
import redis.cluster

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime._envelope import Envelope
from damestoilet_contracts.runtime._seams import DEFAULT_STREAM, HandlerRegistry
from damestoilet_contracts.runtime.redis import _layout as layout
from damestoilet_contracts.runtime.redis._bus import SyncRedis
from damestoilet_contracts.runtime.redis._trust import lost_by_group

#: What to do with a key whose age Redis cannot tell.
PlainPolicy = Literal["stale", "skip"]

#: Verdicts of one key.
ABSENT = "absent"
LEASE_ONLY = "lease_only"
REFILLED = "refilled"
SOFT_MARKED = "soft_marked"
SPREAD = "spread"
STALE = "stale"
UNKNOWN_AGE = "unknown_age"
_CONSISTENT = frozenset({ABSENT, LEASE_ONLY, REFILLED, SOFT_MARKED, SPREAD})

#: Most keys one prefix or tag op contributes to a sample.
DEFAULT_MAX_KEYS_PER_OP = 1000

#: How many stale samples a report lists in detail.
DEFAULT_DETAIL = 20

#: KEYS[1]: one key. Returns {type} for a non-hash, else {type, has value, t, stale, spread,
#: now ms} with '' for an absent field (a Lua false would cut the reply short).
INSPECT_LUA = f"""
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' then return {{kind}} end
local h = redis.call('HMGET', KEYS[1], '{layout.FIELD_FILLED}', '{layout.FIELD_STALE}',
                     '{layout.FIELD_SPREAD}')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {{kind, redis.call('HEXISTS', KEYS[1], '{layout.FIELD_VALUE}'), h[1] or '', h[2] or '',
         h[3] or '', tostring(now)}}
"""


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What one key of a sample held: its verdict and, for a cache entry, its fill time."""

    key: str
    op: FlushOp
    verdict: str
    filled_ms: int | None = None

    @property
    def consistent(self) -> bool | None:
        """True or False, or None when the key's age is unknown."""
        if self.verdict == UNKNOWN_AGE:
            return None
        return self.verdict in _CONSISTENT

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        return {
            "key": self.key,
            "op": self.op.op,
            "target": self.op.target,
            "mode": self.op.mode,
            "verdict": self.verdict,
            "filled_ms": self.filled_ms,
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled event and the checks of its keys."""

    entry_id: str
    event_id: str
    type: str
    event_ms: int
    keys: tuple[KeyCheck, ...]
    #: ``consistent``, ``inconsistent`` or ``unknown`` (see the module docstring).
    verdict: str
    #: Keys a prefix or tag op matched beyond ``max_keys_per_op``, not checked.
    truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, listing only the keys that were not consistent."""
        return {
            "entry": self.entry_id,
            "id": self.event_id,
            "type": self.type,
            "time_ms": self.event_ms,
            "verdict": self.verdict,
            "keys_checked": len(self.keys),
            "keys_not_checked": self.truncated,
            "keys": [k.to_dict() for k in self.keys if k.consistent is not True],
        }


@dataclass(slots=True)
class VerifyReport:
    """The outcome of one verification: counts, the share, the nines and the stale samples."""

    stream: str
    #: Entries read from the stream.
    sampled: int = 0
    consistent: int = 0
    inconsistent: int = 0
    #: Samples left out of the share because a key's age was unknown (``plain="skip"``).
    unknown: int = 0
    #: Entries that were not samples, by reason.
    skipped: Counter[str] = field(default_factory=Counter)
    #: Keys checked, by verdict.
    keys: Counter[str] = field(default_factory=Counter)
    #: The inconsistent (then unknown) samples, at most ``detail`` of them.
    stale_samples: list[Sample] = field(default_factory=list)
    #: Seconds between the newest sampled event and the check.
    waited_s: float = 0.0
    #: Entries each consumer group of the stream lost to trimming before it read them (a
    #: negative count: losses seen whose size is unknown); see docs/trust.md.
    lost: dict[str, int] = field(default_factory=dict)

    @property
    def lost_total(self) -> int:
        """Entries lost to trimming, over every group (losses of unknown size count 1)."""
        return sum(n if n > 0 else 1 for n in self.lost.values() if n)

    @property
    def samples(self) -> int:
        """Samples counted in the share (consistent + inconsistent)."""
        return self.consistent + self.inconsistent

    @property
    def share(self) -> float | None:
        """The share of consistent samples, or None with no samples."""
        return self.consistent / self.samples if self.samples else None

    @property
    def nines(self) -> float | None:
        """``log10(samples / max(inconsistent, 1))``, or None with no samples."""
        if not self.samples:
            return None
        return math.log10(self.samples / max(self.inconsistent, 1))

    @property
    def nines_at_least(self) -> bool:
        """Whether :attr:`nines` is only a lower bound (no sample was inconsistent)."""
        return self.inconsistent == 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form."""
        share = self.share
        return {
            "stream": self.stream,
            "sampled": self.sampled,
            "samples": self.samples,
            "consistent": self.consistent,
            "inconsistent": self.inconsistent,
            "unknown": self.unknown,
            "skipped": dict(sorted(self.skipped.items())),
            "share": share,
            "percent": None if share is None else round(share * 100, 6),
            "nines": None if self.nines is None else round(self.nines, 4),
            "nines_at_least": self.nines_at_least,
            "keys": dict(sorted(self.keys.items())),
            "waited_s": round(self.waited_s, 3),
            "lost": dict(sorted(self.lost.items())),
            "stale_samples": [s.to_dict() for s in self.stale_samples],
        }


def read_last(client: SyncRedis, stream: str, count: int) -> list[tuple[str, dict[Any, Any]]]:
    """The last ``count`` entries of ``stream`` (``XREVRANGE``), oldest first."""
    reply: Any = client.xrevrange(stream, "+", "-", count=count)
    return [(_text(entry_id), dict(fields or {})) for entry_id, fields in reversed(reply or [])]


class Verifier:
    """Checks sampled events' target keys against the rule of the module docstring."""

    def __init__(
        self,
        client: SyncRedis,
        *,
        stream_client: SyncRedis | None = None,
        targets: Collection[str] | None = None,
        handlers: HandlerRegistry | None = None,
        plain: PlainPolicy = "stale",
        max_keys_per_op: int = DEFAULT_MAX_KEYS_PER_OP,
        scan_count: int = 1000,
        detail: int = DEFAULT_DETAIL,
        tail: Callable[[str, int], list[tuple[str, Any]]] | None = None,
    ) -> None:
        """Check keys in the Redis of ``client`` (standalone or cluster), sampling the stream
        from ``stream_client`` (default: ``client``), or through ``tail(stream, count)``, the
        last entries of another bus as ``(id, fields)`` (see ``runtime.nats._bus.read_last``).

        ``targets`` limits the ops checked to those targets (None: all; give the targets
        this Redis holds); ``handlers`` plan events that arrive without a plan; ``plain`` says
        how a key of unknown age counts; ``max_keys_per_op`` caps the keys one prefix or tag
        op adds; ``detail`` caps the stale samples listed. Raises ValueError for a bad
        ``plain`` or a cap below 1.
        """
        if plain not in ("stale", "skip"):
            raise ValueError(f"plain must be 'stale' or 'skip', got {plain!r}")
        if max_keys_per_op < 1 or detail < 0:
            raise ValueError("max_keys_per_op must be at least 1 and detail at least 0")
        self.client = client
        self.stream_client = stream_client if stream_client is not None else client
        self.targets = None if targets is None else frozenset(targets)
        self.handlers: HandlerRegistry = dict(handlers or {})
        self.plain = plain
        self.max_keys_per_op = max_keys_per_op
        self.scan_count = scan_count
        self.detail = detail
        self._tail = tail
        self._inspect = client.register_script(INSPECT_LUA)

    def run(
        self,
        stream: str = DEFAULT_STREAM,
        *,
        sample: int = 1000,
        delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> VerifyReport:
        """Read the last ``sample`` entries of ``stream``, wait until the newest of them is
        ``delay`` seconds old (events already older are checked at once), and check them.
        Raises ValueError for ``sample < 1`` or a negative delay, redis-py errors."""
        if sample < 1 or delay < 0:
            raise ValueError("sample must be at least 1 and delay not negative")
        if self._tail is not None:
            entries = self._tail(stream, sample)
        else:
            entries = read_last(self.stream_client, stream, sample)
        newest = 0.0
        for _, fields in entries:
            try:
                newest = max(newest, Envelope.from_fields(fields).timestamp)
            except EnvelopeError:
                continue
        wait = newest + delay - time.time() if entries else 0.0
        if wait > 0:
            sleep(wait)
        report = self.check(entries, stream=stream)
        report.waited_s = max(0.0, time.time() - newest) if newest else 0.0
        for group, lost in lost_by_group(self.stream_client, stream).items():
            report.lost[group] = lost.total if lost.total or not lost.unknown else -lost.unknown
        return report

    def check(
        self, entries: Sequence[tuple[str, Any]], *, stream: str = DEFAULT_STREAM
    ) -> VerifyReport:
        """Check stream entries (id, fields) now; returns the report."""
        report = VerifyReport(stream, sampled=len(entries))
        unknown: list[Sample] = []
        for entry_id, fields in entries:
            sample = self._sample(entry_id, fields, report)
            if sample is None:
                continue
            report.keys.update(k.verdict for k in sample.keys)
            verdict = sample.verdict
            if verdict == "consistent":
                report.consistent += 1
            elif verdict == "inconsistent":
                report.inconsistent += 1
                if len(report.stale_samples) < self.detail:
                    report.stale_samples.append(sample)
            else:
                report.unknown += 1
                unknown.append(sample)
        room = self.detail - len(report.stale_samples)
        report.stale_samples += unknown[: max(0, room)]
        return report

    # -- one sample ---------------------------------------------------------------------------

    def _sample(self, entry_id: str, fields: Any, report: VerifyReport) -> Sample | None:
        try:
            envelope = Envelope.from_fields(fields)
        except EnvelopeError:
            report.skipped["malformed envelope"] += 1
            return None
        plan = self._plan(envelope)
        if plan is None:
            report.skipped["no plan and no handler"] += 1
            return None
        ops = [op for op in dict.fromkeys(plan.ops) if self._checks(op)]
        if not ops:
            report.skipped["no op for the checked targets"] += 1
            return None
        event_ms = round(envelope.timestamp * 1000)
        found: list[tuple[str, FlushOp]] = []
        truncated = 0
        for op in ops:
            keys, more = self._keys(op)
            found += [(key, op) for key in keys]
            truncated += more
        checks = tuple(self._inspect_keys(found, event_ms))
        verdict = self._verdict(checks)
        return Sample(entry_id, envelope.id, envelope.type, event_ms, checks, verdict, truncated)

    def _verdict(self, checks: Sequence[KeyCheck]) -> str:
        seen = {k.consistent for k in checks}
        if False in seen or (None in seen and self.plain == "stale"):
            return "inconsistent"
        return "unknown" if None in seen else "consistent"

    def _checks(self, op: FlushOp) -> bool:
        return self.targets is None or op.target in self.targets

    def _plan(self, envelope: Envelope) -> Plan | None:
        if envelope.plan is not None:
            return envelope.plan
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return None
        try:
            return handler(envelope.data)
        except Exception:  # an unplannable payload is not a sample
            return None

    def _keys(self, op: FlushOp) -> tuple[list[str], int]:
        """The keys ``op`` reaches now (at most ``max_keys_per_op``), and how many more."""
        if op.op == "key":
            return [op.key], 0
        if op.op == "tag":
            members = self._text_iter(
                self.client.sscan_iter(layout.tag_key(op.key), count=self.scan_count)
            )
        else:
            members = self._scan_prefix(op.key)
        keys: list[str] = []
        more = 0
        for key in dict.fromkeys(members):
            if len(keys) < self.max_keys_per_op:
                keys.append(key)
            else:
                more += 1
        return keys, more

    def _scan_prefix(self, prefix: str) -> Iterator[str]:
        pattern = layout.escape_glob(prefix) + "*"
        if isinstance(self.client, redis.cluster.RedisCluster):
            primaries = self.client.get_primaries()  # type: ignore[no-untyped-call]
            nodes = [self.client.get_redis_connection(node) for node in primaries]
        else:
            nodes = [self.client]
        for node in nodes:
            yield from self._text_iter(node.scan_iter(match=pattern, count=self.scan_count))

    @staticmethod
    def _text_iter(items: Any) -> Iterator[str]:
        for item in items:
            yield _text(item)

    def _inspect_keys(self, found: list[tuple[str, FlushOp]], event_ms: int) -> list[KeyCheck]:
        if not found:
            return []
        if isinstance(self.client, redis.cluster.RedisCluster):
            replies = [self._inspect(keys=[key]) for key, _ in found]
        else:
            pipe = self.client.pipeline(transaction=False)
            for key, _ in found:
                self._inspect(keys=[key], client=pipe)
            replies = pipe.execute()
        return [
            self._judge(key, op, reply, event_ms)
            for (key, op), reply in zip(found, replies, strict=True)
        ]

    def _judge(self, key: str, op: FlushOp, reply: Any, event_ms: int) -> KeyCheck:
        kind = _text(reply[0])
        if kind == "none":
            return KeyCheck(key, op, ABSENT)
        if kind != "hash":
            return KeyCheck(key, op, UNKNOWN_AGE)
        has_value, filled, stale = int(reply[1]), _text(reply[2]), _text(reply[3])
        if not has_value:
            return KeyCheck(key, op, LEASE_ONLY)
        if stale and op.mode == "soft":
            return KeyCheck(key, op, SOFT_MARKED, int(filled) if filled.isdigit() else None)
        if not filled.isdigit():
            return KeyCheck(key, op, UNKNOWN_AGE)
        filled_ms = int(filled)
        if filled_ms >= event_ms:
            return KeyCheck(key, op, REFILLED, filled_ms)
        spread, now = (_text(reply[4]), _text(reply[5])) if len(reply) > 5 else ("", "")
        if op.mode == "delete" and spread.isdigit() and now.isdigit() and int(now) <= int(spread):
            # the storm guard spread this delete: within its window the old value may stand
            return KeyCheck(key, op, SPREAD, filled_ms)
        return KeyCheck(key, op, STALE, filled_ms)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
