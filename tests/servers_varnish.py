"""A real varnishd for the tests, with an origin of the test's own: both on loopback, on free
ports, varnishd in a temp working dir (``-n``), in the foreground (``-F``), with a VCL written
for the test by ``damestoilet varnish vcl``'s renderer; both stopped afterwards. Never the
system service.

The launcher and the origin are the library's (``damestoilet_contracts.bench``), which the
demo and the benchmark start the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from damestoilet_contracts.bench._varnish import Origin, local_varnish, varnish_available
from damestoilet_contracts.runtime.varnish import render_vcl

__all__ = ["CdnStack", "Origin", "cdn_stack", "varnish_available"]


@dataclass(frozen=True, slots=True)
class CdnStack:
    """An origin and a varnishd in front of it."""

    origin: Origin
    #: The base URL of the varnishd, ``http://127.0.0.1:PORT``.
    url: str

    @property
    def target_url(self) -> str:
        """The ``varnish://`` URL of the varnishd."""
        return "varnish://" + self.url.removeprefix("http://")


@contextlib.contextmanager
def cdn_stack(
    workdir: Path,
    *,
    acl: Sequence[str] = ("127.0.0.1",),
    secret: str | None = None,
    grace_s: float = 60.0,
) -> Iterator[CdnStack]:
    """Start an origin and a varnishd whose VCL lets ``acl`` purge (with ``secret`` if
    given); yield them; stop both."""
    with Origin() as origin:
        vcl = render_vcl(origin.address, acl=acl, secret=secret, grace_s=grace_s)
        with local_varnish(vcl, workdir=workdir) as url:
            yield CdnStack(origin, url)
