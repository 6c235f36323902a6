"""Every public package's ``__all__`` names exactly what it imports publicly (ruff's RUF022
keeps it sorted)."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "damestoilet_contracts",
    "damestoilet_contracts.model",
    "damestoilet_contracts.loaders",
    "damestoilet_contracts.compiler",
    "damestoilet_contracts.lint",
    "damestoilet_contracts.logging",
    "damestoilet_contracts.generator",
    "damestoilet_contracts.runtime",
    "damestoilet_contracts.outbox",
    "damestoilet_contracts.runtime.varnish",
    "damestoilet_contracts.bench",
    "damestoilet_contracts.demo",
    "damestoilet_contracts.describe",
    "damestoilet_contracts.testing",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_every_public_import(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attr not in {"annotations"}
    }
    assert public == set(exported) - {"__version__"}, f"{name}: exports and __all__ differ"
