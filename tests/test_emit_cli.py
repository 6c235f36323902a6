"""``damestoilet emit``: payloads of the reference schemas planned, encoded, emitted, and then
purged by the coordinator."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.runtime import (
    Coordinator,
    CoordinatorConfig,
    Envelope,
    RedisDoneStore,
    RedisPurgeTarget,
    RedisStreamBus,
)
from tests.conftest import SCHEMAS

pytestmark = pytest.mark.redis

STREAM = "cli-events"
PRICE = {"product_id": "p1", "store_ids": ["s1", "s2"], "category_id": "c1", "price_cents": 5}
ASSET = {"asset_id": "a1", "variant_ids": ["v1"], "product_id": "p1"}


def _emit(redis_url: str, type_name: str, payload: str, stdin: str | None = None) -> list[str]:
    result = CliRunner().invoke(
        main,
        [
            "emit",
            str(SCHEMAS),
            type_name,
            "--redis",
            redis_url,
            "--stream",
            STREAM,
            "--json",
            payload,
        ],
        input=stdin,
    )
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if line]


def _envelopes(client: redis.Redis) -> list[Envelope]:
    return [Envelope.from_fields(f) for _, f in client.xrange(STREAM)]


def test_emit_avro_event_carries_plan_and_avro_payload(
    redis_url: str, redis_client: redis.Redis
) -> None:
    [event_id] = _emit(redis_url, "catalog.v1.ProductPriceChanged", json.dumps(PRICE))
    [env] = _envelopes(redis_client)
    assert env.id == event_id
    assert env.datacontenttype == "avro/binary"
    assert env.plan is not None and env.plan.type == "catalog.v1.ProductPriceChanged"
    assert "catalog:product:p1" in [op.key for op in env.plan.ops]
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "P",
            "fields": [
                {"name": "product_id", "type": "string"},
                {"name": "store_ids", "type": {"type": "array", "items": "string"}},
                {"name": "category_id", "type": "string"},
                {"name": "price_cents", "type": "long"},
            ],
        }
    )
    assert fastavro.schemaless_reader(io.BytesIO(env.data), schema) == PRICE


def test_emit_proto_event_in_bulk_from_stdin(redis_url: str, redis_client: redis.Redis) -> None:
    lines = [json.dumps({**ASSET, "asset_id": f"a{i}"}) for i in range(2500)]
    ids = _emit(redis_url, "assets.v1.AssetReplaced", "-", "\n".join(lines) + "\n")
    envs = _envelopes(redis_client)
    assert [e.id for e in envs] == ids
    assert len(ids) == 2500
    assert envs[0].datacontenttype == "application/x-protobuf"
    assert envs[0].data.startswith(b"\n\x02a0")  # field 1, asset_id = "a0"


def test_emitted_events_are_purged_by_the_coordinator(
    redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.mset({"catalog:product:p1": 1, "catalog:listing:c1:page1": 1})
    _emit(redis_url, "catalog.v1.ProductPriceChanged", json.dumps(PRICE))
    config = CoordinatorConfig(stream=STREAM, consumer="c1", block_ms=20)
    bus = RedisStreamBus(redis_client, stream=STREAM, consumer="c1")
    worker = Coordinator(bus, RedisPurgeTarget(redis_client), RedisDoneStore(redis_client), config)
    worker.run(stop_when_idle=True)
    assert redis_client.exists("catalog:product:p1", "catalog:listing:c1:page1") == 0
    assert worker.stats.events == 1


@pytest.mark.parametrize(
    ("type_name", "payload", "message"),
    [
        ("catalog.v1.Nope", json.dumps(PRICE), "unknown event type"),
        ("catalog.v1.ProductPriceChanged", "{", "not valid JSON"),
        ("catalog.v1.ProductPriceChanged", "[1]", "must be a JSON object"),
        (
            "catalog.v1.ProductPriceChanged",
            json.dumps({**PRICE, "price_cents": "x"}),
            "field 'price_cents' must be an integer",
        ),
        ("catalog.v1.ProductPriceChanged", json.dumps({**PRICE, "product_id": ""}), "empty"),
        (
            "assets.v1.AssetReplaced",
            json.dumps({**ASSET, "asset_id": 5}),
            "field 'asset_id' must be a string, got number 5",
        ),
    ],
)
def test_bad_input_exits_one_and_emits_nothing(
    redis_url: str, redis_client: redis.Redis, type_name: str, payload: str, message: str
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "emit",
            str(SCHEMAS),
            type_name,
            "--redis",
            redis_url,
            "--stream",
            STREAM,
            "--json",
            payload,
        ],
    )
    assert result.exit_code == 1
    assert message in result.output
    assert redis_client.exists(STREAM) == 0


def test_bulk_error_names_its_line(redis_url: str, redis_client: redis.Redis) -> None:
    stdin = json.dumps(ASSET) + "\n\nnot json\n"
    result = CliRunner().invoke(
        main,
        ["emit", str(SCHEMAS), "assets.v1.AssetReplaced", "--redis", redis_url, "--stream", STREAM,
         "--json", "-"],
        input=stdin,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "line 3: not valid JSON" in result.output


def test_bulk_checks_every_line_before_sending_any(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A bad line 2 of 3 sends nothing, and every bad line is named, not just the first."""
    lines = [json.dumps(ASSET), json.dumps({**ASSET, "asset_id": 5}), "[]", json.dumps(ASSET)]
    result = CliRunner().invoke(
        main,
        ["emit", str(SCHEMAS), "assets.v1.AssetReplaced", "--redis", redis_url, "--stream", STREAM,
         "--json", "-"],
        input="\n".join(lines) + "\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "line 2: " in result.output and "line 3: " in result.output
    assert "2 bad payload(s); nothing was emitted" in result.output
    assert redis_client.exists(STREAM) == 0
    good = CliRunner().invoke(
        main,
        ["emit", str(SCHEMAS), "assets.v1.AssetReplaced", "--redis", redis_url, "--stream", STREAM,
         "--json", "-", "-q"],
        input="\n".join([lines[0], lines[3]]) + "\n",
    )  # fmt: skip
    assert good.exit_code == 0, good.output
    assert redis_client.xlen(STREAM) == 2
