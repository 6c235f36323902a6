"""Generating a package: protoc, the naming pass, rendering and formatting, in that order."""

from __future__ import annotations

import keyword
from pathlib import Path

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.generator._build import build_package
from damestoilet_contracts.generator._protobuf import run_protoc
from damestoilet_contracts.generator._render import format_files, render_package
from damestoilet_contracts.model import ContractSet


def generate(contracts: ContractSet, *, package: str) -> dict[str, str]:
    """Every file of the Python package generated from ``contracts``.

    Takes the loaded contract set (its ``root`` must be the schema directory, for protoc) and
    ``package``, the import name the output will have (protoc's modules import through it).
    Returns the files by POSIX path inside the package, sorted, formatted, identical on every
    run. Raises :class:`CodegenError` for an invalid package name, a failing protoc, or a type
    the generator cannot express.
    """
    check_package_name(package)
    proto_files = sorted({e.source for e in contracts.events.values() if e.format == "proto"})
    proto = run_protoc(Path(contracts.root), proto_files, package) if proto_files else None
    view = build_package(contracts, package, proto)
    if proto is None:
        files = render_package(view, {}, {})
    else:
        files = render_package(view, proto.files, proto.sources)
    return format_files(files)


def generate_directory(schema_dir: Path, *, package: str) -> dict[str, str]:
    """Load the schema directory ``schema_dir`` and :func:`generate` its package.

    Raises :class:`ContractError` listing every problem lint reports (the graph's
    cross-checks included: code for a contract lint refuses is never written), and what
    :func:`generate` raises.
    """
    from damestoilet_contracts.lint import load_linted

    return generate(load_linted(schema_dir), package=package)


def check_package_name(package: str) -> None:
    """Raise :class:`CodegenError` unless ``package`` is a dotted Python import name."""
    parts = package.split(".")
    if not all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
        raise CodegenError(
            f"{package!r} is not a Python package name; pass --package with a name such as "
            "'codegen' or 'myservice.events'"
        )
