"""``damestoilet varnish vcl`` (compiled by the real varnishd), the requests a stage becomes
(no I/O), ``varnish://`` URLs, and the read side's ``xkey`` header from the flush graph's
templates, purged by the plan's tag op on a real Varnish."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts._errors import EmptyValueError, PurgeError
from damestoilet_contracts.bench._varnish import varnishd_binary
from damestoilet_contracts.cli import main
from damestoilet_contracts.loaders import load_graph
from damestoilet_contracts.model import FlushOp
from damestoilet_contracts.runtime import PurgeStats
from damestoilet_contracts.runtime.varnish import (
    ResponseTags,
    VarnishPurgeTarget,
    ban_regex,
    parse_varnish_url,
    render_vcl,
    surrogate_key,
    url_path,
    xkey_header,
)
from tests.conftest import SCHEMAS
from tests.fixtures_varnish import Cdn


def compiles(vcl: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``varnishd -C`` on ``vcl``: compiles it to C without starting anything."""
    path = tmp_path / "test.vcl"
    path.write_text(vcl)
    return subprocess.run(
        [varnishd_binary(), "-C", "-j", "none", "-n", str(tmp_path / "n"), "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.varnish
def test_cli_prints_a_vcl_that_varnishd_compiles(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["varnish", "vcl", "--backend", "localhost:8080", "--acl", "10.0.0.0/8",
         "--acl", "127.0.0.1", "--secret", "s3cret", "--grace", "120"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    vcl = result.output
    assert vcl.startswith("vcl 4.1;\n")
    assert '.host = "localhost";' in vcl and '.port = "8080";' in vcl
    assert '"10.0.0.0"/8;' in vcl and '"127.0.0.1";' in vcl
    assert 'req.http.x-damestoilet-secret != "s3cret"' in vcl
    assert "set beresp.grace = 120000ms;" in vcl
    for sub in ("recv", "purge_url", "backend_response", "deliver", "synth"):
        assert f"sub damestoilet_{sub} {{" in vcl and f"call damestoilet_{sub};" in vcl
    compiled = compiles(vcl, tmp_path)
    assert compiled.returncode == 0, compiled.stderr[-2000:]


@pytest.mark.varnish
def test_a_broken_vcl_does_not_compile(tmp_path: Path) -> None:
    """The compile check above can fail: a VCL missing a brace is refused."""
    broken = render_vcl("127.0.0.1:8080").replace(
        "sub damestoilet_synth {", "sub damestoilet_synth"
    )
    assert compiles(broken, tmp_path).returncode != 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "no-port"], "is not HOST:PORT"),
        (["--backend", "h:99999"], "is not HOST:PORT"),
        (["--backend", "h:80", "--acl", "10.0.0.0/33"], "is not an address or CIDR"),
        (["--backend", "h:80", "--secret", 'a"b'], "may not hold quotes"),
        (["--backend", "h:80", "--grace", "-1"], "-1"),
        ([], "Missing option '--backend'"),
    ],
)
def test_cli_refuses_malformed_options_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["varnish", "vcl", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_help_of_varnish_commands_has_an_example() -> None:
    for args in (["varnish", "--help"], ["varnish", "vcl", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0
        assert "damestoilet varnish vcl --backend" in result.output


# -- the requests of a stage, no I/O --------------------------------------------------------


def requests_of(*ops: FlushOp, **options: object) -> list[tuple[str, str, dict[str, str]]]:
    target = VarnishPurgeTarget(["http://127.0.0.1:1"], **options)  # type: ignore[arg-type]
    try:
        return [(r.method, r.path, dict(r.headers)) for r in target.requests(ops)]
    finally:
        target.close()


def test_tags_of_a_stage_share_requests_hard_and_soft_apart() -> None:
    ops = [FlushOp("tag", "cdn", f"t{i}") for i in range(5)]
    ops += [FlushOp("tag", "cdn", "s1", "soft"), FlushOp("tag", "cdn", "s2", "soft")]
    assert requests_of(*ops, tags_per_request=3) == [
        ("PURGE", "/", {"xkey-purge": "t0 t1 t2"}),
        ("PURGE", "/", {"xkey-purge": "t3 t4"}),
        ("PURGE", "/", {"xkey-softpurge": "s1 s2"}),
    ]


def test_the_stronger_purge_wins_and_repeats_are_sent_once() -> None:
    ops = [
        FlushOp("tag", "cdn", "t", "soft"),
        FlushOp("tag", "cdn", "t"),
        FlushOp("key", "cdn", "/a"),
        FlushOp("key", "cdn", "/a", "soft"),
        FlushOp("key", "cdn", "/b", "soft"),
        FlushOp("key", "cdn", "/b", "soft"),
        FlushOp("prefix", "cdn", "/c/"),
        FlushOp("prefix", "cdn", "/c/"),
    ]
    assert requests_of(*ops) == [
        ("PURGE", "/a", {}),
        ("PURGE", "/b", {"x-damestoilet-soft": "1"}),
        ("BAN", "/", {"x-ban-url-regex": "^/c/"}),
        ("PURGE", "/", {"xkey-purge": "t"}),
    ]


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (FlushOp("key", "cdn", ""), "empty key"),
        (FlushOp("tag", "cdn", ""), "empty key"),
        (FlushOp("prefix", "cdn", ""), "empty key"),
        (FlushOp("key", "cdn", "x", "lazy"), "unknown purge mode"),
        (FlushOp("glob", "cdn", "x"), "unknown purge op"),
        (FlushOp("prefix", "cdn", "page:category:"), "not a URL path"),
    ],
)
def test_ops_that_cannot_be_purged_are_refused(op: FlushOp, message: str) -> None:
    with pytest.raises(PurgeError, match=message):
        requests_of(op)


def test_ban_regex_escapes_every_regex_character_and_anchors() -> None:
    assert ban_regex("/a.b/") == "^/a\\.b/"
    assert ban_regex("/x(1)+[y]{2}|z^$?*\\") == ("^/x\\(1\\)\\+%5By%5D%7B2%7D%7Cz%5E\\$\\?\\*%5C")
    assert ban_regex("/lamp shade/") == "^/lamp%20shade/"


def test_url_path_encodes_what_a_client_would() -> None:
    assert url_path("/products/p1") == "/products/p1"
    assert url_path("/search?q=a b&x=é") == "/search?q=a%20b&x=%C3%A9"


def test_varnish_urls_name_nodes_and_options() -> None:
    assert parse_varnish_url("varnish://127.0.0.1:6081") == {"nodes": ["http://127.0.0.1:6081"]}
    assert parse_varnish_url(
        "varnishs://a:443,b:443?host=www.example.com&timeout=1.5&secret=s&verify=0"
    ) == {
        "nodes": ["https://a:443", "https://b:443"],
        "host": "www.example.com",
        "timeout": 1.5,
        "secret": "s",
        "verify": False,
    }
    for bad, message in [
        ("redis://a:1", "varnish://"),
        ("varnish://", "HOST:PORT"),
        ("varnish://a", "HOST:PORT"),
        ("varnish://a:1?ttl=3", "unknown option 'ttl'"),
        ("varnish://a:1?timeout=soon", "not a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_varnish_url(bad)


def test_a_target_needs_nodes_and_sane_settings() -> None:
    for kwargs, message in [
        ({"nodes": []}, "at least one"),
        ({"nodes": ["http://a:1"], "tags_per_request": 0}, "tags_per_request"),
        ({"nodes": ["http://a:1"], "timeout": 0}, "timeout"),
    ]:
        with pytest.raises(ValueError, match=message):
            VarnishPurgeTarget(**kwargs)  # type: ignore[arg-type]


# -- the read side ---------------------------------------------------------------------------


def test_surrogate_keys_encode_xkey_separators() -> None:
    assert surrogate_key("search:product:p1") == "search:product:p1"
    assert surrogate_key("a b,c%d") == "a%20b%2Cc%25d"
    assert surrogate_key("café") == "caf%C3%A9"
    assert xkey_header(["a", "b c", "a"]) == "a b%20c"


def test_response_tags_come_from_the_flush_graph_templates() -> None:
    graph, problems = load_graph(SCHEMAS / "flush-graph.yaml")
    assert not problems
    tags = ResponseTags.from_graph(graph, "search.product", "catalog.category")
    assert tags.fields == ("product_id", "category_id")
    assert tags.header(product_id="p1", category_id="c 9") == (
        "search:product:p1 catalog:category:c%209"
    )
    assert tags.keys({"product_id": ["p1", "p2"]}, category_id="c1") == [
        "search:product:p1",
        "search:product:p2",
        "catalog:category:c1",
    ]
    with pytest.raises(EmptyValueError):
        tags.header(product_id="", category_id="c1")
    with pytest.raises(KeyError, match="no cache node nope"):
        ResponseTags.from_graph(graph, "nope")


@pytest.mark.varnish
def test_a_page_tagged_by_response_tags_is_purged_by_the_plans_tag_op(cdn: Cdn) -> None:
    """The contract decides both sides: the header a page carries and the op that purges it."""
    graph, _ = load_graph(SCHEMAS / "flush-graph.yaml")
    node = graph.nodes["search.product"]
    product = f"{cdn.ns}-p1"
    page = cdn.put("search", b"old", xkey=ResponseTags.from_graph(graph, node.name).header(
        product_id=product))  # fmt: skip
    cdn.get(page)
    [op_key] = node.template.render({"product_id": product})
    with VarnishPurgeTarget([cdn.stack.url]) as target:
        assert target.purge_stage([FlushOp("tag", "cdn", op_key)]) == PurgeStats(tag_keys=1)
    cdn.get(page)
    assert cdn.fetched(page) == 2


def test_the_registry_opens_varnish_urls_as_purge_targets() -> None:
    from damestoilet_contracts.runtime._registry import open_backend, schemes
    from damestoilet_contracts.runtime.varnish import AsyncVarnishPurgeTarget

    assert {"varnish", "varnishs"} <= set(schemes("target"))
    target = open_backend("target", "varnish://127.0.0.1:6081?host=www.example.com", grace={})
    assert isinstance(target, VarnishPurgeTarget)
    assert target.host == "www.example.com"
    assert [n.base_url for n in target.nodes] == ["http://127.0.0.1:6081"]
    target.close()
    secure = open_backend("async_target", "varnishs://a:443,b:443", targets=frozenset({"cdn"}))
    assert isinstance(secure, AsyncVarnishPurgeTarget)
    assert [n.base_url for n in secure.nodes] == ["https://a:443", "https://b:443"]
    assert secure.targets == frozenset({"cdn"})
