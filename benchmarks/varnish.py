"""Objects purged per second by VarnishPurgeTarget (xkey with 1, 10 and 100 tags per request,
and PURGE of one URL), next to a hand-written httpx loop of the same requests, against the
same varnishd in the same run; then stale objects served after events in a small read load
through Varnish, next to TTL-only expiry.

The script starts an origin and a varnishd (the VCL of ``damestoilet varnish vcl``) on free
loopback ports. Throughput: for each contender it caches --objects objects through Varnish
(one GET each, one surrogate key each), purges them all, checks from the ``x-purged`` counts
and a second GET of a sample that every one was purged, and prints objects per second (median
of --repeat runs). Contenders:

  httpx loop, xkey 1 tag/request     one PURGE with ``xkey-purge: <tag>`` per object
  purge_stage, xkey N tags/request   one stage of --objects tag ops, N tags a request
  httpx loop, PURGE per URL          one ``PURGE /path`` per object
  purge_stage, PURGE per URL         one stage of --objects key ops

Stale reads: --readers threads GET --pages pages through Varnish in a loop; --events times the
origin's version of one page changes and the page is purged (hard) through purge_stage. A
read that starts after the purge returned and answers an older version is stale. The same
load without purges (objects expire after their max-age, --ttl) is the baseline.

    python benchmarks/varnish.py [--objects 2000] [--repeat 3] [--readers 4] [--events 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from damestoilet_contracts.bench import Origin, local_varnish
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime.varnish import PURGED_HEADER, VarnishPurgeTarget, render_vcl

_RUN = iter(range(1_000_000))


def cache_objects(client: httpx.Client, origin: Origin, n: int) -> list[tuple[str, str]]:
    """``n`` fresh objects (path, tag) served by the origin and cached by Varnish."""
    run = next(_RUN)
    objects = [(f"/bench/{run}/{i}", f"bench:{run}:{i}") for i in range(n)]
    for path, tag in objects:
        origin.put(path, b"x" * 512, xkey=tag)
        response = client.get(path)
        assert response.status_code == 200
    return objects


def check_purged(client: httpx.Client, origin: Origin, objects: list[tuple[str, str]]) -> None:
    for path, _ in objects[:: max(1, len(objects) // 50)]:
        client.get(path)
        assert origin.fetched(path) == 2, f"{path} was not purged"


def loop_xkey(client: httpx.Client, objects: list[tuple[str, str]]) -> int:
    purged = 0
    for _, tag in objects:
        response = client.request("PURGE", "/", headers={"xkey-purge": tag})
        purged += int(response.headers[PURGED_HEADER])
    return purged


def loop_url(client: httpx.Client, objects: list[tuple[str, str]]) -> int:
    purged = 0
    for path, _ in objects:
        purged += int(client.request("PURGE", path).headers[PURGED_HEADER])
    return purged


def via_target(url: str, kind: str, tags_per_request: int = 100) -> Callable[..., int]:
    def run(_client: httpx.Client, objects: list[tuple[str, str]]) -> int:
        with VarnishPurgeTarget([url], tags_per_request=tags_per_request) as target:
            if kind == "tag":
                ops = [FlushOp("tag", "cdn", tag) for _, tag in objects]
            else:
                ops = [FlushOp("key", "cdn", path) for path, _ in objects]
            stats = target.purge_stage(ops)
        return stats.tag_keys + stats.keys

    return run


def throughput(url: str, origin: Origin, objects: int, repeat: int) -> None:
    contenders: list[tuple[str, Callable[..., int]]] = [
        ("httpx loop, xkey 1 tag/request", loop_xkey),
        ("purge_stage, xkey 1 tag/request", via_target(url, "tag", 1)),
        ("purge_stage, xkey 10 tags/request", via_target(url, "tag", 10)),
        ("purge_stage, xkey 100 tags/request", via_target(url, "tag", 100)),
        ("httpx loop, PURGE per URL", loop_url),
        ("purge_stage, PURGE per URL", via_target(url, "key")),
    ]
    print(f"purging {objects:,} cached objects per run, median of {repeat} runs")
    results: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, purge in contenders:
            rates = []
            for _ in range(repeat):
                cached = cache_objects(client, origin, objects)
                started = time.perf_counter()
                purged = purge(client, cached)
                took = time.perf_counter() - started
                assert purged == objects, f"{name}: purged {purged} of {objects}"
                check_purged(client, origin, cached)
                rates.append(objects / took)
            results[name] = statistics.median(rates)
            print(f"  {name:<36} {results[name]:>10,.0f} objects/s")
    base_tag = results["httpx loop, xkey 1 tag/request"]
    base_url = results["httpx loop, PURGE per URL"]
    print()
    for name, rate in results.items():
        if name.startswith("purge_stage, xkey"):
            print(f"{name}: {rate / base_tag:.1f}x the httpx loop of 1 tag/request")
        elif name.startswith("purge_stage, PURGE"):
            print(f"{name}: {rate / base_url:.0%} of the httpx loop")


def stale_reads(
    url: str, origin: Origin, *, pages: int, readers: int, events: int, ttl: int, purge: bool
) -> tuple[int, int]:
    """(reads, reads that started after an event was handled and answered an older version)."""
    run = next(_RUN)
    paths = [f"/stale/{run}/{i}" for i in range(pages)]
    version = dict.fromkeys(paths, 0)
    #: per path: (time the current version became the only valid one, that version)
    valid_from: dict[str, tuple[float, int]] = dict.fromkeys(paths, (0.0, 0))
    lock = threading.Lock()
    for path in paths:
        origin.put(path, b"0", cache_control=f"public, max-age={ttl}")
    stop = threading.Event()
    counts = {"reads": 0, "stale": 0}

    def reader(index: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = index
            while not stop.is_set():
                path = paths[i % pages]
                i += 1
                started = time.monotonic()
                body = client.get(path).content
                with lock:
                    since, current = valid_from[path]
                    counts["reads"] += 1
                    if started > since and int(body) < current:
                        counts["stale"] += 1

    threads = [threading.Thread(target=reader, args=(r,)) for r in range(readers)]
    for t in threads:
        t.start()
    with VarnishPurgeTarget([url]) as target:
        for n in range(events):
            time.sleep(0.05)
            path = paths[n % pages]
            version[path] += 1
            origin.put(path, str(version[path]).encode(), cache_control=f"public, max-age={ttl}")
            if purge:
                target.purge_stage([FlushOp("key", "cdn", path)])
            with lock:
                # with a purge, every read from now on must see the new version; without one,
                # nothing removes the old one before its TTL
                valid_from[path] = (time.monotonic(), version[path])
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    return counts["reads"], counts["stale"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--ttl", type=int, default=3600, help="max-age of the pages (s)")
    args = parser.parse_args()
    with Origin() as origin, local_varnish(render_vcl(origin.address)) as url:
        version = httpx.get(url + "/").headers.get("via", "varnish")
        print(f"varnishd ({version}) on {url.removeprefix('http://')}, origin on {origin.address}")
        throughput(url, origin, args.objects, args.repeat)
        print()
        print(
            f"stale reads: {args.readers} readers over {args.pages} pages, {args.events} events"
            f" (max-age {args.ttl} s)"
        )
        for purge in (True, False):
            reads, stale = stale_reads(
                url,
                origin,
                pages=args.pages,
                readers=args.readers,
                events=args.events,
                ttl=args.ttl,
                purge=purge,
            )
            name = "purge_stage after each event" if purge else "no purge (TTL only)"
            print(f"  {name:<30} {reads:>7,} reads, {stale:>6,} stale after the event")


if __name__ == "__main__":
    main()
