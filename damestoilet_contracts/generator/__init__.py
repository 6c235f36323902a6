"""The code generator: contracts to a Python package of typed events and flush handlers.

:func:`generate` renders, from the frozen contract model, one module per schema namespace
(frozen dataclasses with ``to_bytes``/``from_bytes``/``flush_plan``), ``handlers.py`` (the
registry ``HANDLERS`` and ``EVENTS``) and the package ``__init__``, plus protoc's ``_pb2``
modules for Protobuf contracts. Templates ship as package data under ``templates/``.
:func:`diff_output` and :func:`write_output` compare the result with, or write it to, a folder.
"""

from __future__ import annotations

from damestoilet_contracts.generator._output import OutputDiff, diff_output, write_output
from damestoilet_contracts.generator._package import (
    check_package_name,
    generate,
    generate_directory,
)
from damestoilet_contracts.generator._render import GENERATED_MARKER

__all__ = [
    "GENERATED_MARKER",
    "OutputDiff",
    "check_package_name",
    "diff_output",
    "generate",
    "generate_directory",
    "write_output",
]
