"""Golden codegen cases: ``tests/cases/codegen-<feature>/schemas`` must generate exactly the
package under ``expected-codegen/<package>/``, and that code, like ``codegen/``, must pass ruff
and ``mypy --strict``.

One case per type feature (nested records, enums, array fan-out, maps, optional fields, logical
types), each with an Avro and a Protobuf event. ``DAMESTOILET_UPDATE_GOLDEN=1 pytest
tests/test_generator_golden.py`` rewrites the expected packages; read the diff before committing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from damestoilet_contracts.generator import diff_output, generate_directory, write_output

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"
CODEGEN_CASES = sorted(p for p in CASES.glob("codegen-*") if p.is_dir())
FEATURES = {"nested", "enum", "array-fanout", "map", "optional", "logical"}
UPDATE = os.environ.get("DAMESTOILET_UPDATE_GOLDEN") == "1"


def package_dir(case: Path) -> Path:
    """The one package folder of a case's expected-codegen/ (its name is the package name)."""
    found = [
        p
        for p in (case / "expected-codegen").iterdir()
        if p.is_dir() and not p.name.startswith((".", "__"))
    ]
    assert len(found) == 1, f"{case.name}: expected-codegen/ must hold one package folder"
    return found[0]


def generated_dirs() -> list[Path]:
    return [ROOT / "codegen", *(package_dir(case) for case in CODEGEN_CASES)]


def test_golden_cases_cover_every_type_feature_in_both_formats() -> None:
    assert {case.name.removeprefix("codegen-") for case in CODEGEN_CASES} >= FEATURES
    for case in CODEGEN_CASES:
        assert list((case / "schemas").rglob("*.avsc")), f"{case.name}: no Avro schema"
        assert list((case / "schemas").rglob("*.proto")), f"{case.name}: no Protobuf schema"


@pytest.mark.parametrize("case", CODEGEN_CASES, ids=lambda p: p.name)
def test_case_generates_its_expected_package_byte_for_byte(case: Path) -> None:
    target = package_dir(case)
    files = generate_directory(case / "schemas", package=target.name)
    if UPDATE:
        write_output(files, target)
    diff = diff_output(files, target)
    assert diff.clean, "\n".join(diff.lines())


def test_codegen_folder_is_what_schemas_generate() -> None:
    files = generate_directory(ROOT / "schemas", package="codegen")
    diff = diff_output(files, ROOT / "codegen")
    assert diff.clean, "\n".join(diff.lines()) + "\nrun: damestoilet generate schemas --out codegen"


def test_generated_code_passes_ruff_check_and_ruff_format() -> None:
    paths = [str(p.relative_to(ROOT)) for p in generated_dirs()]
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_generated_code_passes_mypy_strict(tmp_path: Path) -> None:
    paths = [str(p.relative_to(ROOT)) for p in generated_dirs()]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            *paths,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
