"""The Kafka backend (``kafka://HOST:PORT[,HOST:PORT]``), on confluent-kafka (the ``kafka``
extra): the contiguous-offset commit tracker, the retry hold and the CloudEvents Kafka
binding. docs/kafka.md describes them and what was tested against which broker."""

from __future__ import annotations

from damestoilet_contracts.runtime.kafka._hold import DEFAULT_CAPACITY, RetryHold
from damestoilet_contracts.runtime.kafka._offsets import OffsetTracker

__all__ = [
    "DEFAULT_CAPACITY",
    "OffsetTracker",
    "RetryHold",
]
