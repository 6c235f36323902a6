"""Purge targets routed by name (``--target NAME=URL``): each target purged on its own server,
an unbound target dead-lettered with the reason (never skipped), a graph naming an unbound
target refused at start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner, Result

from damestoilet_contracts._errors import ConfigError, UnboundTargetError
from damestoilet_contracts.cli import main
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    FlushAgent,
    RedisPurgeTarget,
    TargetRouter,
)
from tests.conftest import SCHEMAS
from tests.servers import redis_server

pytestmark = pytest.mark.redis

STREAM = "routed-events"


@pytest.fixture(scope="module")
def two_more_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two more redis-servers next to the session's: ``pricing`` and ``cdn``."""
    with (
        redis_server(tmp_path_factory.mktemp("redis-pricing")) as (p1, _),
        redis_server(tmp_path_factory.mktemp("redis-cdn")) as (p2, _),
    ):
        yield f"redis://127.0.0.1:{p1}/0", f"redis://127.0.0.1:{p2}/0"


@pytest.fixture
def servers(
    redis_url: str, redis_client: redis.Redis, two_more_redis: tuple[str, str]
) -> Iterator[dict[str, redis.Redis]]:
    clients = {"default": redis_client}
    for name, url in zip(("pricing", "cdn"), two_more_redis, strict=True):
        clients[name] = redis.Redis.from_url(url)
        clients[name].flushall()
    yield clients
    for name in ("pricing", "cdn"):
        clients[name].close()


def _envelope(*stages: list[tuple[str, str]]) -> Envelope:
    plan = Plan(
        "test.v1.Routed",
        tuple(tuple(FlushOp("key", target, key) for target, key in stage) for stage in stages),
    )
    return Envelope.new(
        type=plan.type, data=b"", plan=plan, source="//t", datacontenttype="avro/binary"
    )


def _dlq(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.xrange(f"{STREAM}:dlq")]


def test_a_plan_over_three_targets_purges_each_on_its_own_server(
    redis_url: str, two_more_redis: tuple[str, str], servers: dict[str, redis.Redis]
) -> None:
    for name, client in servers.items():
        client.set(f"{name}:k", 1)
        client.set("shared:k", 1)  # the same key on every server: only its own is purged
    Emitter(servers["default"], source="//t", stream=STREAM).emit_envelopes(
        [
            _envelope([("default", "default:k"), ("pricing", "pricing:k")], [("cdn", "cdn:k")]),
            _envelope([("pricing", "shared:k")]),
        ]
    )
    pricing_url, cdn_url = two_more_redis
    worker = Coordinator.from_url(
        None,
        CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20),
        bus_url=redis_url,
        targets={"default": redis_url, "pricing": pricing_url, "cdn": cdn_url},
    )
    worker.run(stop_when_idle=True)
    for name, client in servers.items():
        assert client.exists(f"{name}:k") == 0, name
    assert servers["pricing"].exists("shared:k") == 0
    assert servers["default"].exists("shared:k") == 1
    assert servers["cdn"].exists("shared:k") == 1
    assert worker.stats.events == 2
    assert _dlq(servers["default"]) == []


def test_a_plan_naming_an_unbound_target_is_dead_lettered_with_the_target_named(
    redis_url: str, servers: dict[str, redis.Redis]
) -> None:
    servers["default"].set("default:k", 1)
    Emitter(servers["default"], source="//t", stream=STREAM).emit_envelopes(
        [_envelope([("default", "default:k"), ("cdn", "cdn:k")])]
    )
    worker = Coordinator.from_url(
        None,
        CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20),
        bus_url=redis_url,
        targets={"default": redis_url},
    )
    worker.run(stop_when_idle=True)
    [dead] = _dlq(servers["default"])
    assert b"cdn" in dead[b"dlq_reason"]
    assert b"--target cdn=URL" in dead[b"dlq_reason"]
    # nothing of the event was purged: a partial purge would hide the missing binding
    assert servers["default"].exists("default:k") == 1
    assert worker.stats.dead_lettered == 1


def test_redis_url_serves_every_target_not_bound_on_its_own(
    redis_url: str, two_more_redis: tuple[str, str], servers: dict[str, redis.Redis]
) -> None:
    servers["default"].set("cdn:k", 1)
    servers["pricing"].set("pricing:k", 1)
    Emitter(servers["default"], source="//t", stream=STREAM).emit_envelopes(
        [_envelope([("cdn", "cdn:k"), ("pricing", "pricing:k")])]
    )
    worker = Coordinator.from_url(
        redis_url,
        CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20),
        targets={"pricing": two_more_redis[0]},
    )
    worker.run(stop_when_idle=True)
    assert servers["default"].exists("cdn:k") == 0
    assert servers["pricing"].exists("pricing:k") == 0


def test_an_agent_purges_its_target_on_its_own_server_and_ignores_the_others(
    redis_url: str, two_more_redis: tuple[str, str], servers: dict[str, redis.Redis]
) -> None:
    servers["pricing"].set("pricing:k", 1)
    servers["default"].set("default:k", 1)
    Emitter(servers["default"], source="//t", stream=STREAM).emit_envelopes(
        [_envelope([("default", "default:k"), ("pricing", "pricing:k")])]
    )
    agent = FlushAgent.from_url(
        None,
        ["pricing"],
        CoordinatorConfig(stream=STREAM, consumer="a1", block_ms=20),
        bus_url=redis_url,
        target_urls={"pricing": two_more_redis[0]},
    )
    agent.run(stop_when_idle=True)
    assert servers["pricing"].exists("pricing:k") == 0
    assert servers["default"].exists("default:k") == 1  # not the agent's target
    assert _dlq(servers["default"]) == []


def test_router_raises_for_an_op_of_an_unbound_target(redis_client: redis.Redis) -> None:
    router = TargetRouter({"default": RedisPurgeTarget(redis_client)})
    assert router.is_bound("default") and not router.is_bound("cdn")
    with pytest.raises(UnboundTargetError, match="--target cdn=URL"):
        router.purge_stage([FlushOp("key", "cdn", "k")])


def test_router_calls_each_backend_once_per_stage_in_order() -> None:
    calls: list[tuple[str, list[str]]] = []

    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        def purge_stage(self, ops: list[FlushOp]) -> None:
            calls.append((self.name, [op.key for op in ops]))

    a, b = Recording("a"), Recording("b")
    router = TargetRouter({"pricing": b}, default=a)
    router.purge_stage(
        [FlushOp("key", "default", "1"), FlushOp("key", "pricing", "2"), FlushOp("key", "x", "3")]
    )
    assert calls == [("a", ["1", "3"]), ("b", ["2"])]


def test_from_url_without_any_purge_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--redis"):
        Coordinator.from_url(None, bus_url="redis://127.0.0.1:1/0")


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_coordinator_refuses_to_start_when_the_graph_names_an_unbound_target(
    redis_url: str,
) -> None:
    result = _cli(
        "coordinator",
        "--bus",
        redis_url,
        "--target",
        f"default={redis_url}",
        "--flush-graph",
        str(SCHEMAS / "flush-graph.yaml"),
    )
    assert result.exit_code == 1, result.stderr
    assert "cdn" in result.stderr and "pricing" in result.stderr
    assert "--target cdn=URL" in result.stderr


def test_coordinator_without_redis_or_target_is_a_usage_error() -> None:
    result = _cli("coordinator", "--bus", "redis://127.0.0.1:1/0")
    assert result.exit_code == 2
    assert "--target" in result.stderr


def test_a_malformed_target_binding_is_a_usage_error() -> None:
    result = _cli("coordinator", "--target", "pricing")
    assert result.exit_code == 2
    assert "NAME=URL" in result.stderr


def test_unknown_bus_scheme_says_did_you_mean(redis_url: str) -> None:
    result = _cli("coordinator", "--redis", redis_url, "--bus", "nast://127.0.0.1:4222")
    assert result.exit_code == 1
    assert "did you mean nats://" in result.stderr
