"""Lint finds what looks meant as an event but is not read, and refuses a folder of no events.

Each of these once passed lint with exit 0 while the event silently disappeared (issue 16).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.lint import lint_directory

GRAPH = "targets:\n  default: {grace_seconds: 1}\n"


def _avro_folder(root: Path, record: dict[str, object]) -> Path:
    schemas = root / "schemas"
    schemas.mkdir()
    (schemas / "flush-graph.yaml").write_text(GRAPH)
    (schemas / "blog.v1.PostChanged.avsc").write_text(json.dumps(record, indent=2))
    return schemas


def _record(**extra: object) -> dict[str, object]:
    return {
        "type": "record",
        "name": "PostChanged",
        "namespace": "blog.v1",
        **extra,
        "fields": [{"name": "post_id", "type": "string"}],
    }


RULES = {"flush": [{"key": "post:{post_id}"}]}


@pytest.mark.parametrize("spelling", ["damestoillet", "damestoilett", "Damestoilet", "damestoile"])
def test_a_misspelled_avro_annotation_is_reported_with_did_you_mean(
    tmp_path: Path, spelling: str
) -> None:
    schemas = _avro_folder(tmp_path, _record(**{spelling: RULES}))
    [problem] = lint_directory(schemas)
    assert problem.location.path.endswith("blog.v1.PostChanged.avsc")
    assert problem.location.line == 5  # the line of the misspelled key, as json.dumps lays it
    assert f"attribute {spelling!r}" in problem.message
    assert "did you mean 'damestoilet'?" in problem.message


def test_flush_at_the_records_top_level_is_reported_with_the_fix(tmp_path: Path) -> None:
    schemas = _avro_folder(tmp_path, _record(flush=RULES["flush"]))
    [problem] = lint_directory(schemas)
    assert problem.location.line == 5
    assert "top-level flush attribute" in problem.message
    assert '"damestoilet": {"flush": [...]}' in problem.message


def test_an_annotation_on_a_field_is_reported(tmp_path: Path) -> None:
    record = _record(damestoilet=RULES)
    record["fields"] = [
        {"name": "post_id", "type": "string"},
        {"name": "body", "type": "string", "damestoilet": RULES},
    ]
    [problem] = lint_directory(_avro_folder(tmp_path, record))
    assert "field 'body' of record blog.v1.PostChanged" in problem.message
    assert "move the damestoilet attribute to the record" in problem.message


def test_other_custom_attributes_are_not_near_misses(tmp_path: Path) -> None:
    """Avro allows any extra attribute; only look-alikes of the annotation are reported."""
    record = _record(damestoilet=RULES, owner="blog-team", java_class="x.Y")
    assert lint_directory(_avro_folder(tmp_path, record)) == []


@pytest.mark.parametrize(
    "option", ["damestoilet.v1.events", "damestoillet.v1.event", "damestoilet.v1.Event"]
)
def test_a_misspelled_protobuf_option_is_reported_with_did_you_mean(
    tmp_path: Path, option: str
) -> None:
    schemas = tmp_path / "schemas"
    (schemas / "proto" / "blog" / "v1").mkdir(parents=True)
    (schemas / "flush-graph.yaml").write_text(GRAPH)
    (schemas / "proto" / "blog" / "v1" / "blog.proto").write_text(
        textwrap.dedent(
            f"""\
            syntax = "proto3";
            package blog.v1;
            import "damestoilet/v1/options.proto";
            message PostChanged {{
              option ({option}) = {{flush: {{key: "post:{{post_id}}"}}}};
              string post_id = 1;
            }}
            """
        )
    )
    [problem] = lint_directory(schemas)
    assert problem.location.line == 5
    assert f'option "({option})" is unknown' in problem.message
    assert "did you mean (damestoilet.v1.event)?" in problem.message


def test_lint_and_generate_exit_1_on_a_folder_with_no_event_types(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "flush-graph.yaml").write_text(GRAPH)
    (schemas / "blog.v1.Author.avsc").write_text(json.dumps(_record()))  # a type, no event
    runner = CliRunner()
    linted = runner.invoke(main, ["lint", str(schemas)])
    assert linted.exit_code == 1
    assert "no event types found" in linted.output
    generated = runner.invoke(main, ["generate", str(schemas), "--out", str(tmp_path / "out")])
    assert generated.exit_code == 1
    assert "no event types found" in generated.output
    assert not (tmp_path / "out").exists()


def test_a_broken_file_is_reported_alone_not_also_as_no_event_types(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "flush-graph.yaml").write_text(GRAPH)
    (schemas / "bad.avsc").write_text("{")
    [problem] = lint_directory(schemas)
    assert "invalid JSON" in problem.message
