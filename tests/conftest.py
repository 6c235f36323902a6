"""Session fixtures: a real redis-server started by the test session itself; the other
servers' fixtures live in ``tests/fixtures_<name>.py``, listed in ``pytest_plugins``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import redis
import redis.cluster

from tests.servers import redis_cluster, redis_server

pytest_plugins = [
    # The project's own pytest plugin (the pytest11 entry point; listed for a checkout whose
    # install predates it), and pytester to run a user's test file against it.
    "damestoilet_contracts.testing.plugin",
    "pytester",
    "tests.fixtures_kafka",
    "tests.fixtures_nats",
    "tests.fixtures_postgres",
    "tests.fixtures_typescript",
    "tests.fixtures_varnish",
]

# Eight sessions share two cores: a single example can take 300 ms where it takes 1 ms alone,
# which hypothesis's per-example deadline (200 ms) reports as a failure. Properties, not
# timings, are what these tests check (benchmarks time things, next to a baseline).
hypothesis.settings.register_profile("shared-machine", deadline=None)
hypothesis.settings.load_profile("shared-machine")

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a standalone redis-server that lives as long as the test session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as (port, _proc):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on an emptied database: every test starts from no keys."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of one node of a real 3-primary Redis Cluster that lives as long as the test
    session (a cluster client discovers the others from it)."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as ports:
        yield f"redis://127.0.0.1:{ports[0]}"


@pytest.fixture
def redis_cluster_client(redis_cluster_url: str) -> Iterator[redis.cluster.RedisCluster]:
    """A cluster client on emptied primaries: every test starts from no keys."""
    client = redis.cluster.RedisCluster.from_url(redis_cluster_url)
    client.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    yield client
    client.close()
