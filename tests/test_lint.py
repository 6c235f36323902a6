"""Lint's cross-checks of events against the flush graph, and the lint and plan commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts import ContractError
from damestoilet_contracts.cli import main
from damestoilet_contracts.lint import lint_contracts, lint_directory, load_linted
from damestoilet_contracts.model import Kind, TypeRef
from tests.handmade import (
    cache_rule,
    contracts,
    event,
    field,
    graph,
    node,
    product_price_changed,
    reference_graph,
    rule,
)

CASES = Path(__file__).resolve().parent / "cases"


def _messages(cs) -> list[str]:
    return [p.message for p in lint_contracts(cs)]


def test_reference_contract_is_clean() -> None:
    assert lint_contracts(contracts(reference_graph(), product_price_changed())) == []


def test_unknown_target_is_reported_with_a_suggestion() -> None:
    e = event("t.v1.E", [field("id")], [rule("key", "k:{id}", target="pricng", line=4)])
    [problem] = lint_contracts(contracts(reference_graph(), e))
    assert problem.location.line == 4
    assert "target 'pricng'" in problem.message
    assert "did you mean 'pricing'?" in problem.message


def test_unknown_cache_node_is_reported_with_a_suggestion() -> None:
    e = event("t.v1.E", [field("id")], [cache_rule("catalog.prodcut")])
    [message] = _messages(contracts(reference_graph(), e))
    assert "cache node 'catalog.prodcut'" in message
    assert "did you mean 'catalog.product'?" in message


def test_cycle_is_named_once_even_without_events() -> None:
    g = graph(node("a", "key", "a:{id}", "b", line=2), node("b", "key", "b:{id}", "a", line=3))
    [problem] = lint_contracts(contracts(g))
    assert problem.location.line == 2
    assert "cycle a -> b -> a" in problem.message


def test_derived_node_needing_a_field_the_event_lacks_names_event_and_field() -> None:
    e = event("t.v1.OnlyCategory", [field("category_id")], [cache_rule("catalog.category")])
    assert _messages(contracts(reference_graph(), e)) == []
    e = event("t.v1.NoProductId", [field("id")], [cache_rule("catalog.product")])
    messages = _messages(contracts(reference_graph(), e))
    # catalog.product itself, then both nodes derived from it, each lack product_id
    assert len(messages) == 3
    assert all("t.v1.NoProductId" in m and "'product_id'" in m for m in messages)
    assert any("cache node cdn.product_page" in m for m in messages)


def test_reached_node_needing_a_nullable_field_is_refused() -> None:
    e = event(
        "t.v1.E",
        [field("category_id", TypeRef(Kind.STRING, nullable=True))],
        [cache_rule("catalog.category")],
    )
    messages = _messages(contracts(reference_graph(), e))
    assert len(messages) == 2
    assert all("{category_id} is nullable" in m for m in messages)


def test_lint_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    [problem] = lint_directory(tmp_path / "nope")
    assert "schema directory not found" in problem.message


def test_load_linted_raises_every_lint_problem(tmp_path: Path) -> None:
    shutil.copytree(CASES / "graph-unknown-cache" / "schemas", tmp_path / "schemas")
    with pytest.raises(ContractError) as info:
        load_linted(tmp_path / "schemas")
    assert len(info.value.problems) == 2


@pytest.fixture
def reference_case(monkeypatch: pytest.MonkeyPatch) -> Path:
    case = CASES / "plan-three-stages"
    monkeypatch.chdir(case)
    return case


PAYLOAD = {"product_id": "p1", "store_ids": ["s1"], "category_id": "c1", "price_cents": 1}
TYPE = "catalog.v1.ProductPriceChanged"


def test_lint_defaults_to_the_schemas_folder(reference_case: Path) -> None:
    result = CliRunner().invoke(main, ["lint"])
    assert (result.exit_code, result.stdout) == (0, "")


def test_lint_of_a_folder_that_does_not_exist_is_a_usage_error(reference_case: Path) -> None:
    assert CliRunner().invoke(main, ["lint", "nope"]).exit_code == 2


def test_lint_counts_problems_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / "graph-unknown-cache")
    result = CliRunner().invoke(main, ["lint", "schemas"])
    assert result.exit_code == 1
    assert result.stderr == "2 problems in schemas\n"


def test_plan_reads_the_payload_from_stdin(reference_case: Path) -> None:
    result = CliRunner().invoke(
        main, ["plan", "schemas", TYPE, "--json", "-"], input=json.dumps(PAYLOAD)
    )
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["stages"]) == 3


def test_plan_prints_one_line_as_json_dumps_does_and_indents_on_request(
    reference_case: Path,
) -> None:
    args = ["plan", "schemas", TYPE, "--json", json.dumps(PAYLOAD)]
    compact = CliRunner().invoke(main, args)
    plan = json.loads(compact.stdout)
    assert compact.stdout == json.dumps(plan) + "\n"
    indented = CliRunner().invoke(main, [*args, "--indent", "2"])
    assert indented.stdout == json.dumps(plan, indent=2) + "\n"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "--json is not valid JSON"),
        ("[1, 2]", "--json must be a JSON object"),
        (
            '{"product_id": 5, "store_ids": [], "category_id": "c1", "price_cents": 1}',
            "field 'product_id' must be a string, got number 5",
        ),
        ('{"product_id": "p1"}', "required field 'store_ids' is missing"),
    ],
)
def test_plan_refuses_bad_input_on_stderr_with_exit_1(
    reference_case: Path, payload: str, message: str
) -> None:
    result = CliRunner().invoke(main, ["plan", "schemas", TYPE, "--json", payload])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert message in result.stderr


def test_plan_cap_below_one_is_a_usage_error(reference_case: Path) -> None:
    args = ["plan", "schemas", TYPE, "--json", json.dumps(PAYLOAD), "--cap", "0"]
    assert CliRunner().invoke(main, args).exit_code == 2


def test_lint_formats_json_and_github_annotations() -> None:
    case = CASES / "avro-near-miss-annotation" / "schemas"
    runner = CliRunner()
    as_json = runner.invoke(main, ["lint", str(case), "--format", "json"])
    assert as_json.exit_code == 1
    problems = json.loads(as_json.stdout)
    assert [p["line"] for p in problems] == [9, 5, 5]
    assert problems[2]["path"].endswith("blog.v1.PostPublished.avsc")
    assert "did you mean 'damestoilet'?" in problems[2]["message"]
    github = runner.invoke(main, ["lint", str(case), "--format", "github"])
    assert github.exit_code == 1
    first = github.stdout.splitlines()[0]
    assert first.startswith(f"::error file={case}/avro/blog.v1.PostDeleted.avsc,line=9,")
    assert first.endswith("move the damestoilet attribute to the record")
    clean = runner.invoke(
        main, ["lint", str(CASES / "plan-three-stages" / "schemas"), "--format", "json"]
    )
    assert (clean.exit_code, json.loads(clean.stdout)) == (0, [])


def test_github_annotations_escape_what_the_runner_reads() -> None:
    from damestoilet_contracts._errors import Problem, SourceLocation
    from damestoilet_contracts.cli._lint import _github

    problem = Problem(SourceLocation("a,b:c.avsc", 3, 2), "50% wrong\nsecond line")
    assert _github(problem) == (
        "::error file=a%2Cb%3Ac.avsc,line=3,col=2,title=damestoilet lint::50%25 wrong%0Asecond line"
    )
