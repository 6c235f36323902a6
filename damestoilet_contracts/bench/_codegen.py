"""Generating the contracts' event classes into a scratch folder and importing them, so the
demo and the benchmark emit events as a service does: ``emitter.emit(ProductPriceChanged(...))``.
"""

from __future__ import annotations

import importlib
import secrets
import sys
from pathlib import Path
from types import ModuleType

from damestoilet_contracts.generator import generate, write_output
from damestoilet_contracts.model import ContractSet


def generate_events(
    contracts: ContractSet, into: Path, *, package: str | None = None
) -> ModuleType:
    """Generate the package of ``contracts`` into ``into/<package>`` and import it.

    ``package`` defaults to a fresh name, so that several generations in one process never
    collide in ``sys.modules``. ``into`` is put on ``sys.path`` (and stays there: the
    package's modules import each other lazily). Raises :class:`CodegenError` when they
    cannot be generated.
    """
    name = package or f"dsgen_{secrets.token_hex(4)}"
    write_output(generate(contracts, package=name), into / name)
    folder = str(into.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def forget_events(module: ModuleType) -> None:
    """Drop a package imported by :func:`generate_events` (and its modules) from
    ``sys.modules`` and its folder from ``sys.path``."""
    name = module.__name__
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    folder = str(Path(module.__file__ or "").resolve().parent.parent)
    while folder in sys.path:
        sys.path.remove(folder)
