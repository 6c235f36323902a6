"""Issue 16: metrics labelled by event type and target, scraped from the real Prometheus
endpoint of a coordinator on the real redis-server; label values stay bounded."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis

from codegen import CategoryRenamed, ProductPriceChanged
from damestoilet_contracts.compiler import flush_specs
from damestoilet_contracts.loaders import load_contracts
from damestoilet_contracts.model import FlushOp, Plan, StormGuard
from damestoilet_contracts.runtime import (
    AsyncCoordinator,
    Coordinator,
    CoordinatorConfig,
    CoordinatorStats,
    Emitter,
    Envelope,
    FlushAgent,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
    serve_metrics,
)
from damestoilet_contracts.runtime._metrics import LabelValues
from tests.servers import free_port

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parent.parent
SPECS = flush_specs(load_contracts(REPO / "schemas"))
STREAM = "metrics-events"
FAST = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01)
PRICE = "catalog.v1.ProductPriceChanged"
RENAMED = "catalog.v1.CategoryRenamed"
PREFIX = "damestoilet_coordinator_"


def _forge(client: redis.Redis, type_: str, *ops: FlushOp) -> None:
    env = Envelope.new(
        type=type_, data=b"", plan=Plan(type_, (ops,)), source="//t", datacontenttype="x/y"
    )
    client.xadd(STREAM, env.to_fields(version=2))  # type: ignore[arg-type]


def _run(
    client: redis.Redis,
    specs: object = None,
    stats: object = None,
    storm: dict[str, StormGuard] | None = None,
) -> Coordinator:
    bus = RedisStreamBus(client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    worker = Coordinator(
        bus,
        RedisPurgeTarget(client, storm=storm),
        RedisDoneStore(client),
        FAST,
        flush_specs=specs,  # type: ignore[arg-type]
        stats=stats,  # type: ignore[arg-type]
    )
    worker.run(stop_when_idle=True)
    return worker


def _scrape(stats: CoordinatorStats) -> dict[str, float]:
    """Every sample of the endpoint, ``name{labels}`` -> value."""
    port = free_port()
    stop = serve_metrics(stats, port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        stop()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_events_dead_letters_and_ops_are_served_by_type_and_target(
    redis_client: redis.Redis,
) -> None:
    events = [
        ProductPriceChanged(product_id=p, store_ids=["s1", "s2"], category_id="c1", price_cents=5)
        for p in ("p1", "p2")
    ]
    Emitter(redis_client, source="//tests", stream=STREAM).emit_many(events)
    _forge(redis_client, "evil.v1.Anything", FlushOp("key", "default", "users:1"))
    redis_client.xadd(STREAM, {"not": "an envelope"})
    worker = _run(redis_client, SPECS)
    samples = _scrape(worker.stats)

    assert samples[f'{PREFIX}events_by_type_total{{type="{PRICE}"}}'] == 2
    # a type outside the contracts is "other" (its name never becomes a series); an entry
    # that never decoded is "undecoded"
    assert samples[f'{PREFIX}dead_lettered_by_type_total{{type="other"}}'] == 1
    assert samples[f'{PREFIX}dead_lettered_by_type_total{{type="undecoded"}}'] == 1
    assert not [name for name in samples if "evil" in name]
    expected = Counter(
        (op.target, op.op) for e in events for s in e.flush_plan().stages for op in s
    )
    assert {t for t, _ in expected} >= {"default", "pricing"}
    for (target, op), n in expected.items():
        assert samples[f'{PREFIX}ops_by_target_total{{op="{op}",target="{target}"}}'] == n
    # the unlabelled series stay as they were
    assert samples[f"{PREFIX}events_total"] == 2
    assert samples[f"{PREFIX}dead_lettered_total"] == 2
    assert samples[f'{PREFIX}keys_purged_total{{op="key"}}'] >= 0


def test_the_async_coordinator_labels_by_the_contracts_too(
    redis_url: str, redis_client: redis.Redis
) -> None:
    event = ProductPriceChanged(product_id="p1", store_ids=["s1"], category_id="c1", price_cents=5)
    Emitter(redis_client, source="//tests", stream=STREAM).emit(event)
    _forge(redis_client, "evil.v1.Anything", FlushOp("key", "default", "users:1"))

    async def main() -> AsyncCoordinator:
        async with AsyncCoordinator.from_url(redis_url, FAST, flush_specs=SPECS) as worker:
            await worker.run(stop_when_idle=True)
        return worker

    samples = _scrape(asyncio.run(main()).stats)
    assert samples[f'{PREFIX}events_by_type_total{{type="{PRICE}"}}'] == 1
    assert samples[f'{PREFIX}dead_lettered_by_type_total{{type="other"}}'] == 1


def test_an_agent_counts_the_ops_of_its_own_targets_only(redis_client: redis.Redis) -> None:
    event = ProductPriceChanged(product_id="p1", store_ids=["s1"], category_id="c1", price_cents=5)
    Emitter(redis_client, source="//tests", stream=STREAM).emit(event)
    agent = FlushAgent(redis_client, ["pricing"], FAST, flush_specs=SPECS)
    agent.run(stop_when_idle=True)
    samples = _scrape(agent.stats)
    assert samples[f'{PREFIX}events_by_type_total{{type="{PRICE}"}}'] == 1
    counted = [name for name in samples if name.startswith(f"{PREFIX}ops_by_target_total")]
    assert counted == [f'{PREFIX}ops_by_target_total{{op="key",target="pricing"}}']


def test_without_contracts_label_values_are_capped_to_other(redis_client: redis.Redis) -> None:
    for i in range(5):
        _forge(redis_client, f"svc.v1.Type{i}", FlushOp("key", f"t{i}", f"k:{i}"))
    stats = CoordinatorStats(types=LabelValues(limit=2), targets=LabelValues(limit=3))
    _run(redis_client, None, stats)
    samples = _scrape(stats)
    by_type = {
        re.search(r'type="([^"]*)"', name)[1]: value  # type: ignore[index]
        for name, value in samples.items()
        if name.startswith(f"{PREFIX}events_by_type_total")
    }
    assert by_type == {"svc.v1.Type0": 1, "svc.v1.Type1": 1, "other": 3}
    targets = sorted(
        re.search(r'target="([^"]*)"', name)[1]  # type: ignore[index]
        for name in samples
        if name.startswith(f"{PREFIX}ops_by_target_total")
    )
    assert targets == ["other", "t0", "t1", "t2"]
    assert samples[f"{PREFIX}events_total"] == 5


def test_label_values_pass_the_known_ones_and_bound_their_memory() -> None:
    known = LabelValues({"a", "b"})
    assert [known(v) for v in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]
    capped = LabelValues(limit=1)
    assert [capped(f"v{i}") for i in range(3)] + [capped("v0")] == ["v0", "other", "other", "v0"]
    flood = LabelValues(limit=1)
    for i in range(10_000):
        flood(f"type-{i}")
    assert len(flood._seen) <= 10
    with pytest.raises(ValueError, match="limit"):
        LabelValues(limit=0)


# -- the storm guard's metrics, by target and event type ------------------------------------

GUARDS = {"default": StormGuard(10, 60.0), "pricing": StormGuard(10, 60.0)}


def _storm_samples(samples: dict[str, float], family: str) -> dict[tuple[str, str], float]:
    """``(target, type) -> value`` of one ``*_by_target_total`` storm family."""
    out = {}
    for name, value in samples.items():
        if name.startswith(f"{PREFIX}{family}_by_target_total{{"):
            target = re.search(r'target="([^"]*)"', name)[1]  # type: ignore[index]
            type_ = re.search(r'type="([^"]*)"', name)[1]  # type: ignore[index]
            out[(target, type_)] = value
    return out


def _listings(client: redis.Redis, category: str, count: int) -> None:
    client.mset({f"catalog:listing:{category}:{i}": 1 for i in range(count)})


def test_storm_metrics_are_labelled_by_target_and_event_type(redis_client: redis.Redis) -> None:
    """Three events in one batch: a price change alone on category c2 (a wide prefix on
    ``default``, and 30 stores' keys on ``pricing``), and a rename and a price change sharing
    c1's prefix, purged once for both (type ``mixed``). Event ids never become labels."""
    _listings(redis_client, "c1", 30)
    _listings(redis_client, "c2", 25)
    stores = [f"s{i}" for i in range(30)]
    redis_client.mset({f"pricing:{store}:p2": 1 for store in stores})
    ids = Emitter(redis_client, source="//tests", stream=STREAM).emit_many(
        [
            ProductPriceChanged(product_id="p2", store_ids=stores, category_id="c2", price_cents=5),
            CategoryRenamed(category_id="c1", old_name="a", new_name="b"),
            ProductPriceChanged(product_id="p1", store_ids=["s1"], category_id="c1", price_cents=5),
        ]
    )
    worker = _run(redis_client, SPECS, storm=GUARDS)
    samples = _scrape(worker.stats)
    spread = _storm_samples(samples, "storm_spread_keys")
    engaged = _storm_samples(samples, "storm_engaged")
    assert spread == {("default", PRICE): 15, ("default", "mixed"): 20, ("pricing", PRICE): 20}
    assert engaged == {("default", PRICE): 1, ("default", "mixed"): 1, ("pricing", PRICE): 1}
    # the unlabelled totals stay, and the labelled series add up to them
    assert samples[f"{PREFIX}storm_spread_keys_total"] == 55
    assert samples[f"{PREFIX}storm_engaged_total"] == 3
    assert not [name for name in samples if any(i in name for i in ids)]


def test_the_async_coordinator_labels_the_storm_metrics_too(
    redis_url: str, redis_client: redis.Redis
) -> None:
    _listings(redis_client, "c1", 30)
    Emitter(redis_client, source="//tests", stream=STREAM).emit(
        CategoryRenamed(category_id="c1", old_name="a", new_name="b")
    )

    async def main() -> AsyncCoordinator:
        async with AsyncCoordinator.from_url(
            redis_url, FAST, flush_specs=SPECS, storm=GUARDS
        ) as worker:
            await worker.run(stop_when_idle=True)
        return worker

    samples = _scrape(asyncio.run(main()).stats)
    assert _storm_samples(samples, "storm_spread_keys") == {("default", RENAMED): 20}
    assert _storm_samples(samples, "storm_engaged") == {("default", RENAMED): 1}


def test_without_contracts_storm_labels_are_capped_to_other(redis_client: redis.Redis) -> None:
    """Five forged types, each on a target of its own with a guard: past the first two of
    each, ``other``."""
    for i in range(5):
        redis_client.mset({f"w{i}:{j}": 1 for j in range(12)})
        _forge(redis_client, f"svc.v1.Type{i}", FlushOp("prefix", f"t{i}", f"w{i}:"))
    stats = CoordinatorStats(types=LabelValues(limit=2), targets=LabelValues(limit=2))
    _run(redis_client, None, stats, storm={f"t{i}": StormGuard(10, 60.0) for i in range(5)})
    samples = _scrape(stats)
    spread = _storm_samples(samples, "storm_spread_keys")
    # the first two engagements the core counted keep their (target, type); which two they
    # are is the order the scan found the prefixes in
    assert spread.pop(("other", "other")) == 6
    assert sorted(spread.values()) == [2, 2]
    assert all(target[1:] == type_[-1:] for target, type_ in spread)
    assert _storm_samples(samples, "storm_engaged")[("other", "other")] == 3
