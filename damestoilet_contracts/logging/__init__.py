"""Logging for services and workers that run the toolkit: the runtime logs through stdlib
:mod:`logging`, each line a short message with its fields in ``extra={"damestoilet": {...}}``;
these formatters print them (docs/runtime.md, logs).

.. code-block:: python

    import logging
    from damestoilet_contracts.logging import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.getLogger("damestoilet").addHandler(handler)
"""

from __future__ import annotations

from damestoilet_contracts.runtime._logging import (
    FIELDS,
    HumanFormatter,
    JsonFormatter,
    LogFormat,
    configure,
    formatter_for,
    record_fields,
)

__all__ = [
    "FIELDS",
    "HumanFormatter",
    "JsonFormatter",
    "LogFormat",
    "configure",
    "formatter_for",
    "record_fields",
]
