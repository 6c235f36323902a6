"""The demo: the whole toolkit in one run, on a real Redis, printed step by step.

1. a Redis: the one named, or a local redis-server on a free loopback port;
2. code generated from the contracts into a scratch folder and imported;
3. a coordinator (a thread) consuming the demo's stream;
4. cache entries filled through the read-through :class:`Cache`: the product, its store
   prices, category listings (prefix), the category menu (soft tag), search results tagged
   with the product (derived cache), the CDN product page (derived from search), and as many
   entries of another product and category that must survive;
5. the product's price changes in the source, and a ``catalog.v1.ProductPriceChanged`` is
   emitted with the generated class and the :class:`Emitter`;
6. the coordinator purges the plan stage by stage; the demo checks every entry.

Every id carries ``demo-``, so a prefix or tag purge can only reach the demo's own keys.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from damestoilet_contracts._errors import DamestoiletError, EnvelopeError
from damestoilet_contracts.bench import (
    forget_events,
    generate_events,
    local_redis,
    varnish_available,
)
from damestoilet_contracts.demo._cdn import CdnResult, run_cdn_story
from damestoilet_contracts.lint import load_linted
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Cache,
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    PurgeStats,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
    open_backend,
)
from damestoilet_contracts.runtime.redis._prefix_index import INDEX_KEY

STREAM = "damestoilet:demo:events"
GROUP = "damestoilet-demo"
EVENT_TYPE = "catalog.v1.ProductPriceChanged"

PRODUCT, OTHER_PRODUCT = "demo-p1", "demo-p2"
CATEGORY, OTHER_CATEGORY = "demo-c9", "demo-c10"
STORES = ("demo-s1", "demo-s2")
OLD_PRICE, NEW_PRICE = 1099, 1299


@dataclass(frozen=True, slots=True)
class Entry:
    """One cache entry the demo fills: its key, tags, and what it stands for."""

    key: str
    what: str
    tags: tuple[str, ...] = ()
    #: Whether the price change makes it stale (else it must survive untouched).
    stale: bool = True


def entries() -> tuple[Entry, ...]:
    """The entries of the scenario, stale-to-be first."""
    p, q, c, d = PRODUCT, OTHER_PRODUCT, CATEGORY, OTHER_CATEGORY
    sp, sq = (f"search:product:{p}",), (f"search:product:{q}",)
    return (
        Entry(f"catalog:product:{p}", "product (cache catalog.product)"),
        *(Entry(f"pricing:{s}:{p}", f"price in store {s} (target pricing)") for s in STORES),
        Entry(f"catalog:listing:{c}:page:1", "category listing, page 1 (prefix)"),
        Entry(f"catalog:listing:{c}:page:2", "category listing, page 2 (prefix)"),
        Entry(f"catalog:menu:{c}", "category menu (tag, soft)", (f"category:{c}",)),
        Entry("search:results:q=demo-lamp", "search results (search.product)", sp),
        Entry("search:results:q=demo-desk", "search results (search.product)", sp),
        Entry(f"/products/{p}", "CDN product page (cdn.product_page)"),
        Entry(f"catalog:product:{q}", "another product", stale=False),
        Entry(f"pricing:{STORES[0]}:{q}", "another product's price", stale=False),
        Entry(f"catalog:listing:{d}:page:1", "another category's listing", stale=False),
        Entry(f"catalog:menu:{d}", "another category's menu", (f"category:{d}",), stale=False),
        Entry("search:results:q=demo-chair", "search results of another product", sq, stale=False),
        Entry(f"/products/{q}", "another CDN product page", stale=False),
    )  # fmt: skip


@dataclass(slots=True)
class _Stage:
    ops: tuple[FlushOp, ...]
    stats: PurgeStats
    done: float


class _RecordingTarget:
    """A purge target that keeps what each stage purged, for the demo to print."""

    def __init__(self, inner: RedisPurgeTarget) -> None:
        self.inner = inner
        self.stages: list[_Stage] = []
        self._lock = threading.Lock()

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        stats = self.inner.purge_stage(ops)
        with self._lock:
            self.stages.append(_Stage(tuple(ops), stats, time.monotonic()))
        return stats


@dataclass(slots=True)
class DemoResult:
    """What the demo found at its end."""

    event_id: str
    plan: Plan
    stale_flushed: int = 0
    stale_soft: int = 0
    stale_left: list[str] = field(default_factory=list)
    unrelated_kept: int = 0
    unrelated_lost: list[str] = field(default_factory=list)
    #: The CDN story's findings, when Varnish ran (see :mod:`demo._cdn`).
    cdn: CdnResult | None = None

    @property
    def ok(self) -> bool:
        """Every stale entry flushed and every unrelated one kept (and, with Varnish, the new
        image served after the event)."""
        return not self.stale_left and not self.unrelated_lost and (self.cdn is None or self.cdn.ok)


def run_demo(
    *,
    schemas: Path,
    redis_url: str | None = None,
    keep: bool = False,
    echo: Callable[[str], None] = print,
    timeout: float = 10.0,
    bus_url: str | None = None,
    varnish: bool | None = None,
) -> DemoResult:
    """Run the scenario and ``echo`` each step; return what it found.

    ``redis_url`` names a Redis to use (it gets keys with ``demo-`` in their names, removed
    at the end unless ``keep``); None starts a local redis-server, stopped at the end.
    ``bus_url`` carries the events on another bus (``nats://host:port``: JetStream) instead
    of a Redis stream; the caches stay in Redis.
    ``keep`` also leaves the generated code in place and says where. ``varnish`` runs the
    CDN story too (:mod:`demo._cdn`): None when varnishd and the xkey vmod are installed,
    True always, False never. Raises :class:`DamestoiletError` when Redis cannot be used,
    the schemas are wrong, the coordinator does not purge within ``timeout`` seconds, or
    varnishd does not start.
    """
    with contextlib.ExitStack() as stack:
        url = redis_url or stack.enter_context(local_redis())
        client = redis.Redis.from_url(url)
        stack.callback(client.close)
        try:
            server = client.info("server")
        except redis.RedisError as exc:
            raise DamestoiletError(f"cannot reach Redis at {url}: {exc}") from exc
        how = "using" if redis_url else "started a local"
        echo(f"[1/6] redis: {how} redis-server {server.get('redis_version')} at {url}")

        contracts = load_linted(schemas)
        scratch = Path(tempfile.mkdtemp(prefix="dsdemo-"))
        if not keep:
            stack.callback(_remove_tree, scratch)
        events = generate_events(contracts, scratch, package="dsdemo_events")
        stack.callback(forget_events, events)
        files = sum(1 for p in (scratch / "dsdemo_events").rglob("*.py"))
        echo(
            f"[2/6] generate: {files} Python files for {len(contracts.events)} event types "
            f"from {schemas} into {scratch / 'dsdemo_events'}"
        )

        try:
            result = _scenario(
                client, contracts.graph.grace, events, stack, keep, echo, timeout, bus_url
            )
            if varnish or (varnish is None and varnish_available()):
                result.cdn = run_cdn_story(client, events, contracts.graph.grace, echo)
            elif varnish is None:
                echo("cdn: varnishd or its xkey vmod is not installed; the CDN story is skipped")
        except redis.RedisError as exc:
            raise DamestoiletError(f"the demo lost Redis at {url}: {exc}") from exc
        if keep:
            echo(f"        --keep: the generated code stays in {scratch / 'dsdemo_events'}")
            if redis_url:
                echo(f"        --keep: the demo's keys stay in {redis_url}")
        return result


def _scenario(
    client: redis.Redis,
    grace: Any,
    events: Any,
    stack: contextlib.ExitStack,
    keep: bool,
    echo: Callable[[str], None],
    timeout: float,
    bus_url: str | None = None,
) -> DemoResult:
    if not keep:
        stack.callback(_clean, client)
    _clean(client)  # a previous --keep run may have left its keys

    target = _RecordingTarget(RedisPurgeTarget(client, grace=grace))
    config = CoordinatorConfig(stream=STREAM, group=GROUP, consumer="demo", block_ms=100)
    bus: Any = (
        RedisStreamBus(client, stream=STREAM, group=GROUP, consumer="demo")
        if bus_url is None
        else open_backend("bus", bus_url, stream=STREAM, group=GROUP, consumer="demo")
    )
    if bus_url is not None:
        stack.callback(bus.close)
    bus.open(config.policy())
    coordinator = Coordinator(bus, target, RedisDoneStore(client), config)
    thread = threading.Thread(target=coordinator.run, name="demo-coordinator", daemon=True)
    thread.start()
    stack.callback(thread.join, 5)
    stack.callback(coordinator.stop)
    on = f" on {bus_url}" if bus_url else ""
    echo(f"[3/6] coordinator: consuming {STREAM}{on} as group {GROUP} (a thread of this process)")

    source = {PRODUCT: OLD_PRICE, OTHER_PRODUCT: 2499}
    cache = Cache(client, ttl=3600)
    all_entries = entries()
    for entry in all_entries:
        cache.get_or_fill(entry.key, functools.partial(_row, entry, source), tags=entry.tags)
    width = max(len(e.key) for e in all_entries)
    echo(f"[4/6] fill: {len(all_entries)} entries through the read-through cache (fill leases)")
    for entry in all_entries:
        tags = f"  [tag {', '.join(entry.tags)}]" if entry.tags else ""
        kind = "to flush" if entry.stale else "unrelated"
        echo(f"      {kind:<9}  {entry.key:<{width}}  {entry.what}{tags}")

    source[PRODUCT] = NEW_PRICE
    event = events.ProductPriceChanged(
        product_id=PRODUCT, store_ids=list(STORES), category_id=CATEGORY, price_cents=NEW_PRICE
    )
    plan: Plan = event.flush_plan()
    emitter = (
        Emitter(client, source="//damestoilet/demo", stream=STREAM)
        if bus_url is None
        else Emitter.from_url(bus_url, source="//damestoilet/demo", stream=STREAM)
    )
    with emitter:
        emitted = time.monotonic()
        event_id = emitter.emit(event)
    echo(f"[5/6] emit: {EVENT_TYPE} {PRODUCT} price {OLD_PRICE} -> {NEW_PRICE} (source updated)")
    echo(f"      event id {event_id}; its plan, {len(plan.stages)} stages:")
    for n, stage in enumerate(plan.stages, start=1):
        for i, op in enumerate(stage):
            echo(f"      {f'stage {n}:' if i == 0 else '':<9} {_describe(op)}")

    _wait(bus, target, len([s for s in plan.stages if s]), timeout)
    took = (target.stages[-1].done - emitted) * 1000
    echo(f"[6/6] coordinator: purged in {took:.1f} ms, stage by stage:")
    for n, done in enumerate(target.stages, start=1):
        s = done.stats
        soft = f"; {s.soft_marked} of them soft: marked stale" if s.soft_marked else ""
        label = f"stage {n}:"
        echo(
            f"      {label:<9} {_keys(s.total)} ({s.keys} exact, {s.prefix_keys} by prefix, "
            f"{s.tag_keys} by tag{soft})"
        )

    result = _check(client, all_entries, event_id, plan)
    echo("      the entries now:")
    for entry in all_entries:
        state = _state(client, entry.key)
        note = ""
        if state == "soft-stale":
            left = client.pttl(entry.key) / 1000
            note = f"  readable as stale for {left:.0f} s more, while one reader refills"
        echo(f"      {state:<10}  {entry.key}{note}")
    refilled = json.loads(
        cache.get_or_fill(f"catalog:product:{PRODUCT}", lambda: _row(all_entries[0], source))
    )
    total_stale = sum(e.stale for e in all_entries)
    total_other = len(all_entries) - total_stale
    echo(
        f"result: {result.stale_flushed}/{total_stale} stale entries flushed "
        f"({result.stale_flushed - result.stale_soft} deleted, {result.stale_soft} kept as "
        f"stale for their grace window), {result.unrelated_kept}/{total_other} unrelated "
        f"entries untouched"
    )
    echo(
        f"        a reader now refills catalog:product:{PRODUCT} from the source: "
        f"price_cents {refilled['price_cents']}"
    )
    for key in result.stale_left:
        echo(f"        STILL STALE: {key}")
    for key in result.unrelated_lost:
        echo(f"        WRONGLY PURGED: {key}")
    return result


def _row(entry: Entry, source: dict[str, int]) -> bytes:
    product = OTHER_PRODUCT if OTHER_PRODUCT in entry.key else PRODUCT
    return json.dumps(
        {"key": entry.key, "product_id": product, "price_cents": source[product]}
    ).encode()


def _keys(n: int) -> str:
    return f"{n} key" if n == 1 else f"{n} keys"


def _describe(op: FlushOp) -> str:
    extra = [f"target {op.target}"] if op.target != "default" else []
    extra += [op.mode] if op.mode != "delete" else []
    return f"{op.op:<6} {op.key}" + (f"  ({', '.join(extra)})" if extra else "")


def _wait(bus: Any, target: _RecordingTarget, stages: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = bus.backlog()
        if len(target.stages) >= stages and info.pending == 0 and info.lag == 0:
            return
        time.sleep(0.01)
    raise DamestoiletError(
        f"the coordinator did not purge the event within {timeout}s "
        f"({len(target.stages)} of {stages} stages done)"
    )


def _state(client: redis.Redis, key: str) -> str:
    if not client.exists(key):
        return "deleted"
    # a soft-purged entry carries the field ``stale`` (see runtime.redis._layout)
    if client.hexists(key, "stale"):
        return "soft-stale"
    return "kept"


def _check(
    client: redis.Redis, all_entries: Sequence[Entry], event_id: str, plan: Plan
) -> DemoResult:
    result = DemoResult(event_id, plan)
    for entry in all_entries:
        state = _state(client, entry.key)
        if entry.stale:
            if state == "kept":
                result.stale_left.append(entry.key)
            else:
                result.stale_flushed += 1
                result.stale_soft += state == "soft-stale"
        elif state == "kept":
            result.unrelated_kept += 1
        else:
            result.unrelated_lost.append(entry.key)
    return result


def _clean(client: redis.Redis) -> None:
    """Unlink the demo's keys: every key with ``demo-`` in its name (entries, tag sets),
    the demo's stream, and the done markers of the events on it; and take the entries out
    of the prefix index (which drops the index when nothing else is in it)."""
    raw: Any = client  # redis-py's stream replies are loosely typed
    doomed: list[Any] = list(raw.scan_iter(match="*demo-*", count=1000))
    if raw.exists(STREAM):
        ids = set()
        for _entry_id, fields in raw.xrange(STREAM):
            with contextlib.suppress(EnvelopeError):  # either stream encoding, 1 or 2
                ids.add(Envelope.from_fields(fields).id.encode())
        # the coordinator's done markers end with the event id
        for key in raw.scan_iter(match="damestoilet:done:*", count=1000):
            if key.rsplit(b":", 1)[-1] in ids:
                doomed.append(key)
        doomed.append(STREAM)
    # the index also holds entries the demo's purges already unlinked
    indexed = [member for member, _ in raw.zscan_iter(INDEX_KEY, match="*demo-*", count=1000)]
    if indexed:
        raw.zrem(INDEX_KEY, *indexed)
    if doomed:
        raw.unlink(*doomed)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
