"""The NATS JetStream backend of the runtime: JetStream as the bus (durable pull consumers,
``nak(delay)`` retries, a dead-letter stream) and as a publisher (``Nats-Msg-Id`` dedup,
CloudEvents headers). Imported only when a ``nats://`` URL is opened; needs the ``nats``
extra (nats-py)."""
