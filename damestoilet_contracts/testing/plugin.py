"""The pytest plugin (entry point ``pytest11``): fixtures for testing a service's contracts.

Installed with the package, so a service's own tests can ask for these by name::

    def test_a_price_change_purges_the_product(assert_purges):
        assert_purges(ProductPriceChanged(product_id="p1", ...), ["catalog:product:p1", ...])

=========================  =========  ====================================================
fixture                    scope      gives
=========================  =========  ====================================================
damestoilet_redis_url      session    a throwaway redis-server on 127.0.0.1 (its URL)
damestoilet_redis          test       a client on that server, its database emptied first
damestoilet_stream         test       a stream name of this test's own
damestoilet_emitter        test       an :class:`Emitter` onto that stream
damestoilet_drain          test       ``drain()``: a coordinator purges the stream, returns
assert_purges              test       ``assert_purges(event, keys)``: plan and real purge
damestoilet_memory_bus     test       a :class:`MemoryBus` for pure unit tests (no Redis)
=========================  =========  ====================================================

``--damestoilet-redis-exec PATH`` names the redis-server to run (default: the one on PATH).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from damestoilet_contracts.runtime import Emitter
from damestoilet_contracts.testing._memory import MemoryBus
from damestoilet_contracts.testing._purges import Drain, PurgeCheck
from damestoilet_contracts.testing._server import redis_server


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("damestoilet", "damestoilet contract testing")
    group.addoption(
        "--damestoilet-redis-exec",
        default="redis-server",
        metavar="PATH",
        help="the redis-server the damestoilet fixtures start (default: redis-server on PATH)",
    )


@pytest.fixture(scope="session")
def damestoilet_redis_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of a redis-server started for this test session and stopped after it."""
    executable = request.config.getoption("--damestoilet-redis-exec")
    try:
        server = redis_server(tmp_path_factory.mktemp("damestoilet-redis"), executable)
        url = server.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def damestoilet_redis(damestoilet_redis_url: str) -> Iterator[redis.Redis]:
    """A client on the session's redis-server; every test starts from an empty database."""
    client = redis.Redis.from_url(damestoilet_redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def damestoilet_stream() -> str:
    """A stream name no other test uses."""
    return f"damestoilet-test:{uuid.uuid4().hex}"


@pytest.fixture
def damestoilet_emitter(
    damestoilet_redis: redis.Redis, damestoilet_stream: str
) -> Iterator[Emitter]:
    """An emitter onto this test's stream (source ``//tests``), closed after the test."""
    with Emitter(damestoilet_redis, source="//tests", stream=damestoilet_stream) as emitter:
        yield emitter


@pytest.fixture
def damestoilet_drain(damestoilet_redis_url: str, damestoilet_stream: str) -> Drain:
    """Call it to have a coordinator purge every event on this test's stream, then return."""
    return Drain(damestoilet_redis_url, damestoilet_stream)


@pytest.fixture
def assert_purges(
    damestoilet_redis: redis.Redis, damestoilet_emitter: Emitter, damestoilet_drain: Drain
) -> PurgeCheck:
    """``assert_purges(event, keys)``: the event's plan names exactly ``keys``, and emitting it
    through a real stream and coordinator purges a cache entry under every one of them."""
    return PurgeCheck(damestoilet_redis, damestoilet_emitter, damestoilet_drain)


@pytest.fixture
def damestoilet_memory_bus() -> MemoryBus:
    """An in-memory bus: ``.emitter()`` records what a service emits, with no Redis."""
    return MemoryBus()
