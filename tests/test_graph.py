"""``damestoilet graph``: the flush graph as dot (checked by the real Graphviz), Mermaid and
PNG; and the picture in the README is what the schemas draw."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.compiler import compile_event
from damestoilet_contracts.describe import flush_picture
from damestoilet_contracts.lint import load_linted

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"


def _graph(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(main, ["graph", str(SCHEMAS), *args])
    return result.exit_code, result.stdout_bytes, result.stderr


def test_dot_is_valid_graphviz_with_every_event_node_and_target() -> None:
    code, out, _ = _graph()
    assert code == 0
    text = out.decode()
    contracts = load_linted(SCHEMAS)
    for name in contracts.events:
        assert f'"event:{name}"' in text
    for name in contracts.graph.nodes:
        assert f'"cache:{name}"' in text
    for target in ("default", "pricing", "cdn"):
        assert f'"target:{target}"' in text
    assert '"cache:catalog.product" -> "cache:search.product" [label="then"]' in text
    dot = shutil.which("dot")
    assert dot is not None, "Graphviz's dot is missing: run scripts/setup.sh"
    checked = subprocess.run([dot, "-Tcanon"], input=out, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr.decode()


def test_stage_order_is_the_compilers() -> None:
    """Events point at stage 1; a derived node is reached only through its parent ("then"),
    so the arrows from an event to a node count its stage as the compiler does."""
    contracts = load_linted(SCHEMAS)
    picture = flush_picture(contracts)
    edges = {(e.source, e.target) for e in picture.edges if not e.dashed}
    event = contracts.events["catalog.v1.ProductPriceChanged"]
    stages = compile_event(event, contracts.graph).stages
    depth = {f"event:{event.full_name}": 0}
    frontier = [f"event:{event.full_name}"]
    while frontier:
        node = frontier.pop()
        for source, target in sorted(edges):
            if source == node and target not in depth:
                depth[target] = depth[node] + 1
                frontier.append(target)
    for number, stage in enumerate(stages, start=1):
        for op in stage:
            if op.origin.startswith("cache "):
                assert depth[f"cache:{op.origin[6:]}"] == number, op.origin


def test_mermaid_is_a_flowchart_with_the_same_nodes_and_edges() -> None:
    code, out, _ = _graph("--format", "mermaid")
    assert code == 0
    text = out.decode()
    picture = flush_picture(load_linted(SCHEMAS))
    assert text.startswith("flowchart LR\n")
    assert text.count(" --> ") + text.count(" -.-> ") + text.count("-->|") == len(picture.edges)
    assert '(["catalog.v1.ProductPriceChanged<br>3 stages"])' in text
    assert '[("target cdn<br>grace 60 s")]' in text


def test_png_is_rendered_by_graphviz(tmp_path: Path) -> None:
    out = tmp_path / "flush.png"
    code, stdout, _ = _graph("--format", "png", "--out", str(out))
    assert code == 0, stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_graphviz_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    code, _, err = _graph("--format", "png", "--out", str(tmp_path / "x.png"))
    assert code == 1
    assert "needs Graphviz's dot" in err
    assert not (tmp_path / "x.png").exists()


def test_the_readme_shows_the_picture_of_these_schemas() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "![The flush graph of schemas/" in readme
    assert "(docs/flush-graph.png)" in readme
    # The committed source of the picture is what the schemas draw now.
    assert (ROOT / "docs" / "flush-graph.dot").read_bytes() == _graph()[1]
    assert (ROOT / "docs" / "flush-graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
