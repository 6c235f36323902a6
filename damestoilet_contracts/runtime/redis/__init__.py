"""The Redis backend of the runtime: Redis Streams as the bus, Redis (standalone or cluster)
as the purge target, the done store and the read-through cache. Its public names are
exported by :mod:`damestoilet_contracts.runtime`."""
