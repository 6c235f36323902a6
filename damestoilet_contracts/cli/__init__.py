"""The ``damestoilet`` command line: thin click commands over the library."""

from __future__ import annotations

from damestoilet_contracts.cli._main import main

__all__ = ["main"]
