"""The code generator: contracts to a Python or TypeScript package of typed events.

:func:`generate` renders, from the frozen contract model, one module per schema namespace
(frozen dataclasses with ``to_bytes``/``from_bytes``/``flush_plan``), ``handlers.py`` (the
registry ``HANDLERS`` and ``EVENTS``) and the package ``__init__``, plus protoc's ``_pb2``
modules for Protobuf contracts. :func:`generate_ts` renders the same contracts as an ESM
TypeScript package (classes with ``toBytes``/``fromBytes``/``flushPlan``, the version-2
envelope, a Redis Streams emitter). Templates ship as package data under ``templates/``.
:func:`diff_output` and :func:`write_output` compare the result with, or write it to, a folder.
"""

from __future__ import annotations

from damestoilet_contracts.generator._output import OutputDiff, diff_output, write_output
from damestoilet_contracts.generator._package import (
    LANGS,
    Lang,
    check_npm_name,
    check_package_name,
    generate,
    generate_directory,
    generate_ts,
)
from damestoilet_contracts.generator._render import GENERATED_MARKER
from damestoilet_contracts.generator._ts_render import TS_GENERATED_MARKER

__all__ = [
    "GENERATED_MARKER",
    "LANGS",
    "TS_GENERATED_MARKER",
    "Lang",
    "OutputDiff",
    "check_npm_name",
    "check_package_name",
    "diff_output",
    "generate",
    "generate_directory",
    "generate_ts",
    "write_output",
]
