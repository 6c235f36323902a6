"""Documents and pictures of a contract set: the AsyncAPI 3.0 document and the flush graph.

Reads the frozen contract model and the compiled stages, after every lint check passed; writes
nothing itself (the CLI prints or saves what these return).
"""

from __future__ import annotations

from damestoilet_contracts.describe._asyncapi import (
    ASYNCAPI_VERSION,
    Bus,
    asyncapi_document,
    parse_bus,
)
from damestoilet_contracts.describe._graph import FlushPicture, flush_picture

__all__ = [
    "ASYNCAPI_VERSION",
    "Bus",
    "FlushPicture",
    "asyncapi_document",
    "flush_picture",
    "parse_bus",
]
