"""Fixtures of the NATS JetStream tests: one nats-server per session; every test gets its
own subject (a stream of its own), so nothing carries over between tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.servers_nats import nats_server


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a nats-server with JetStream that lives as long as the test session."""
    with nats_server(tmp_path_factory.mktemp("nats")) as (port, _proc):
        yield f"nats://127.0.0.1:{port}"


@pytest.fixture
def nats_subject() -> str:
    """A subject (and so a JetStream stream) no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}:events"
