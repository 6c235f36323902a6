"""A flush agent and the consistency checker on a real 3-primary Redis Cluster: keys on every
primary purged for the agent's target only, prefix scans and stale keys found on every node."""

from __future__ import annotations

import time

import pytest
import redis.cluster

from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.runtime import (
    Cache,
    CoordinatorConfig,
    Emitter,
    Envelope,
    FlushAgent,
    L1Cache,
    Verifier,
)

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

STREAM = "cluster-agent-events"
TYPE = "test.v1.ProductChanged"


def _event(i: int) -> Envelope:
    ops = (
        FlushOp("key", "pricing", f"price:{i}"),
        FlushOp("prefix", "pricing", f"price-list:{i}:"),
        FlushOp("key", "default", f"product:{i}"),
    )
    return Envelope.new(
        type=TYPE, data=b"", plan=Plan(TYPE, (ops,)), source="//t", datacontenttype="x"
    )


def test_agent_and_verify_cover_every_primary(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    client = redis_cluster_client
    cache = Cache(client)
    n = 60
    for i in range(n):
        for key in (f"price:{i}", f"price-list:{i}:a", f"product:{i}"):
            cache.get_or_fill(key, lambda: b"row")
    nodes = {
        client.nodes_manager.get_node_from_slot(client.keyslot(f"price:{i}")).name for i in range(n)
    }
    assert len(nodes) == 3
    time.sleep(0.002)
    with Emitter(client, source="//t", stream=STREAM) as emitter:
        emitter.emit_envelopes([_event(i) for i in range(n)])
    l1: L1Cache[str] = L1Cache()
    l1.set("price:0", "cached")
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    agent = FlushAgent(client, ["pricing"], config, on_purge=[l1])
    agent.run(stop_when_idle=True)
    assert agent.stats.events == n
    assert "price:0" not in l1
    assert sum(client.exists(f"price:{i}", f"price-list:{i}:a") for i in range(n)) == 0
    assert sum(client.exists(f"product:{i}") for i in range(n)) == n

    pricing = Verifier(client, targets={"pricing"}).run(STREAM, sample=n, delay=0)
    assert (pricing.consistent, pricing.inconsistent) == (n, 0)
    everything = Verifier(client).run(STREAM, sample=n, delay=0)
    assert (everything.consistent, everything.inconsistent) == (0, n)
    assert everything.keys == {"absent": n, "stale": n}
