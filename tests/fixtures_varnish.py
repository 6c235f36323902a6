"""Fixtures of the Varnish tests: one origin + varnishd per session (and one that asks for a
shared secret), and a fresh namespace of paths and tags per test so tests never see each
other's objects."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.servers_varnish import CdnStack, cdn_stack, varnish_available

SECRET = "t0ps3cret"
_COUNTER = itertools.count()


@pytest.fixture(scope="session")
def varnish_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdnStack]:
    """An origin and a varnishd allowing 127.0.0.1 only to purge, for the session."""
    if not varnish_available():
        pytest.fail("varnishd or the xkey vmod is missing: run `bash scripts/setup.sh`")
    with cdn_stack(tmp_path_factory.mktemp("varnish")) as stack:
        yield stack


@pytest.fixture(scope="session")
def varnish_secret_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdnStack]:
    """Like :func:`varnish_stack`, but its VCL also asks for the shared secret ``SECRET``."""
    with cdn_stack(tmp_path_factory.mktemp("varnish-secret"), secret=SECRET) as stack:
        yield stack


@dataclass(frozen=True, slots=True)
class Cdn:
    """The session's stack, with a namespace of this test's own."""

    stack: CdnStack
    ns: str
    client: httpx.Client

    def path(self, rest: str) -> str:
        """``/<ns>/<rest>``: a path no other test uses."""
        return f"/{self.ns}/{rest.lstrip('/')}"

    def tag(self, name: str) -> str:
        """A surrogate key no other test uses."""
        return f"{self.ns}:{name}"

    def put(self, rest: str, body: bytes, **options: object) -> str:
        """Serve ``body`` at :meth:`path` ``rest`` from the origin; returns the path."""
        path = self.path(rest)
        self.stack.origin.put(path, body, **options)
        return path

    def get(self, path: str) -> bytes:
        """GET ``path`` through Varnish; fails the test on anything but a 200."""
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.content

    def fetched(self, path: str) -> int:
        """How many times the origin served ``path``."""
        return self.stack.origin.fetched(path)


@pytest.fixture
def cdn(varnish_stack: CdnStack) -> Iterator[Cdn]:
    """The session's Varnish with a namespace of this test's own."""
    with httpx.Client(base_url=varnish_stack.url, timeout=10) as client:
        yield Cdn(varnish_stack, f"t{next(_COUNTER)}", client)
