"""The Varnish purge target: executes one stage of a flush plan against one or more Varnish
nodes over HTTP, with the VCL of :func:`render_vcl` (or subroutines copied from it).

- ``tag`` ops become ``PURGE`` requests with ``xkey-purge: t1 t2 ...`` (many tags per
  request), ``mode: soft`` ones ``xkey-softpurge`` (objects stay servable within grace);
- ``key`` ops become a ``PURGE`` of the path the key names (soft: ``x-damestoilet-soft: 1``,
  TTL 0 and grace kept); a key must be a path, ``/products/p1``;
- ``prefix`` ops become a ``BAN`` on ``obj.http.x-url ~ "^<prefix, regex-escaped>"``, which
  the ban lurker processes in the background.

Every node gets every request, nodes in parallel. Counts of purged objects (summed over the
nodes) come back in :class:`PurgeStats`: ``keys`` for URL purges, ``tag_keys`` for xkey
purges; a ban is evaluated lazily, so it counts 0. A node that answers anything but 200, or
does not answer in time, is a :class:`PurgeError`: the coordinator retries the stage (every
request is idempotent), then dead-letters the event with the reason.

The planning and the reading of answers do no I/O and are shared by :class:`VarnishPurgeTarget`
and :class:`AsyncVarnishPurgeTarget`: only the sending differs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import urllib.parse
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from damestoilet_contracts._errors import PurgeError
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import PurgeStats
from damestoilet_contracts.runtime.varnish._tagging import surrogate_key
from damestoilet_contracts.runtime.varnish._vcl import (
    BAN_HEADER,
    PURGED_HEADER,
    SECRET_HEADER,
    SOFT_HEADER,
)

#: Tags sent in one xkey request; one request per stage is the aim, the header stays short.
DEFAULT_TAGS_PER_REQUEST = 100
#: Seconds to wait for a Varnish node, connect and answer.
DEFAULT_TIMEOUT_S = 5.0
#: The URL schemes of a Varnish target: plain HTTP, or HTTPS to a TLS terminator in front.
SCHEMES = {"varnish": "http", "varnishs": "https"}

#: Characters left as they are in a path; everything else is percent-encoded (RFC 3986 pchar,
#: plus ``?`` so a key may carry a query).
_PATH_SAFE = "/:@!$&'()*+,;=-._~?"
#: What a ban regex must escape (PCRE metacharacters, the ban's quote, extended-mode ``#``).
_REGEX_SPECIAL = frozenset('\\^$.|?*+()[]{}"#')


def url_path(key: str) -> str:
    """The path a ``key`` op purges: the key percent-encoded where it must be. Raises
    :class:`PurgeError` for a key that is not a path (it does not start with ``/``)."""
    if not key.startswith("/"):
        raise PurgeError(
            f"key {key!r} is not a URL path: a Varnish target purges the URL a key names, so "
            "write the key template of a CDN cache as a path, e.g. /products/{product_id}"
        )
    return urllib.parse.quote(key, safe=_PATH_SAFE)


def ban_regex(prefix: str) -> str:
    """The regex of a ban on every URL that starts with ``prefix`` (encoded like
    :func:`url_path`), its regex characters escaped."""
    path = url_path(prefix)
    return "^" + "".join("\\" + c if c in _REGEX_SPECIAL else c for c in path)


@dataclass(frozen=True, slots=True)
class VarnishRequest:
    """One HTTP request a stage needs: what it is, and what it counts as."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    #: ``key``, ``tag`` or ``prefix``: where its count goes in :class:`PurgeStats`.
    kind: str
    soft: bool

    def describe(self) -> str:
        """The request in a line, for error messages."""
        extra = " ".join(f"{k}: {v}" for k, v in self.headers if k != SECRET_HEADER)
        return f"{self.method} {self.path}" + (f" ({extra[:200]})" if extra else "")


@dataclass(frozen=True, slots=True)
class VarnishNode:
    """One Varnish to purge: its base URL (``http://host:port``)."""

    base_url: str


def parse_varnish_url(url: str) -> dict[str, Any]:
    """The settings a ``varnish://`` URL names, as keyword arguments of the targets::

        varnish://HOST:PORT[,HOST:PORT...][?host=NAME&timeout=S&secret=S&verify=0]
        varnishs://...   HTTPS (a TLS terminator in front of Varnish)

    Raises ValueError for another scheme, no node, or an unknown or malformed option."""
    parts = urllib.parse.urlsplit(url)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"{url!r}: a Varnish URL starts with varnish:// or varnishs://")
    nodes = [n for n in parts.netloc.split(",") if n]
    if not nodes or any(":" not in n or "@" in n for n in nodes):
        raise ValueError(f"{url!r}: name the nodes as HOST:PORT[,HOST:PORT...]")
    out: dict[str, Any] = {"nodes": [f"{scheme}://{n}" for n in nodes]}
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name == "host":
            out["host"] = value
        elif name == "secret":
            out["secret"] = value
        elif name == "timeout":
            try:
                out["timeout"] = float(value)
            except ValueError:
                raise ValueError(f"{url!r}: timeout={value!r} is not a number of seconds") from None
        elif name == "verify":
            out["verify"] = value not in ("0", "false", "no")
        else:
            raise ValueError(f"{url!r}: unknown option {name!r} (host, secret, timeout, verify)")
    return out


class VarnishPurgeBase:
    """What the sync and async Varnish targets share: settings, the requests a stage needs,
    and the reading of answers (no I/O)."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        host: str | None,
        secret: str | None,
        timeout: float,
        targets: Collection[str] | None,
        tags_per_request: int,
    ) -> None:
        if not nodes:
            raise ValueError("name at least one Varnish node, e.g. http://127.0.0.1:6081")
        if tags_per_request < 1:
            raise ValueError(f"tags_per_request must be at least 1, got {tags_per_request}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.nodes = tuple(VarnishNode(n.rstrip("/")) for n in nodes)
        self.host = host
        self.secret = secret
        self.timeout = timeout
        self.targets: frozenset[str] | None = None if targets is None else frozenset(targets)
        self.tags_per_request = tags_per_request

    def serves(self, op: FlushOp) -> bool:
        """Whether this target executes ``op`` (its target is one of ``targets``, or all)."""
        return self.targets is None or op.target in self.targets

    def base_headers(self) -> dict[str, str]:
        """Headers every request carries: the Host to purge under, the shared secret."""
        headers = {}
        if self.host is not None:
            headers["host"] = self.host
        if self.secret is not None:
            headers[SECRET_HEADER] = self.secret
        return headers

    def requests(self, ops: Iterable[FlushOp]) -> list[VarnishRequest]:
        """The requests that execute the ops of one stage this target serves, de-duplicated
        (a key, prefix or tag both deleted and soft-purged is deleted: the stronger purge
        wins). Raises :class:`PurgeError` for an unknown op or mode, an empty value, or a
        key or prefix that is not a path."""
        wanted: dict[tuple[str, str], bool] = {}  # (op, value) -> soft
        for op in ops:
            if not self.serves(op):
                continue
            if op.mode not in ("delete", "soft"):
                raise PurgeError(f"unknown purge mode {op.mode!r} in {op.to_dict()}")
            if op.op not in ("key", "prefix", "tag"):
                raise PurgeError(f"unknown purge op {op.op!r} in {op.to_dict()}")
            if op.key == "":
                raise PurgeError(f"empty key in purge operation {op.to_dict()}")
            soft = op.mode == "soft"
            wanted[(op.op, op.key)] = wanted.get((op.op, op.key), soft) and soft
        out: list[VarnishRequest] = []
        tags: dict[bool, list[str]] = {False: [], True: []}
        for (kind, value), soft in wanted.items():
            if kind == "key":
                headers = ((SOFT_HEADER, "1"),) if soft else ()
                out.append(VarnishRequest("PURGE", url_path(value), headers, "key", soft))
            elif kind == "prefix":
                headers = ((BAN_HEADER, ban_regex(value)),)
                out.append(VarnishRequest("BAN", "/", headers, "prefix", soft))
            else:
                tags[soft].append(surrogate_key(value))
        for soft, keys in tags.items():
            header = "xkey-softpurge" if soft else "xkey-purge"
            for start in range(0, len(keys), self.tags_per_request):
                chunk = " ".join(keys[start : start + self.tags_per_request])
                out.append(VarnishRequest("PURGE", "/", ((header, chunk),), "tag", soft))
        return out

    def count(self, node: VarnishNode, request: VarnishRequest, response: httpx.Response) -> int:
        """The objects ``response`` says were purged; raises :class:`PurgeError` for any
        answer but a 200 with a count."""
        where = f"Varnish {node.base_url} answered {request.describe()}"
        if response.status_code in (401, 403, 405):
            raise PurgeError(
                f"{where} with {response.status_code} {response.reason_phrase}: it refuses this "
                "client; add its address to the VCL's damestoilet_purgers ACL, or check the "
                "shared secret"
            )
        if response.status_code != 200:
            raise PurgeError(
                f"{where} with {response.status_code} {response.reason_phrase}; the purge is "
                "idempotent: the stage is retried"
            )
        text = response.headers.get(PURGED_HEADER)
        if text is None or not text.strip().lstrip("-").isdigit():
            raise PurgeError(
                f"{where} with 200 but no {PURGED_HEADER} count: is its VCL the one of "
                "`damestoilet varnish vcl` (or does it call its damestoilet_* subroutines)?"
            )
        return max(0, int(text))

    @staticmethod
    def stats(counted: Iterable[tuple[VarnishRequest, int]]) -> PurgeStats:
        """The :class:`PurgeStats` of requests and the counts their nodes answered."""
        keys = prefix_keys = tag_keys = soft = 0
        for request, n in counted:
            if request.kind == "key":
                keys += n
            elif request.kind == "tag":
                tag_keys += n
            else:
                prefix_keys += n
            soft += n if request.soft else 0
        return PurgeStats(keys, prefix_keys, tag_keys, soft)

    @staticmethod
    def transport_error(node: VarnishNode, request: VarnishRequest, exc: Exception) -> PurgeError:
        """A :class:`PurgeError` for a request that got no answer (refused, timed out)."""
        return PurgeError(
            f"Varnish {node.base_url} did not answer {request.describe()}: "
            f"{type(exc).__name__}: {exc}. The purge is idempotent: the stage is retried."
        )


class VarnishPurgeTarget(VarnishPurgeBase):
    """Purges tags, URLs and prefixes from Varnish nodes over httpx (sync; nodes in
    parallel threads)."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        host: str | None = None,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        verify: bool = True,
        targets: Collection[str] | None = None,
        tags_per_request: int = DEFAULT_TAGS_PER_REQUEST,
        local_address: str | None = None,
    ) -> None:
        """Purge every node of ``nodes`` (base URLs, ``http://127.0.0.1:6081``).

        ``host`` is the Host header to purge under (the site's name; default: the node's
        address); ``secret`` goes in :data:`SECRET_HEADER` when the VCL asks for one;
        ``timeout`` bounds each request (s); ``verify`` checks TLS certificates of https
        nodes; ``targets`` restricts the ops executed (None: every target);
        ``tags_per_request`` caps the tags of one xkey request; ``local_address`` is the
        source address to send from. Raises ValueError for a bad setting."""
        super().__init__(
            nodes,
            host=host,
            secret=secret,
            timeout=timeout,
            targets=targets,
            tags_per_request=tags_per_request,
        )
        self._clients = [
            httpx.Client(
                base_url=node.base_url,
                timeout=timeout,
                verify=verify,
                transport=httpx.HTTPTransport(local_address=local_address, verify=verify),
            )
            for node in self.nodes
        ]
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(len(self.nodes), "damestoilet-varnish")
            if len(self.nodes) > 1
            else None
        )

    @classmethod
    def from_url(
        cls, url: str, *, grace: Mapping[str, float] | None = None, **options: Any
    ) -> VarnishPurgeTarget:
        """A target for a ``varnish://`` URL (see :func:`parse_varnish_url`); ``options``
        override what the URL says. ``grace`` is taken for the registry's sake and unused:
        how long a soft-purged object stays servable is the VCL's ``beresp.grace``. Raises
        ValueError for a malformed URL."""
        return cls(**{**parse_varnish_url(url), **options})

    def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        """Execute the ops of one stage that this target serves, on every node; return what
        was purged. Raises :class:`PurgeError` when a node refuses, fails or times out."""
        requests = self.requests(ops)
        if not requests:
            return PurgeStats()
        headers = self.base_headers()
        if self._pool is None:
            counted = self._send(0, requests, headers)
        else:
            futures = [
                self._pool.submit(self._send, i, requests, headers) for i in range(len(self.nodes))
            ]
            counted = [c for f in futures for c in f.result()]
        return self.stats(counted)

    def _send(
        self, index: int, requests: Sequence[VarnishRequest], headers: Mapping[str, str]
    ) -> list[tuple[VarnishRequest, int]]:
        client, node = self._clients[index], self.nodes[index]
        counted = []
        for request in requests:
            try:
                response = client.request(
                    request.method, request.path, headers={**headers, **dict(request.headers)}
                )
            except httpx.HTTPError as exc:
                raise self.transport_error(node, request, exc) from exc
            counted.append((request, self.count(node, request, response)))
        return counted

    def close(self) -> None:
        """Close the connections (and the thread pool of several nodes)."""
        for client in self._clients:
            client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def __enter__(self) -> VarnishPurgeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncVarnishPurgeTarget(VarnishPurgeBase):
    """The async twin of :class:`VarnishPurgeTarget`, over ``httpx.AsyncClient`` (nodes
    concurrently)."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        host: str | None = None,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        verify: bool = True,
        targets: Collection[str] | None = None,
        tags_per_request: int = DEFAULT_TAGS_PER_REQUEST,
        local_address: str | None = None,
    ) -> None:
        """The settings are those of :class:`VarnishPurgeTarget`."""
        super().__init__(
            nodes,
            host=host,
            secret=secret,
            timeout=timeout,
            targets=targets,
            tags_per_request=tags_per_request,
        )
        self._clients = [
            httpx.AsyncClient(
                base_url=node.base_url,
                timeout=timeout,
                verify=verify,
                transport=httpx.AsyncHTTPTransport(local_address=local_address, verify=verify),
            )
            for node in self.nodes
        ]

    @classmethod
    def from_url(
        cls, url: str, *, grace: Mapping[str, float] | None = None, **options: Any
    ) -> AsyncVarnishPurgeTarget:
        """The async :meth:`VarnishPurgeTarget.from_url` (``grace`` unused likewise)."""
        return cls(**{**parse_varnish_url(url), **options})

    async def purge_stage(self, ops: Sequence[FlushOp]) -> PurgeStats:
        """The async :meth:`VarnishPurgeTarget.purge_stage`; raises :class:`PurgeError`."""
        requests = self.requests(ops)
        if not requests:
            return PurgeStats()
        headers = self.base_headers()
        # every node runs to its end, so no request is left half-sent when one node fails
        per_node = await asyncio.gather(
            *(self._send(i, requests, headers) for i in range(len(self.nodes))),
            return_exceptions=True,
        )
        counted: list[tuple[VarnishRequest, int]] = []
        for result in per_node:
            if isinstance(result, BaseException):
                raise result
            counted += result
        return self.stats(counted)

    async def _send(
        self, index: int, requests: Sequence[VarnishRequest], headers: Mapping[str, str]
    ) -> list[tuple[VarnishRequest, int]]:
        client, node = self._clients[index], self.nodes[index]
        counted = []
        for request in requests:
            try:
                response = await client.request(
                    request.method, request.path, headers={**headers, **dict(request.headers)}
                )
            except httpx.HTTPError as exc:
                raise self.transport_error(node, request, exc) from exc
            counted.append((request, self.count(node, request, response)))
        return counted

    async def aclose(self) -> None:
        """Close the connections."""
        for client in self._clients:
            await client.aclose()

    async def __aenter__(self) -> AsyncVarnishPurgeTarget:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
