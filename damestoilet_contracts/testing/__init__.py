"""Testing a service's contracts: an in-memory bus, plan and purge assertions, the pytest plugin.

The pytest plugin (:mod:`damestoilet_contracts.testing.plugin`) is registered through the
``pytest11`` entry point, so its fixtures are there in any test session once the package is
installed. Everything here is also usable without pytest.
"""

from __future__ import annotations

from damestoilet_contracts.testing._memory import AsyncMemoryEmitter, MemoryBus, MemoryEmitter
from damestoilet_contracts.testing._purges import Drain, PurgeCheck, assert_plan
from damestoilet_contracts.testing._server import redis_server

__all__ = [
    "AsyncMemoryEmitter",
    "Drain",
    "MemoryBus",
    "MemoryEmitter",
    "PurgeCheck",
    "assert_plan",
    "redis_server",
]
