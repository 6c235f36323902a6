"""Reading flush-graph.yaml: nodes with their lines, targets with their grace, every problem."""

from __future__ import annotations

from pathlib import Path

from damestoilet_contracts.loaders import load_graph
from damestoilet_contracts.model import FlushGraph, Mode, Op

REFERENCE = Path(__file__).resolve().parent.parent / "schemas" / "flush-graph.yaml"


def _load(tmp_path: Path, text: str) -> tuple[FlushGraph, list[str]]:
    path = tmp_path / "flush-graph.yaml"
    path.write_text(text)
    graph, problems = load_graph(path)
    return graph, [str(p).removeprefix(f"{path}:") for p in problems]


def test_reference_graph_loads_clean_with_a_line_per_node() -> None:
    graph, problems = load_graph(REFERENCE)
    assert problems == []
    assert dict(graph.grace) == {"cdn": 60.0, "default": 30.0, "pricing": 5.0}
    page = graph.nodes["cdn.product_page"]
    assert (page.op, page.target, page.derived_from) == (
        Op.KEY,
        "cdn",
        ("search.product", "assets.asset"),
    )
    assert page.location.line == 9
    assert graph.nodes["cdn.category_page"].op is Op.PREFIX
    assert graph.derived("catalog.product") == ("search.product",)


def test_missing_file_is_an_empty_graph_with_the_default_target(tmp_path: Path) -> None:
    graph, problems = load_graph(tmp_path / "flush-graph.yaml")
    assert problems == []
    assert dict(graph.nodes) == {}
    assert set(graph.grace) == {"default"}


def test_empty_file_is_an_empty_graph(tmp_path: Path) -> None:
    _, problems = _load(tmp_path, "# nothing yet\n")
    assert problems == []


def test_default_target_exists_even_when_not_declared(tmp_path: Path) -> None:
    graph, problems = _load(tmp_path, "targets:\n  cdn: {grace_seconds: 0}\n")
    assert problems == []
    assert set(graph.grace) == {"cdn", "default"}


def test_yaml_syntax_error_keeps_the_parsers_line_and_column(tmp_path: Path) -> None:
    _, problems = _load(tmp_path, "caches:\n  a: {key: x\n  b: {key: y}\n")
    assert len(problems) == 1
    assert problems[0].startswith("3: YAML syntax error at line 3, column 4")


def test_node_with_mode_soft_keeps_it(tmp_path: Path) -> None:
    graph, problems = _load(tmp_path, 'caches:\n  a: {tag: "t:{id}", mode: soft}\n')
    assert problems == []
    assert graph.nodes["a"].mode is Mode.SOFT


def test_each_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    text = (
        "targets:\n"  # 1
        "  default: {grace_seconds: -5}\n"  # 2
        "caches:\n"  # 3
        '  a: {key: "a:{id}", prefix: "p:"}\n'  # 4
        '  b: {key: "b:{id}", derived_from: [a, zz]}\n'  # 5
        '  c: {key: "c:{id", target: nowhere}\n'  # 6
        '  d: {key: "d:{id}", derived_from: a}\n'  # 7
        '  e: {key: "e:{id}", colour: red}\n'  # 8
    )
    _, problems = _load(tmp_path, text)
    assert problems == [
        "2: grace_seconds of target default is -5; it must be 0 or more",
        "4: cache node a has key and prefix; give exactly one of key, prefix, tag",
        "5: cache node b is derived from 'zz', which is not declared under caches",
        "6: cache node c names target 'nowhere', which is not declared under targets",
        "6: key of cache node c: unbalanced '{' at column 2 in 'c:{id'; close it with '}' "
        "or write '{{' for a literal brace",
        "7: derived_from of cache node d must be a list of cache node names",
        "8: unknown attribute 'colour' of cache node e (allowed: key, prefix, tag, "
        "derived_from, target, mode, scope, storm)",
    ]


def test_node_with_a_bad_parent_is_kept_so_rules_naming_it_still_resolve(tmp_path: Path) -> None:
    graph, problems = _load(tmp_path, 'caches:\n  a: {key: "a:{id}", derived_from: [zz]}\n')
    assert len(problems) == 1
    assert "a" in graph.nodes
