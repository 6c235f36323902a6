"""The runtime a service imports: envelope, bus backends, emitters, coordinator, purge
targets, read-through cache. It needs neither the loaders nor the generator."""

from __future__ import annotations

from damestoilet_contracts.runtime._purge import PurgeStats, RedisPurgeTarget

__all__ = [
    "PurgeStats",
    "RedisPurgeTarget",
]
