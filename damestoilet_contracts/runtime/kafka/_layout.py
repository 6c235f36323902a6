"""What damestoilet keeps in Kafka, named in one place, the URL and the client configuration.

- The events travel on the topic :func:`topic_name` of ``<stream>`` (``damestoilet:events``
  becomes ``damestoilet.events``: a topic name allows only ``[A-Za-z0-9._-]``), each a
  CloudEvents binary-mode record keyed by the event's partition key (docs/kafka.md).
- Dead letters go to the topic of ``<stream>:dlq`` (``damestoilet.events.dlq``): the
  original key, value and headers, plus ``dlq_reason``, ``dlq_stream``, ``dlq_id`` (the
  original's ``partition-offset``), ``dlq_deliveries``, ``dlq_time`` (ms) headers. Replaying or
  dropping one appends a tombstone (the dead letter's id as key, no value, ``dlq_drop``).
- A consumer group is the Kafka consumer group of that name; its committed offsets are the
  contiguous settled prefix of each partition.

``kafka://HOST:PORT[,HOST:PORT]`` names the bootstrap servers; query parameters are passed to
librdkafka as they are, so TLS and SASL are configured in the URL:
``kafka://b1:9093,b2:9093?security.protocol=SASL_SSL&sasl.mechanism=PLAIN&sasl.username=u``
``&sasl.password=p&ssl.ca.location=/etc/ca.pem``. confluent-kafka errors leave this package
as :class:`BackendError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from damestoilet_contracts._errors import BackendError, ConfigError, MissingExtraError
from damestoilet_contracts.runtime._seams import dlq_stream_name

try:
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - the registry reports it with the extra
    raise MissingExtraError(
        "kafka:// needs confluent-kafka: pip install 'damestoilet-contracts[kafka]'"
    ) from exc

#: Partitions of a topic this backend creates (an existing topic keeps its own).
DEFAULT_PARTITIONS = 4
#: A member not heard from this long loses its partitions to the others (ms). librdkafka's
#: default is 45 s; Tansu also holds a new group's first join for half of it.
DEFAULT_SESSION_TIMEOUT_MS = 10_000
#: The header a tombstone on the dead-letter topic carries (its value: why).
DLQ_DROP = "dlq_drop"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: URL query parameters that are this backend's own, not librdkafka's.
_OWN = {"partitions"}


def topic_name(stream: str) -> str:
    """The Kafka topic of ``stream``: characters a topic name may not hold become ``.``."""
    return _UNSAFE.sub(".", stream)


def dlq_topic(stream: str) -> str:
    """The dead-letter topic of ``stream``: the topic of ``<stream>:dlq``."""
    return topic_name(dlq_stream_name(stream))


def parse_url(url: str) -> tuple[dict[str, str], int]:
    """The librdkafka configuration (``bootstrap.servers`` and the query parameters) and the
    partitions of topics to create, from ``kafka://HOST:PORT[,HOST:PORT][?key=value...]``.
    Raises :class:`ConfigError` for another URL."""
    parts = urlsplit(url)
    hosts = unquote(parts.netloc)
    if parts.scheme != "kafka" or not hosts or "@" in hosts:
        raise ConfigError(
            f"{url!r} is not a Kafka URL: write kafka://HOST:PORT[,HOST:PORT], with librdkafka "
            "options (sasl.username=...) as query parameters"
        )
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ConfigError(f"{url!r}: bootstrap server {host!r} is not HOST:PORT")
    config = {"bootstrap.servers": hosts}
    partitions = DEFAULT_PARTITIONS
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "partitions":
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"{url!r}: partitions must be a positive integer")
            partitions = int(value)
        elif key not in _OWN:
            config[key] = value
    return config, partitions


def backend_error(what: str, exc: BaseException) -> BackendError:
    """A :class:`BackendError` for the confluent-kafka error ``exc`` behind ``what``."""
    return BackendError(f"{what}: {exc}")


#: What confluent-kafka raises for a failing or unreachable broker.
KAFKA_ERRORS: tuple[type[BaseException], ...] = (confluent_kafka.KafkaException,)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn a confluent-kafka error inside the block into :class:`BackendError` naming
    ``what``."""
    try:
        yield
    except KAFKA_ERRORS as exc:
        raise backend_error(what, exc) from exc


def ensure_topics(config: Mapping[str, str], topics: list[str], partitions: int) -> None:
    """Create ``topics`` with ``partitions`` each where they do not exist."""
    admin = AdminClient(dict(config))
    with translated(f"cannot create topics {', '.join(topics)}"):
        existing = admin.list_topics(timeout=10).topics
        wanted = [
            NewTopic(t, partitions, replication_factor=-1) for t in topics if t not in existing
        ]
        if not wanted:
            return
        for _topic, future in admin.create_topics(wanted, operation_timeout=10).items():
            try:
                future.result(timeout=30)
            except confluent_kafka.KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, confluent_kafka.KafkaError) else None
                if code != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise


def delivery_errors(
    producer: Any, reports: list[BaseException | None], what: str, timeout_s: float = 30.0
) -> None:
    """Flush ``producer`` and raise :class:`BackendError` if a record was not stored (its
    delivery report is an error) or the flush timed out."""
    left = producer.flush(timeout_s)
    failed = [r for r in reports if r is not None]
    if failed:
        raise BackendError(f"{what}: {len(failed)} record(s) not stored: {failed[0]}")
    if left:
        raise BackendError(f"{what}: {left} record(s) not acknowledged after {timeout_s}s")


def producer_config(config: Mapping[str, str]) -> dict[str, Any]:
    """An idempotent producer's configuration: ``acks=all``, ``enable.idempotence``, and
    Java's partitioner (murmur2), so that a key lands where Java clients put it too."""
    return {
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        **config,
    }
