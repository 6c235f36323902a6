"""Generating a package: protoc, the naming pass, rendering and formatting, in that order.

Python (the default) and TypeScript share protoc's run and the neutral pass of
:mod:`._collect`; each has its own naming pass, templates and formatter.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from typing import Literal

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.generator._build import build_package
from damestoilet_contracts.generator._protobuf import run_protoc
from damestoilet_contracts.generator._render import format_files, render_package
from damestoilet_contracts.generator._ts_build import build_ts_package
from damestoilet_contracts.generator._ts_render import format_ts_files, render_ts_package
from damestoilet_contracts.model import ContractSet

Lang = Literal["python", "ts"]
#: The languages ``damestoilet generate --lang`` knows.
LANGS: tuple[Lang, ...] = ("python", "ts")
# npm's rule for a package name: lowercase, optionally scoped, URL-safe characters.
_NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")


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


def generate_ts(contracts: ContractSet, *, package: str) -> dict[str, str]:
    """Every file of the TypeScript package generated from ``contracts``.

    ``package`` is the npm name written to its package.json. Returns the files by POSIX path
    inside the output folder (``package.json``, ``tsconfig.json``, ``src/*.ts``), sorted,
    formatted by prettier, identical on every run. Raises :class:`CodegenError` for an invalid
    name, a failing protoc or prettier, or a type TypeScript cannot express.
    """
    check_npm_name(package)
    proto_files = sorted({e.source for e in contracts.events.values() if e.format == "proto"})
    proto = run_protoc(Path(contracts.root), proto_files, "_ts") if proto_files else None
    view = build_ts_package(contracts, package, proto)
    return format_ts_files(render_ts_package(view, name=package))


def generate_directory(schema_dir: Path, *, package: str, lang: Lang = "python") -> dict[str, str]:
    """Load the schema directory ``schema_dir`` and generate its package in ``lang``.

    Raises :class:`ContractError` listing every problem lint reports (the graph's
    cross-checks included: code for a contract lint refuses is never written), and what
    :func:`generate` or :func:`generate_ts` raises.
    """
    from damestoilet_contracts.lint import load_linted

    contracts = load_linted(schema_dir)
    if lang == "ts":
        return generate_ts(contracts, package=package)
    return generate(contracts, package=package)


def check_npm_name(name: str) -> None:
    """Raise :class:`CodegenError` unless ``name`` is a valid npm package name."""
    if len(name) > 214 or not _NPM_NAME.match(name):
        raise CodegenError(
            f"{name!r} is not an npm package name; pass --package with a lowercase name such "
            "as 'shop-events' or '@shop/events'"
        )


def check_package_name(package: str) -> None:
    """Raise :class:`CodegenError` unless ``package`` is a dotted Python import name."""
    parts = package.split(".")
    if not all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
        raise CodegenError(
            f"{package!r} is not a Python package name; pass --package with a name such as "
            "'codegen' or 'myservice.events'"
        )
