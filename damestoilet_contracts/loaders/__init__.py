"""The loaders: schema files and the flush graph read into the frozen contract model.

Every problem is collected with its ``path:line``, so lint reports them all in one run.
"""

from __future__ import annotations

from damestoilet_contracts.loaders._directory import collect_contracts, load_contracts
from damestoilet_contracts.loaders._graph import load_graph
from damestoilet_contracts.loaders._messages import proto_message_class

__all__ = ["collect_contracts", "load_contracts", "load_graph", "proto_message_class"]
