"""Golden cases: every folder under tests/cases/ runs the CLI and must give its expected output.

A case folder ``tests/cases/<name>/`` holds ``schemas/`` (a schema directory) and one or more of:

* ``expected-lint.txt``: the exact stdout of ``damestoilet lint schemas`` run in the case folder
  (exit 1 when a line is an error; empty, or only ``warning:`` and ``note:`` lines, exit 0);
* ``plan-input.json``: ``{"type": ..., "payload": {...}}`` and optionally ``"cap": N``, with
  either ``expected-plan.json`` (the plan, compared as JSON, exit 0) or
  ``expected-plan-error.txt`` (the exact stderr, exit 1).

A case may instead hold several variants, sub-folders each with its own ``schemas/`` (such as
``equivalent/avro`` and ``equivalent/proto``): each runs in its sub-folder and must give the
case's one expected output.

``DAMESTOILET_UPDATE_GOLDEN=1 pytest tests/test_golden_cases.py -k <case>`` rewrites the
expected files of the selected cases from the current output; read the diff before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from damestoilet_contracts.cli import main

CASES = Path(__file__).resolve().parent / "cases"
UPDATE = os.environ.get("DAMESTOILET_UPDATE_GOLDEN") == "1"


def _case_dirs() -> list[Path]:
    if not CASES.is_dir():
        return []
    return sorted(p for p in CASES.iterdir() if p.is_dir())


def _variants(case: Path) -> list[Path]:
    """The folders to run the case in: the case itself, or its sub-folders with schemas/."""
    if (case / "schemas").is_dir():
        return [case]
    return sorted(sub for sub in case.iterdir() if (sub / "schemas").is_dir())


def _with(filename: str) -> list[object]:
    return [
        pytest.param(case, run_dir, id=str(run_dir.relative_to(CASES)))
        for case in _case_dirs()
        if (case / filename).exists()
        for run_dir in _variants(case)
    ]


def _run(case: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.chdir(case)
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_every_case_folder_has_schemas_and_an_expectation() -> None:
    assert _case_dirs(), "no golden cases found"
    for case in _case_dirs():
        assert _variants(case), f"{case.name}: no schemas/ folder, nor sub-folders with one"
        expectations = ["expected-lint.txt", "expected-plan.json", "expected-plan-error.txt"]
        assert any((case / name).exists() for name in expectations), (
            f"{case.name}: no expected-lint.txt, expected-plan.json or expected-plan-error.txt"
        )
        has_input = (case / "plan-input.json").exists()
        has_plan_expectation = any(
            (case / name).exists() for name in ("expected-plan.json", "expected-plan-error.txt")
        )
        assert has_input == has_plan_expectation, (
            f"{case.name}: plan-input.json and expected-plan(-error) go together"
        )


@pytest.mark.parametrize(("case", "run_dir"), _with("expected-lint.txt"))
def test_lint_prints_expected_problems(
    case: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected_file = case / "expected-lint.txt"
    result = _run(run_dir, ["lint", "schemas"], monkeypatch)
    if UPDATE:
        expected_file.write_text(result.stdout)
    expected = expected_file.read_text()
    assert result.stdout == expected
    errors = [
        line
        for line in expected.splitlines()
        if ": warning: " not in line and ": note: " not in line
    ]
    assert result.exit_code == (1 if errors else 0), result.stderr


@pytest.mark.parametrize(("case", "run_dir"), _with("plan-input.json"))
def test_plan_prints_expected_plan_or_error(
    case: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = json.loads((case / "plan-input.json").read_text())
    args = ["plan", "schemas", spec["type"], "--json", json.dumps(spec["payload"])]
    if "cap" in spec:
        args += ["--cap", str(spec["cap"])]
    result = _run(run_dir, args, monkeypatch)
    plan_file = case / "expected-plan.json"
    error_file = case / "expected-plan-error.txt"
    if UPDATE:
        if result.exit_code == 0:
            plan_file.write_text(json.dumps(json.loads(result.stdout), indent=2) + "\n")
        else:
            error_file.write_text(result.stderr)
    if plan_file.exists():
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == json.loads(plan_file.read_text())
        assert result.stdout.count("\n") == 1, "the plan is printed on one line"
    else:
        assert result.exit_code == 1, result.stdout
        assert result.stdout == ""
        assert result.stderr == error_file.read_text()
