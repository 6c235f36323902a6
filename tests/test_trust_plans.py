"""Issue 9, finding 3: plans from the stream are checked before anything is deleted, against
the contracts when the coordinator has them, and always against its own namespace; on the
real redis-server, with the reference contracts of ``schemas/``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import FLUSH_SPECS, ProductPriceChanged
from damestoilet_contracts.cli import main
from damestoilet_contracts.compiler import flush_specs
from damestoilet_contracts.loaders import load_contracts
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    KeyPattern,
    PlanChecker,
    RedisPurgeTarget,
    RedisStreamBus,
    load_flush_specs,
)
from damestoilet_contracts.runtime.redis._layout import done_key

REPO = Path(__file__).resolve().parent.parent
SPECS = flush_specs(load_contracts(REPO / "schemas"))
STREAM = "damestoilet:events"
FAST = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20, retry_base_s=0.01)
PRICE = "catalog.v1.ProductPriceChanged"


def _forge(client: redis.Redis, type_: str, *ops: FlushOp) -> None:
    """XADD an envelope with a hand-made plan, as anyone who can write the stream can."""
    env = Envelope.new(
        type=type_,
        data=b"",
        plan=Plan(type_, (tuple(ops),)),
        source="//attacker",
        datacontenttype="avro/binary",
    )
    client.xadd(STREAM, env.to_fields(version=2))


def _run(client: redis.Redis, specs: object = None) -> Coordinator:
    bus = RedisStreamBus(client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    worker = Coordinator(bus, RedisPurgeTarget(client), client, FAST, flush_specs=specs)  # type: ignore[arg-type]
    worker.run(stop_when_idle=True)
    return worker


def _reasons(client: redis.Redis) -> list[str]:
    return [f[b"dlq_reason"].decode() for _, f in client.xrange(f"{STREAM}:dlq")]


def _price_changed(product: str = "p1") -> ProductPriceChanged:
    return ProductPriceChanged(
        product_id=product, store_ids=["s1"], category_id="c1", price_cents=5
    )


# -- with the contracts -------------------------------------------------------------------------


def test_an_undeclared_type_deletes_nothing_and_is_dead_lettered(redis_client: redis.Redis) -> None:
    redis_client.set("users:password-reset:abc", "token")
    _forge(
        redis_client, "evil.v1.Undeclared", FlushOp("key", "default", "users:password-reset:abc")
    )
    worker = _run(redis_client, SPECS)
    assert redis_client.get("users:password-reset:abc") == b"token"
    assert _reasons(redis_client) == [
        "plan refused: type evil.v1.Undeclared is not declared in the contracts"
    ]
    assert worker.stats.dead_lettered == 1


def test_a_declared_type_with_a_foreign_prefix_deletes_no_session(
    redis_client: redis.Redis,
) -> None:
    sessions = [f"users:session:{i}" for i in range(1000)]
    redis_client.mset(dict.fromkeys(sessions, 1))
    _forge(redis_client, PRICE, FlushOp("prefix", "default", "users:session:"))
    _run(redis_client, SPECS)
    assert redis_client.exists(*sessions) == 1000
    [reason] = _reasons(redis_client)
    assert reason == (
        "plan refused: prefix 'users:session:' (target default, delete) matches none of its "
        "templates (catalog:listing:{category_id}:)"
    )


@pytest.mark.parametrize(
    ("op", "why"),
    [
        (FlushOp("key", "default", "catalog:product:p1", "soft"), "in mode soft"),
        (FlushOp("tag", "default", "category:c1", "delete"), "matches none of its templates"),
        (FlushOp("key", "search", "catalog:product:p1"), "purges by key on target search"),
        (FlushOp("key", "default", "catalog:product:"), "matches none of its templates"),
        (FlushOp("key", "default", "catalog:productX"), "matches none of its templates"),
        (FlushOp("key", "pricing", "pricing::p1"), "matches none of its templates"),
    ],
)  # fmt: skip
def test_ops_a_rule_cannot_produce_are_refused(
    redis_client: redis.Redis, op: FlushOp, why: str
) -> None:
    """Wrong mode, wrong target, an empty placeholder, a wrong literal part."""
    _forge(redis_client, PRICE, op)
    _run(redis_client, SPECS)
    [reason] = _reasons(redis_client)
    assert why in reason


def test_emitted_events_pass_the_check_and_are_purged(redis_client: redis.Redis) -> None:
    plan = _price_changed().flush_plan()
    keys = [op.key for op in plan.ops if op.op == "key"]
    redis_client.mset(dict.fromkeys(keys, 1))
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        emitter.emit(_price_changed())
    worker = _run(redis_client, SPECS)
    assert worker.stats.events == 1
    assert redis_client.exists(*keys) == 0
    assert _reasons(redis_client) == []


def test_a_plan_over_the_cap_is_refused_before_any_purge(redis_client: redis.Redis) -> None:
    redis_client.set("catalog:product:p0", 1)
    ops = [FlushOp("key", "default", f"catalog:product:p{i}") for i in range(11)]
    _forge(redis_client, PRICE, *ops)
    bus = RedisStreamBus(redis_client, stream=STREAM, group=FAST.group, consumer=FAST.consumer)
    worker = Coordinator(bus, RedisPurgeTarget(redis_client), redis_client, FAST, flush_specs=SPECS)
    worker.checker.cap = 10
    worker.run(stop_when_idle=True)
    assert redis_client.exists("catalog:product:p0") == 1
    assert "more than 10 operations" in _reasons(redis_client)[0]


def test_two_hundred_foreign_prefixes_are_refused_without_a_scan(redis_client: redis.Redis) -> None:
    """The 3 KB event that held a batch for 22 s on 200k keys is refused in one check."""
    redis_client.mset({f"other:{i}": 1 for i in range(20_000)})
    ops = [FlushOp("prefix", "default", f"nothing:{i}:") for i in range(200)]
    _forge(redis_client, PRICE, *ops)
    started = time.monotonic()
    _run(redis_client, SPECS)
    assert time.monotonic() - started < 5
    assert "matches none of its templates" in _reasons(redis_client)[0]


def test_generated_flush_specs_equal_the_contracts_and_are_loaded_from_handlers() -> None:
    assert dict(FLUSH_SPECS) == SPECS
    assert load_flush_specs("codegen") == SPECS
    assert load_flush_specs("tests.runtime_support") is None  # a package without them


# -- without contracts: the namespace guard ----------------------------------------------------


def test_done_markers_cannot_be_wiped_by_a_prefix(redis_client: redis.Redis) -> None:
    markers = [done_key(f"id{i}", FAST.group) for i in range(50)]
    redis_client.mset(dict.fromkeys(markers, 1))
    for prefix in ("damestoilet:done:", "damestoilet", "d", "damestoilet:e"):
        _forge(redis_client, "any.v1.Type", FlushOp("prefix", "default", prefix))
    _run(redis_client)
    assert redis_client.exists(*markers) == 50
    assert len(_reasons(redis_client)) == 4
    assert all("touches the coordinator's own keys" in r for r in _reasons(redis_client))


def test_the_stream_and_its_backlog_cannot_be_deleted_by_a_key(redis_client: redis.Redis) -> None:
    _forge(redis_client, "any.v1.Type", FlushOp("key", "default", STREAM))
    with Emitter(redis_client, source="//tests", stream=STREAM) as emitter:
        emitter.emit_many([_price_changed(f"p{i}") for i in range(2500)])
    worker = _run(redis_client)
    assert worker.stats.events == 2500
    assert redis_client.exists(STREAM) == 1
    assert _reasons(redis_client) == [
        "plan refused: key 'damestoilet:events' (target default, delete) touches the "
        "coordinator's own keys (damestoilet:* or its streams)"
    ]


def test_a_stream_outside_the_namespace_is_guarded_too() -> None:
    checker = PlanChecker(protected=["events", "events:dlq"])
    assert checker.check(Plan("t", ((FlushOp("key", "default", "events"),),))) is not None
    assert checker.check(Plan("t", ((FlushOp("prefix", "default", "events:"),),))) is not None
    assert checker.check(Plan("t", ((FlushOp("key", "default", "events:1"),),))) is None
    # A tag op reads damestoilet:tag:<tag>, the set it owns.
    assert checker.check(Plan("t", ((FlushOp("tag", "default", "damestoilet"),),))) is None


# -- the key matcher -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "key", "expected"),
    [
        ("catalog:product:{id}", "catalog:product:p1", True),
        ("catalog:product:{id}", "catalog:product:", False),
        ("catalog:product:{id}", "xcatalog:product:p1", False),
        ("pricing:{store}:{id}", "pricing:a:b:c", True),
        ("pricing:{store}:{id}", "pricing::b", False),
        ("pricing:{store}:{id}", "pricing:a:", False),
        ("{a}{b}", "x", False),
        ("{a}{b}", "xy", True),
        ("literal", "literal", True),
        ("literal", "literal2", False),
        ("{{braces}}:{id}", "{braces}:1", True),
    ],
)
def test_key_patterns_take_non_empty_values_for_placeholders(
    template: str, key: str, expected: bool
) -> None:
    assert KeyPattern.parse(template).matches(key) is expected


_segment = st.text(alphabet="ab:{}", max_size=4).map(
    lambda s: s.replace("{", "{{").replace("}", "}}")
)


@settings(deadline=None)
@given(st.lists(_segment, min_size=1, max_size=4), st.data())
def test_every_rendered_key_matches_its_template(literals: list[str], data: st.DataObject) -> None:
    template = "{f}".join(literals)
    pattern = KeyPattern.parse(template)
    values = [data.draw(st.text(alphabet="ab:", min_size=1, max_size=4)) for _ in literals[1:]]
    plain = [lit.replace("{{", "{").replace("}}", "}") for lit in literals]
    key = plain[0] + "".join(v + lit for v, lit in zip(values, plain[1:], strict=True))
    assert pattern.matches(key)


def test_the_matcher_is_linear_on_hostile_keys() -> None:
    pattern = KeyPattern.parse("a{x}a{y}a{z}a{w}b")
    started = time.monotonic()
    for _ in range(100):
        assert not pattern.matches("a" * 4000)
    assert time.monotonic() - started < 2


# -- the command ---------------------------------------------------------------------------------


def test_coordinator_without_contracts_warns_and_bad_contracts_exit_1(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "broken.avsc").write_text("{not json")
    result = CliRunner().invoke(
        main, ["coordinator", "--redis", redis_url, "--schemas", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "contracts do not load" in result.output
    result = CliRunner().invoke(
        main, ["coordinator", "--redis", redis_url, "--schemas", str(tmp_path / "missing")]
    )
    assert result.exit_code == 2
