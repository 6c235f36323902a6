"""The Varnish purge target against a real varnishd (started by the test session, with the
VCL of ``damestoilet varnish vcl``) in front of an origin of the test's own: xkey tag purges
and soft purges, URL purges, prefix bans, the ACL and the shared secret, several nodes, a
Varnish that is down, refuses or does not answer; and the async twin."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from damestoilet_contracts._errors import PurgeError
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import PurgeStats
from damestoilet_contracts.runtime.varnish import AsyncVarnishPurgeTarget, VarnishPurgeTarget
from tests.fixtures_varnish import SECRET, Cdn
from tests.servers import free_port
from tests.servers_varnish import CdnStack, cdn_stack

pytestmark = pytest.mark.varnish


def tag(value: str, mode: str = "delete") -> FlushOp:
    return FlushOp("tag", "cdn", value, mode)


def key(value: str, mode: str = "delete") -> FlushOp:
    return FlushOp("key", "cdn", value, mode)


def prefix(value: str, mode: str = "delete") -> FlushOp:
    return FlushOp("prefix", "cdn", value, mode)


@pytest.fixture
def target(cdn: Cdn) -> Iterator[VarnishPurgeTarget]:
    with VarnishPurgeTarget([cdn.stack.url]) as t:
        yield t


def wait_until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_tag_purge_removes_every_tagged_object_and_counts_them(
    cdn: Cdn, target: VarnishPurgeTarget
) -> None:
    tagged = [cdn.put(f"p{i}", b"old", xkey=f"{cdn.tag('a')} {cdn.tag('x')}") for i in range(3)]
    other = cdn.put("other", b"other", xkey=cdn.tag("b"))
    for path in [*tagged, other]:
        cdn.get(path)
        cdn.get(path)  # the second one is a hit
    assert [cdn.fetched(p) for p in [*tagged, other]] == [1, 1, 1, 1]

    stats = target.purge_stage([tag(cdn.tag("a"))])

    assert stats == PurgeStats(tag_keys=3)
    for path in tagged:
        cdn.stack.origin.put(path, b"new")
        assert cdn.get(path) == b"new"
        assert cdn.fetched(path) == 2
    assert cdn.get(other) == b"other"
    assert cdn.fetched(other) == 1


def test_many_tags_go_in_few_requests_and_every_object_is_counted(cdn: Cdn) -> None:
    paths = [cdn.put(f"p{i}", b"v", xkey=cdn.tag(f"t{i}")) for i in range(25)]
    for path in paths:
        cdn.get(path)
    with VarnishPurgeTarget([cdn.stack.url], tags_per_request=10) as target:
        ops = [tag(cdn.tag(f"t{i}")) for i in range(25)]
        assert len(target.requests(ops)) == 3
        assert target.purge_stage(ops).tag_keys == 25
    for path in paths:
        cdn.get(path)
        assert cdn.fetched(path) == 2


def test_soft_tag_purge_serves_stale_while_one_refetch_runs_then_fresh(
    cdn: Cdn, target: VarnishPurgeTarget
) -> None:
    path = cdn.put("page", b"old", xkey=cdn.tag("page"))
    assert cdn.get(path) == b"old"
    cdn.stack.origin.put(path, b"new", xkey=cdn.tag("page"), delay=1.0)

    stats = target.purge_stage([tag(cdn.tag("page"), "soft")])

    assert stats == PurgeStats(tag_keys=1, soft_marked=1)
    started = time.monotonic()
    assert cdn.get(path) == b"old"  # stale, within grace, while the origin is slow
    assert time.monotonic() - started < 0.8  # served at once, not after the refetch
    wait_until(lambda: cdn.fetched(path) == 2)
    wait_until(lambda: cdn.get(path) == b"new")
    assert cdn.fetched(path) == 2  # one background fetch, not one per reader


def test_url_purge_removes_that_url_only(cdn: Cdn, target: VarnishPurgeTarget) -> None:
    page, other = cdn.put("products/p1", b"old"), cdn.put("products/p10", b"other")
    cdn.get(page), cdn.get(other)

    assert target.purge_stage([key(page)]) == PurgeStats(keys=1)

    cdn.stack.origin.put(page, b"new")
    assert cdn.get(page) == b"new"
    assert cdn.get(other) == b"other"
    assert (cdn.fetched(page), cdn.fetched(other)) == (2, 1)
    # purging what is not cached is no error: purges are idempotent
    assert target.purge_stage([key(cdn.path("never-fetched"))]) == PurgeStats()


def test_url_purge_encodes_the_path_as_a_client_requests_it(
    cdn: Cdn, target: VarnishPurgeTarget
) -> None:
    raw = cdn.path("search/lamp shade")
    cdn.stack.origin.put(raw.replace(" ", "%20"), b"old")
    cdn.get(raw.replace(" ", "%20"))
    assert target.purge_stage([key(raw)]) == PurgeStats(keys=1)


def test_soft_url_purge_keeps_the_object_servable_while_it_refetches(
    cdn: Cdn, target: VarnishPurgeTarget
) -> None:
    page = cdn.put("page", b"old")
    cdn.get(page)
    cdn.stack.origin.put(page, b"new", delay=1.0)

    assert target.purge_stage([key(page, "soft")]) == PurgeStats(keys=1, soft_marked=1)

    assert cdn.get(page) == b"old"
    wait_until(lambda: cdn.get(page) == b"new")


def test_delete_and_soft_of_one_url_in_a_stage_deletes(
    cdn: Cdn, target: VarnishPurgeTarget
) -> None:
    page = cdn.put("page", b"old")
    cdn.get(page)
    cdn.stack.origin.put(page, b"new")
    assert target.purge_stage([key(page, "soft"), key(page)]) == PurgeStats(keys=1)
    assert cdn.get(page) == b"new"  # not the stale one


def test_prefix_ban_escapes_regex_characters_in_the_value(
    cdn: Cdn, target: VarnishPurgeTarget
) -> None:
    inside = [cdn.put("cat/a.b(1)+/x", b"old"), cdn.put("cat/a.b(1)+/y/z", b"old")]
    # what an unescaped regex would also match: "." any character, "(1)+" a group repeated
    outside = [cdn.put("cat/aXb(1)+/x", b"kept"), cdn.put("cat/a.b1/x", b"kept")]
    before = [cdn.put("x/cat/a.b(1)+/", b"kept")]  # the ban is anchored at the start
    for path in [*inside, *outside, *before]:
        cdn.get(path)

    assert target.purge_stage([prefix(cdn.path("cat/a.b(1)+/"))]) == PurgeStats()

    for path in inside:
        cdn.stack.origin.put(path, b"new")
        assert cdn.get(path) == b"new"
    for path in [*outside, *before]:
        assert cdn.get(path) == b"kept"
        assert cdn.fetched(path) == 1


def test_purges_under_the_host_they_are_told(cdn: Cdn) -> None:
    page = cdn.put("page", b"old")
    for host in ("www.example.com", "other.example.com"):
        response = cdn.client.get(page, headers={"host": host})
        assert response.status_code == 200
    with VarnishPurgeTarget([cdn.stack.url], host="www.example.com") as target:
        assert target.purge_stage([key(page)]) == PurgeStats(keys=1)
    # What is left is told by fetching, not by purging again: Varnish 7.1 takes a purged
    # object out in its expiry thread, a moment later, and a purge in between counts it
    # again (once in ten runs with both cores busy).
    cdn.client.get(page, headers={"host": "other.example.com"})
    assert cdn.fetched(page) == 2  # other.example.com's copy is still cached
    cdn.client.get(page, headers={"host": "www.example.com"})
    assert cdn.fetched(page) == 3  # www.example.com's is gone


def test_ops_of_other_targets_are_left_alone(cdn: Cdn) -> None:
    page = cdn.put("page", b"old")
    cdn.get(page)
    with VarnishPurgeTarget([cdn.stack.url], targets={"cdn"}) as target:
        assert target.purge_stage([FlushOp("key", "default", page)]) == PurgeStats()
    cdn.get(page)
    assert cdn.fetched(page) == 1


def test_purge_from_an_address_outside_the_acl_is_refused(cdn: Cdn) -> None:
    page = cdn.put("page", b"old", xkey=cdn.tag("page"))
    cdn.get(page)
    with VarnishPurgeTarget([cdn.stack.url], local_address="127.0.0.2") as outsider:
        for op in (tag(cdn.tag("page")), key(page), prefix(cdn.path(""))):
            with pytest.raises(PurgeError, match=r"403 .*damestoilet_purgers ACL"):
                outsider.purge_stage([op])
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=cdn.stack.url, transport=transport) as raw:
        assert raw.request("PURGE", page).status_code == 403
        assert raw.request("BAN", "/", headers={"x-ban-url-regex": "^/"}).status_code == 403
        assert raw.get(page).status_code == 200  # reading is allowed from anywhere
    assert cdn.get(page) == b"old"
    assert cdn.fetched(page) == 1


def test_a_vcl_with_a_secret_refuses_purges_without_it(varnish_secret_stack: CdnStack) -> None:
    stack = varnish_secret_stack
    stack.origin.put("/secret/page", b"old")
    httpx.get(stack.url + "/secret/page")
    no_secret = VarnishPurgeTarget([stack.url])
    with no_secret, pytest.raises(PurgeError, match=r"403 .*shared secret"):
        no_secret.purge_stage([key("/secret/page")])
    wrong = VarnishPurgeTarget([stack.url], secret="wrong")
    with wrong, pytest.raises(PurgeError, match="403"):
        wrong.purge_stage([key("/secret/page")])
    with VarnishPurgeTarget.from_url(stack.target_url + f"?secret={SECRET}") as right:
        assert right.purge_stage([key("/secret/page")]) == PurgeStats(keys=1)


@pytest.fixture(scope="module")
def second_varnish(
    varnish_stack: CdnStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second varnishd in front of the session's origin."""
    from damestoilet_contracts.bench._varnish import local_varnish
    from damestoilet_contracts.runtime.varnish import render_vcl

    vcl = render_vcl(varnish_stack.origin.address)
    with local_varnish(vcl, workdir=tmp_path_factory.mktemp("varnish2")) as url:
        yield url


def test_several_nodes_are_all_purged_and_their_counts_summed(
    cdn: Cdn, second_varnish: str
) -> None:
    paths = [cdn.put(f"p{i}", b"old", xkey=cdn.tag("t")) for i in range(2)]
    for path in paths:
        cdn.get(path)
        httpx.get(second_varnish + path)
    nodes = f"{cdn.stack.target_url},{second_varnish.removeprefix('http://')}"
    with VarnishPurgeTarget.from_url(f"varnish://{nodes.removeprefix('varnish://')}") as target:
        assert len(target.nodes) == 2
        assert target.purge_stage([tag(cdn.tag("t"))]) == PurgeStats(tag_keys=4)
    for path in paths:
        cdn.get(path)
        httpx.get(second_varnish + path)
        assert cdn.fetched(path) == 4


def test_a_varnish_that_is_down_is_a_purge_error() -> None:
    with VarnishPurgeTarget([f"http://127.0.0.1:{free_port()}"], timeout=2) as target:
        with pytest.raises(PurgeError, match=r"did not answer .*ConnectError"):
            target.purge_stage([key("/products/p1")])
        assert target.purge_stage([]) == PurgeStats()  # nothing to send: no request


def test_a_varnish_that_does_not_answer_in_time_is_a_purge_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (the kernel does), never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with VarnishPurgeTarget([url], timeout=0.3) as target:
            started = time.monotonic()
            with pytest.raises(PurgeError, match="ReadTimeout"):
                target.purge_stage([tag("t")])
            assert time.monotonic() - started < 5


def test_an_error_status_is_a_purge_error_that_names_it(varnish_stack: CdnStack) -> None:
    # The origin is not a Varnish: it answers PURGE with 501, a server error.
    target = VarnishPurgeTarget([f"http://{varnish_stack.origin.address}"])
    with target, pytest.raises(PurgeError, match=r"501 .*retried"):
        target.purge_stage([key("/products/p1")])


def test_a_200_without_a_count_says_the_vcl_is_not_the_right_one(cdn: Cdn) -> None:
    with VarnishPurgeTarget([cdn.stack.url]) as target:
        # a GET through the normal path answers 200 without x-purged
        request = target.requests([key(cdn.put("plain", b"x"))])[0]
        response = cdn.client.get(request.path)
        with pytest.raises(PurgeError, match="no x-purged count"):
            target.count(target.nodes[0], request, response)


def test_a_key_that_is_not_a_path_is_refused_before_anything_is_sent(
    target: VarnishPurgeTarget,
) -> None:
    with pytest.raises(PurgeError, match=r"not a URL path.*/products/"):
        target.purge_stage([key("page:product:p1")])


# -- the async twin -------------------------------------------------------------------------


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_async_tag_url_and_prefix_purges_count_like_the_sync_target(cdn: Cdn) -> None:
    tagged = cdn.put("tagged", b"old", xkey=cdn.tag("a"))
    page = cdn.put("page", b"old")
    banned = cdn.put("cat/c.1/x", b"old")
    for path in (tagged, page, banned):
        cdn.get(path)

    async def main() -> list[PurgeStats]:
        async with AsyncVarnishPurgeTarget.from_url(cdn.stack.target_url) as target:
            return [
                await target.purge_stage([tag(cdn.tag("a"), "soft")]),
                await target.purge_stage([key(page)]),
                await target.purge_stage([prefix(cdn.path("cat/c.1/"))]),
            ]

    assert run(main()) == [PurgeStats(tag_keys=1, soft_marked=1), PurgeStats(keys=1), PurgeStats()]
    for path in (page, banned):
        cdn.get(path)
        assert cdn.fetched(path) == 2


def test_async_purge_of_several_nodes_and_a_down_one(cdn: Cdn, second_varnish: str) -> None:
    path = cdn.put("p", b"old", xkey=cdn.tag("t"))
    cdn.get(path)
    httpx.get(second_varnish + path)

    async def main() -> PurgeStats:
        async with AsyncVarnishPurgeTarget([cdn.stack.url, second_varnish]) as target:
            return await target.purge_stage([tag(cdn.tag("t"))])

    assert run(main()) == PurgeStats(tag_keys=2)

    async def down() -> None:
        nodes = [cdn.stack.url, f"http://127.0.0.1:{free_port()}"]
        async with AsyncVarnishPurgeTarget(nodes, timeout=2) as target:
            await target.purge_stage([tag(cdn.tag("t"))])

    with pytest.raises(PurgeError, match="did not answer"):
        run(down())


def test_async_refused_outside_the_acl(cdn: Cdn) -> None:
    async def main() -> None:
        async with AsyncVarnishPurgeTarget([cdn.stack.url], local_address="127.0.0.2") as t:
            await t.purge_stage([key(cdn.path("x"))])

    with pytest.raises(PurgeError, match="403"):
        run(main())


def test_stack_starts_with_a_vcl_of_another_acl(tmp_path: object) -> None:
    """The ACL is the VCL's: a Varnish allowing 127.0.0.2 only refuses 127.0.0.1."""
    from pathlib import Path

    with cdn_stack(Path(str(tmp_path)), acl=["127.0.0.2/32"]) as stack:
        stack.origin.put("/x", b"x")
        from_one = VarnishPurgeTarget([stack.url])
        with from_one, pytest.raises(PurgeError, match="403"):
            from_one.purge_stage([key("/x")])
        with VarnishPurgeTarget([stack.url], local_address="127.0.0.2") as from_two:
            assert from_two.purge_stage([key("/x")]) == PurgeStats()
