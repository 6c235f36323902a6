"""Lint: every problem of a schema directory, with its ``path:line``, in one run."""

from __future__ import annotations

from damestoilet_contracts.lint._lint import lint_contracts, lint_directory, load_linted

__all__ = ["lint_contracts", "lint_directory", "load_linted"]
