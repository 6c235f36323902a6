"""The end-to-end demo behind ``damestoilet demo``: a local Redis, generated code, a
coordinator, and a price change whose stale cache entries are flushed through the graph."""

from __future__ import annotations

from damestoilet_contracts.demo._scenario import DemoResult, Entry, entries, run_demo

__all__ = ["DemoResult", "Entry", "entries", "run_demo"]
