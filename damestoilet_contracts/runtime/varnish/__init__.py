"""The Varnish purge target (``varnish://``): xkey tag purges and soft purges, ``PURGE`` of
one URL, bans by prefix; the VCL that answers it; the ``xkey`` header of responses.

Needs the ``varnish`` extra (httpx): ``pip install 'damestoilet-contracts[varnish]'``.
"""

from __future__ import annotations

from damestoilet_contracts.runtime.varnish._purge import (
    AsyncVarnishPurgeTarget,
    VarnishPurgeTarget,
    VarnishRequest,
    ban_regex,
    parse_varnish_url,
    url_path,
)
from damestoilet_contracts.runtime.varnish._tagging import (
    XKEY_HEADER,
    ResponseTags,
    surrogate_key,
    xkey_header,
)
from damestoilet_contracts.runtime.varnish._vcl import (
    BAN_HEADER,
    PURGED_HEADER,
    SECRET_HEADER,
    SOFT_HEADER,
    render_vcl,
)

__all__ = [
    "BAN_HEADER",
    "PURGED_HEADER",
    "SECRET_HEADER",
    "SOFT_HEADER",
    "XKEY_HEADER",
    "AsyncVarnishPurgeTarget",
    "ResponseTags",
    "VarnishPurgeTarget",
    "VarnishRequest",
    "ban_regex",
    "parse_varnish_url",
    "render_vcl",
    "surrogate_key",
    "url_path",
    "xkey_header",
]
