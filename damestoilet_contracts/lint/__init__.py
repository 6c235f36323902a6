"""Lint: every problem of a schema directory, with its ``path:line``, in one run; and the
breaking-change check between two versions of it."""

from __future__ import annotations

from damestoilet_contracts.lint._breaking import AvroMode, check_breaking, checkout_schemas
from damestoilet_contracts.lint._lint import lint_contracts, lint_directory, load_linted

__all__ = [
    "AvroMode",
    "check_breaking",
    "checkout_schemas",
    "lint_contracts",
    "lint_directory",
    "load_linted",
]
