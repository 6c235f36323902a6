"""Session fixtures: the TypeScript packages of schemas/ and of every golden case, compiled once."""

from __future__ import annotations

import functools
from pathlib import Path
from types import MappingProxyType

import pytest

from damestoilet_contracts.generator import generate_directory

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"


def ts_schema_dirs() -> dict[str, Path]:
    """Package name -> schema folder: ``schemas`` (reference) and each golden codegen case."""
    found = {"reference": ROOT / "schemas"}
    for case in sorted(CASES.glob("codegen-*")):
        found[case.name] = case / "schemas"
    return found


@functools.cache
def generated_ts(name: str) -> MappingProxyType[str, str]:
    """The TypeScript files generated for ``name`` (a key of :func:`ts_schema_dirs`), once per
    session: prettier takes seconds, and several tests read the same packages."""
    files = generate_directory(ts_schema_dirs()[name], package=name.lower(), lang="ts")
    return MappingProxyType(files)


@pytest.fixture(scope="session")
def ts_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Package name -> compiled ``index.js`` of its generated TypeScript package."""
    from tests.typescript import compile_together

    packages = {name: generated_ts(name) for name in ts_schema_dirs()}
    return compile_together(tmp_path_factory.mktemp("ts-packages"), packages)
