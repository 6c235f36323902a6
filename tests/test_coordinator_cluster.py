"""The bus, emitter and coordinator on a real 3-primary Redis Cluster: keys in every slot
purged, dead letters on their own slot, reclaim, nothing left pending."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.cluster
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Emitter,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from damestoilet_contracts.runtime.redis._layout import done_key, tag_key
from tests.conftest import SCHEMAS
from tests.runtime_support import KeysChanged

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

STREAM = "cluster-events"


def _coordinator(client: redis.cluster.RedisCluster, **changes: object) -> Coordinator:
    config = CoordinatorConfig(
        **{"stream": STREAM, "consumer": "c1", "block_ms": 20, **changes}  # type: ignore[arg-type]
    )
    bus = RedisStreamBus(client, stream=STREAM, group=config.group, consumer=config.consumer)
    return Coordinator(bus, RedisPurgeTarget(client), RedisDoneStore(client), config)


def test_emit_then_coordinate_purges_keys_on_every_primary(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    client = redis_cluster_client
    keys = [f"product:{i}" for i in range(300)]
    for key in keys:
        client.set(key, 1)
        client.set(f"listing:{key}:page", 1)
    client.set("tagged", 1)
    client.sadd(tag_key("t"), "tagged")
    slots = {client.keyslot(k) for k in keys}
    assert len({client.nodes_manager.get_node_from_slot(s).name for s in slots}) == 3
    with Emitter(client, source="//tests", stream=STREAM) as emitter:
        ids = emitter.emit_many(
            [KeysChanged(keys=[k], prefixes=[f"listing:{k}:"]) for k in keys]
            + [KeysChanged(tags=["t"])]
        )
    worker = _coordinator(client)
    worker.run(stop_when_idle=True)
    assert sum(client.exists(k) for k in keys) == 0
    assert sum(client.exists(f"listing:{k}:page") for k in keys) == 0
    assert client.exists("tagged") == 0
    assert all(client.exists(done_key(i, worker.config.group)) for i in ids)
    assert worker.stats.events == 301
    assert client.xpending(STREAM, worker.config.group)["pending"] == 0


def test_malformed_entry_is_dead_lettered_on_a_cluster(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    client = redis_cluster_client
    client.xadd(STREAM, {"junk": b"1"})
    _coordinator(client).run(stop_when_idle=True)
    [(_, dead)] = client.xrange(f"{STREAM}:dlq")
    assert b"malformed envelope" in dead[b"dlq_reason"]
    assert client.xpending(STREAM, "damestoilet-coordinator")["pending"] == 0


def test_dead_consumer_entries_are_reclaimed_on_a_cluster(
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    client = redis_cluster_client
    client.set("a", 1)
    Emitter(client, source="//tests", stream=STREAM).emit(KeysChanged(keys=["a"]))
    dead = RedisStreamBus(client, stream=STREAM, consumer="dead")
    dead.ensure_group()
    assert len(dead.read_new(10, 0)) == 1
    time.sleep(0.1)
    _coordinator(client, consumer="alive", claim_min_idle_ms=50).run(stop_when_idle=True)
    assert client.exists("a") == 0
    assert client.xpending(STREAM, "damestoilet-coordinator")["pending"] == 0


def test_cli_emit_and_coordinator_process_on_a_cluster(
    redis_cluster_url: str, redis_cluster_client: redis.cluster.RedisCluster, tmp_path: Path
) -> None:
    client = redis_cluster_client
    payloads = [{"asset_id": f"a{i}", "variant_ids": ["v1"], "product_id": "p1"} for i in range(50)]
    for p in payloads:
        client.set(f"/assets/{p['asset_id']}/v1", 1)
    result = CliRunner().invoke(
        main,
        ["emit", str(SCHEMAS), "assets.v1.AssetReplaced", "--redis", redis_cluster_url,
         "--cluster", "--stream", STREAM, "--json", "-", "--quiet"],
        input="".join(json.dumps(p) + "\n" for p in payloads),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", redis_cluster_url, "--cluster", "--stream", STREAM,
        "--block-ms", "50",
    ]  # fmt: skip
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while client.xinfo_groups(STREAM) == [] or client.xinfo_groups(STREAM)[0]["lag"] != 0:
                assert time.monotonic() < deadline, (tmp_path / "log").read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sum(client.exists(f"/assets/{p['asset_id']}/v1") for p in payloads) == 0
    assert client.xpending(STREAM, "damestoilet-coordinator")["pending"] == 0


def test_emitters_from_url_reach_a_cluster(
    redis_cluster_url: str, redis_cluster_client: redis.cluster.RedisCluster
) -> None:
    import asyncio

    from damestoilet_contracts.runtime import AsyncEmitter

    with Emitter.from_url(redis_cluster_url, source="//t", stream=STREAM, cluster=True) as sync:
        first = sync.emit_many([KeysChanged(keys=["a"]), KeysChanged(keys=["b"])])

    async def main() -> list[str]:
        async with AsyncEmitter.from_url(
            redis_cluster_url, source="//t", stream=STREAM, cluster=True
        ) as emitter:
            return await emitter.emit_many([KeysChanged(keys=["c"]), KeysChanged(keys=["d"])])

    second = asyncio.run(main())
    ids = [Envelope.from_fields(f).id for _, f in redis_cluster_client.xrange(STREAM)]
    assert ids == first + second
