"""The test session really starts and reaches its own redis-server."""

from __future__ import annotations

import redis


def test_redis_fixture_is_a_real_server(redis_client: redis.Redis) -> None:
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"
    assert redis_client.info("server")["redis_version"].startswith("7")
