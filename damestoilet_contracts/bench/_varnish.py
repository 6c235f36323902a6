"""A throw-away ``varnishd`` and an origin for it, for the demo, the benchmark and the tests:
loopback only, a free port, a temp working directory (``-n``), stopped on exit.

:class:`Origin` is a small threaded HTTP server whose resources a caller sets and replaces
(body, ``xkey`` surrogate keys, ``Cache-Control``), counting the fetches of each path, so a
caller can tell a Varnish hit from a fetch.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from damestoilet_contracts._errors import DamestoiletError
from damestoilet_contracts._process import free_port, running

#: Where Debian's varnish-modules puts libvmod_xkey.so.
VMOD_DIRS = ("/usr/lib/x86_64-linux-gnu/varnish/vmods", "/usr/lib/varnish/vmods")


def varnishd_binary() -> str:
    """The path of ``varnishd``; raises :class:`DamestoiletError` when it is not installed."""
    path = shutil.which("varnishd") or next(
        (p for p in ("/usr/sbin/varnishd", "/usr/local/sbin/varnishd") if Path(p).exists()), None
    )
    if path is None:
        raise DamestoiletError("varnishd is not installed; run `bash scripts/setup.sh`")
    return path


def varnish_available() -> bool:
    """Whether ``varnishd`` and the xkey vmod (varnish-modules) are installed."""
    try:
        varnishd_binary()
    except DamestoiletError:
        return False
    return any((Path(d) / "libvmod_xkey.so").exists() for d in VMOD_DIRS)


@dataclass(slots=True)
class Resource:
    """What the origin answers for one path."""

    body: bytes
    content_type: str = "text/plain"
    #: The ``xkey`` response header: space-separated surrogate keys ("" for none).
    xkey: str = ""
    cache_control: str = "public, max-age=3600"
    #: Seconds the origin waits before answering (a slow refetch).
    delay: float = 0.0


class Origin:
    """A threaded HTTP origin on 127.0.0.1 serving :class:`Resource` objects by path; 404
    for anything else. Use it as a context manager, or :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.fetches: dict[str, int] = {}
        self._lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle holds the body back
            # until Varnish's delayed ACK of the headers, 40 ms a fetch
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                with origin._lock:
                    resource = origin.resources.get(self.path)
                    origin.fetches[self.path] = origin.fetches.get(self.path, 0) + 1
                if resource is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    return
                if resource.delay:
                    time.sleep(resource.delay)
                self.send_response(200)
                self.send_header("Content-Type", resource.content_type)
                self.send_header("Content-Length", str(len(resource.body)))
                self.send_header("Cache-Control", resource.cache_control)
                if resource.xkey:
                    self.send_header("xkey", resource.xkey)
                self.end_headers()
                self.wfile.write(resource.body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the demo and the tests print what matters

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the origin listens on."""
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, what ``damestoilet varnish vcl --backend`` takes."""
        return f"127.0.0.1:{self.port}"

    def put(self, path: str, body: bytes, **options: object) -> None:
        """Serve ``body`` at ``path`` from now on (``options``: the other fields of
        :class:`Resource`)."""
        resource = Resource(body, **options)  # type: ignore[arg-type]
        with self._lock:
            self.resources[path] = resource

    def fetched(self, path: str) -> int:
        """How many times ``path`` was requested from the origin."""
        with self._lock:
            return self.fetches.get(path, 0)

    def start(self) -> Origin:
        """Start serving in a thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_varnish(
    vcl: str,
    *,
    workdir: Path | None = None,
    listen: Sequence[str] = (),
    params: Sequence[str] = (),
    timeout: float = 30.0,
) -> Iterator[str]:
    """Run ``varnishd -F`` with the VCL text ``vcl`` on a free port of 127.0.0.1 and yield
    its base URL (``http://127.0.0.1:PORT``) once it answers; stop it on exit.

    ``listen`` adds more ``-a`` addresses; ``params`` more ``-p name=value``; ``workdir``
    holds the VCL and the ``-n`` directory (None: a temp dir, removed afterwards). Raises
    :class:`DamestoiletError` when varnishd is missing, the VCL does not compile, or it does
    not answer within ``timeout`` seconds.
    """
    binary = varnishd_binary()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dsvarnish-")))
        workdir.mkdir(parents=True, exist_ok=True)
        vcl_file = workdir / "damestoilet.vcl"
        vcl_file.write_text(vcl)
        log = workdir / "varnishd.log"
        port = free_port()
        args = [
            binary, "-F",
            "-j", "none",  # no privilege separation: a throw-away instance of this user
            "-n", str(workdir / "n"),
            "-a", f"127.0.0.1:{port}",
            *(a for address in listen for a in ("-a", address)),
            "-T", "none",  # no management port: nothing but HTTP on loopback
            "-f", str(vcl_file),
            "-s", "malloc,64m",
            *(a for p in params for a in ("-p", p)),
        ]  # fmt: skip
        url, up = f"http://127.0.0.1:{port}", False
        log.write_bytes(b"")
        try:
            with running(args, port=port, log=log, ready=lambda: _answers(url), timeout=timeout):
                up = True
                yield url
        except RuntimeError as exc:
            if up:  # raised by the caller's block, not by the start
                raise
            tail = log.read_text(errors="replace")[-2000:]
            raise DamestoiletError(f"varnishd did not start ({exc}):\n{tail}") from exc
        except TimeoutError as exc:
            if up:
                raise
            raise DamestoiletError(f"varnishd did not answer at {url} within {timeout}s") from exc


def _answers(url: str) -> bool:
    """Whether varnishd answers HTTP at ``url``: any answer (a 404 of the origin, a 503)
    means the child is up."""
    try:
        with urllib.request.urlopen(url + "/__damestoilet_ready__", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
