"""The consistency checker against the real redis-server: a flushed run is 100% consistent, a
purge skipped or a key re-filled with an old fill time is caught, and the rule for plain keys,
soft purges and leases holds; the nines and the ``damestoilet verify`` command."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.cli._payload import payload_encoder
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Cache,
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
    Verifier,
    VerifyReport,
)
from damestoilet_contracts.runtime.redis import _layout as layout

pytestmark = pytest.mark.redis

STREAM = "events"
TYPE = "test.v1.ProductChanged"
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def _envelope(*ops: FlushOp, plan: bool = True) -> Envelope:
    return Envelope.new(
        type=TYPE,
        data=b"",
        plan=Plan(TYPE, (tuple(ops),)) if plan else None,
        source="//tests",
        datacontenttype="avro/binary",
    )


def _product_event(i: int) -> Envelope:
    return _envelope(
        FlushOp("key", "default", f"product:{i}"),
        FlushOp("prefix", "default", f"listing:{i}:"),
        FlushOp("tag", "default", f"search:{i}"),
    )


def _emit(client: redis.Redis, envelopes: Sequence[Envelope]) -> None:
    Emitter(client, source="//tests", stream=STREAM).emit_envelopes(list(envelopes))


def _fill_products(cache: Cache, n: int) -> None:
    for i in range(n):
        cache.get_or_fill(f"product:{i}", lambda: b"row")
        cache.get_or_fill(f"listing:{i}:page1", lambda: b"page")
        cache.get_or_fill(f"search:result:{i}", lambda: b"hits", tags=[f"search:{i}"])


def _coordinate(client: redis.Redis) -> None:
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer="c1")
    Coordinator(bus, RedisPurgeTarget(client), RedisDoneStore(client), config).run(
        stop_when_idle=True
    )


def _verify(client: redis.Redis, **options: object) -> VerifyReport:
    return Verifier(client, **options).run(STREAM, sample=1000, delay=0)  # type: ignore[arg-type]


def test_a_flushed_run_is_fully_consistent_even_where_keys_were_refilled(
    redis_client: redis.Redis,
) -> None:
    cache = Cache(redis_client)
    _fill_products(cache, 20)
    time.sleep(0.002)  # the events come strictly after the fills
    _emit(redis_client, [_product_event(i) for i in range(20)])
    _coordinate(redis_client)
    _fill_products(cache, 10)  # readers refill half of them after the purge
    report = _verify(redis_client)
    assert (report.samples, report.consistent, report.inconsistent) == (20, 20, 0)
    assert report.share == 1.0
    assert report.nines == pytest.approx(math.log10(20))
    assert report.nines_at_least
    # purged prefixes and tags reach no key; refilled ones reach their refilled keys
    assert report.keys == {"absent": 10, "refilled": 30}
    assert report.stale_samples == []


def test_a_skipped_purge_is_caught_key_prefix_and_tag(redis_client: redis.Redis) -> None:
    cache = Cache(redis_client)
    _fill_products(cache, 3)
    time.sleep(0.002)
    _emit(redis_client, [_product_event(i) for i in range(3)])
    # no coordinator ran: every key of every event still holds its old value
    report = _verify(redis_client)
    assert (report.consistent, report.inconsistent) == (0, 3)
    assert report.keys == {"stale": 9}
    first = report.stale_samples[0]
    assert [(k.key, k.op.op, k.verdict) for k in first.keys] == [
        ("product:0", "key", "stale"),
        ("listing:0:page1", "prefix", "stale"),
        ("search:result:0", "tag", "stale"),
    ]
    assert all(k.filled_ms is not None and k.filled_ms < first.event_ms for k in first.keys)


def test_a_key_refilled_with_an_old_fill_time_is_stale(redis_client: redis.Redis) -> None:
    _emit(redis_client, [_product_event(i) for i in range(10)])
    _coordinate(redis_client)
    entries: Any = redis_client.xrange(STREAM, count=5)
    event = Envelope.from_fields(entries[4][1])
    old_ms = round(event.timestamp * 1000) - 1000
    # a writer that raced the purge put back a value read before the event
    redis_client.hset("product:4", mapping={layout.FIELD_VALUE: "old row", "t": old_ms})
    report = _verify(redis_client)
    assert (report.consistent, report.inconsistent) == (9, 1)
    assert report.nines == pytest.approx(1.0)
    assert not report.nines_at_least
    [stale] = report.stale_samples
    assert stale.event_id == event.id
    [key] = [k for k in stale.keys if k.consistent is False]
    assert (key.key, key.filled_ms) == ("product:4", old_ms)


def test_one_stale_in_a_thousand_is_three_nines() -> None:
    report = VerifyReport("s", consistent=999, inconsistent=1)
    assert report.share == pytest.approx(0.999)
    assert report.nines == pytest.approx(3.0)
    assert VerifyReport("s").nines is None
    assert VerifyReport("s", consistent=100).nines == pytest.approx(2.0)


def test_plain_key_left_after_the_event_counts_as_stale_or_is_left_out(
    redis_client: redis.Redis,
) -> None:
    _emit(redis_client, [_envelope(FlushOp("key", "default", "plain"))])
    redis_client.set("plain", "set by plain cache-aside")
    strict = _verify(redis_client)
    assert (strict.inconsistent, strict.unknown) == (1, 0)
    assert strict.keys == {"unknown_age": 1}
    lenient = _verify(redis_client, plain="skip")
    assert (lenient.samples, lenient.unknown) == (0, 1)
    assert lenient.nines is None
    assert [s.verdict for s in lenient.stale_samples] == ["unknown"]


def test_soft_marked_entry_is_consistent_only_under_a_soft_rule(
    redis_client: redis.Redis,
) -> None:
    Cache(redis_client).get_or_fill("e", lambda: b"row")
    time.sleep(0.002)
    soft = _envelope(FlushOp("key", "default", "e", "soft"))
    _emit(redis_client, [soft])
    _coordinate(redis_client)
    assert redis_client.hexists("e", layout.FIELD_STALE)
    assert _verify(redis_client).keys == {"soft_marked": 1}
    _emit(redis_client, [_envelope(FlushOp("key", "default", "e"))])  # a delete, never run
    report = _verify(redis_client)
    assert (report.consistent, report.inconsistent) == (1, 1)


def test_an_entry_holding_only_a_lease_is_consistent(redis_client: redis.Redis) -> None:
    _emit(redis_client, [_envelope(FlushOp("key", "default", "k"))])
    redis_client.hset("k", layout.FIELD_LEASE, "token")
    assert _verify(redis_client).keys == {"lease_only": 1}


def test_events_without_a_plan_or_ops_for_the_targets_are_skipped(
    redis_client: redis.Redis,
) -> None:
    redis_client.xadd(STREAM, {"not": "an envelope"})
    _emit(
        redis_client,
        [
            _envelope(FlushOp("key", "default", "k"), plan=False),
            _envelope(FlushOp("key", "pricing", "p")),
            _envelope(FlushOp("key", "default", "k")),
        ],
    )
    report = _verify(redis_client, targets={"default"})
    assert report.sampled == 4
    assert report.samples == 1
    assert dict(report.skipped) == {
        "malformed envelope": 1,
        "no plan and no handler": 1,
        "no op for the checked targets": 1,
    }
    planned = _verify(
        redis_client,
        targets={"default"},
        handlers={TYPE: lambda data: Plan(TYPE, ((FlushOp("key", "default", "k"),),))},
    )
    assert planned.samples == 2


def test_prefix_and_tag_ops_are_capped_per_op(redis_client: redis.Redis) -> None:
    _emit(redis_client, [_envelope(FlushOp("prefix", "default", "p:"))])
    redis_client.mset({f"p:{i}": 1 for i in range(30)})
    report = _verify(redis_client, max_keys_per_op=10)
    [sample] = report.stale_samples
    assert (len(sample.keys), sample.truncated) == (10, 20)


def test_run_samples_the_last_entries_and_waits_until_the_newest_is_old_enough(
    redis_client: redis.Redis,
) -> None:
    _emit(redis_client, [_envelope(FlushOp("key", "default", f"k{i}")) for i in range(5)])
    waits: list[float] = []
    report = Verifier(redis_client).run(STREAM, sample=3, delay=30, sleep=waits.append)
    assert report.sampled == 3
    [wait] = waits
    assert 29 < wait <= 30
    old = Verifier(redis_client).run(STREAM, sample=3, delay=0, sleep=waits.append)
    assert old.samples == 3
    assert len(waits) == 1  # events already older than the delay are checked at once


def _cli(redis_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["verify", "--redis", redis_url, "--stream", STREAM, "--delay", "0", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_verify_command_reports_json_and_holds_the_min_nines(
    redis_client: redis.Redis, redis_url: str
) -> None:
    _emit(redis_client, [_product_event(i) for i in range(100)])
    _coordinate(redis_client)
    code, out, _ = _cli(redis_url, "--json", "--min-nines", "2")
    assert code == 0
    report = json.loads(out)
    assert (report["samples"], report["consistent"], report["percent"]) == (100, 100, 100.0)
    assert (report["nines"], report["nines_at_least"]) == (2.0, True)
    redis_client.hset("product:7", mapping={layout.FIELD_VALUE: "old", "t": 1})
    code, out, err = _cli(redis_url, "--min-nines", "2.5")
    assert code == 1
    assert "consistent: 99/100 = 99.0000% (2.00 nines)" in out
    assert "product:7 (key op, target default: stale" in out
    assert "below --min-nines 2.5: 2.00 nines" in err
    assert _cli(redis_url, "--min-nines", "2")[0] == 0  # 99% is two nines


def test_verify_command_exits_1_on_any_stale_sample_by_default(
    redis_client: redis.Redis, redis_url: str
) -> None:
    _emit(redis_client, [_product_event(i) for i in range(10)])
    _coordinate(redis_client)
    assert _cli(redis_url)[0] == 0
    redis_client.hset("product:3", mapping={layout.FIELD_VALUE: "old", "t": 1})
    code, out, err = _cli(redis_url)
    assert code == 1
    assert "consistent: 9/10" in out
    assert "1 stale sample; pass --min-nines to tolerate some" in err


def test_verify_command_exits_1_with_no_sample_under_min_nines(
    redis_client: redis.Redis, redis_url: str
) -> None:
    code, out, err = _cli(redis_url, "--min-nines", "1")
    assert code == 1
    assert "no sample to judge" in out
    assert "no samples" in err
    assert _cli(redis_url)[0] == 0


def test_verify_command_plans_events_without_a_plan_from_schemas(
    redis_client: redis.Redis, redis_url: str
) -> None:
    event = load_linted(SCHEMAS).events["catalog.v1.ProductPriceChanged"]
    content_type, encode = payload_encoder(event, SCHEMAS)
    payload = {"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 5}
    Cache(redis_client).get_or_fill("catalog:product:p1", lambda: b"row")
    time.sleep(0.002)
    envelope = Envelope.new(
        type=event.full_name,
        data=encode(payload),
        plan=None,
        source="//tests",
        datacontenttype=content_type,
    )
    _emit(redis_client, [envelope])
    code, out, _ = _cli(redis_url, "--json")
    assert json.loads(out)["skipped"] == {"no plan and no handler": 1}
    code, out, _ = _cli(redis_url, "--json", "--schemas", str(SCHEMAS))
    report = json.loads(out)
    # One stale sample exits 1 without --min-nines: 0.00% consistent was once exit 0.
    assert (code, report["samples"], report["inconsistent"]) == (1, 1, 1)
    [sample] = report["stale_samples"]
    assert [k["key"] for k in sample["keys"]] == ["catalog:product:p1"]


def test_verify_command_rejects_empty_target_names(redis_url: str) -> None:
    code, _, err = _cli(redis_url, "--targets", "default,")
    assert code == 2
    assert "target names" in err
