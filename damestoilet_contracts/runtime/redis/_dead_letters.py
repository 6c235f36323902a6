"""Reading and replaying the dead-letter stream of a Redis stream bus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from damestoilet_contracts._errors import DeliveryError, EnvelopeError
from damestoilet_contracts.runtime._envelope import STREAM_FIELD, Envelope
from damestoilet_contracts.runtime._seams import (
    DLQ_DELIVERIES,
    DLQ_FIELDS,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_REASON,
    DLQ_STREAM,
    DLQ_TIME,
)
from damestoilet_contracts.runtime.redis._bus import SyncRedis, connect, xadd_options
from damestoilet_contracts.runtime.redis._done import translate_errors
from damestoilet_contracts.runtime.redis._trust import dlq_index_field, dlq_index_key


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter entry: why, from where, and the original fields."""

    dlq_id: str
    reason: str
    stream: str
    original_id: str
    deliveries: int
    time_ms: int
    #: The entry's own fields, without the ``dlq_*`` ones.
    fields: Mapping[bytes, bytes]
    #: The consumer group that dead-lettered it ("" for letters from before the field).
    group: str = ""

    @property
    def envelope_id(self) -> str | None:
        """The envelope's ``id`` when the entry has one."""
        return self._attribute("id")

    @property
    def type(self) -> str | None:
        """The envelope's ``type`` when the entry has one."""
        return self._attribute("type")

    def _attribute(self, name: str) -> str | None:
        # A version-1 entry has it as a field; a version-2 one inside its blob, which may be
        # the malformed thing that got it dead-lettered.
        raw = self.fields.get(name.encode())
        if raw is not None or STREAM_FIELD.encode() not in self.fields:
            return _opt_text(raw)
        try:
            value: str = getattr(Envelope.from_fields(self.fields), name)
        except EnvelopeError:
            return None
        return value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (payload left out)."""
        return {
            "dlq_id": self.dlq_id,
            "id": self.envelope_id,
            "type": self.type,
            "reason": self.reason,
            "stream": self.stream,
            "original_id": self.original_id,
            "deliveries": self.deliveries,
            "time_ms": self.time_ms,
        }


def list_dead_letters(
    client: SyncRedis, dlq_stream: str, *, count: int | None = None
) -> list[DeadLetter]:
    """The entries of ``dlq_stream``, oldest first (at most ``count``)."""
    raw: Any = client.xrange(dlq_stream, count=count)
    return [_parse(_text(entry_id), fields) for entry_id, fields in raw]


def replay_dead_letters(
    client: SyncRedis,
    dlq_stream: str,
    ids: Sequence[str] | None = None,
    *,
    stream: str | None = None,
    maxlen: int | None = None,
) -> list[tuple[str, str]]:
    """Put dead letters back on their stream with their original fields (so the envelope id
    is preserved), then delete them from ``dlq_stream``.

    ``ids`` selects dead-letter entry ids (None: all); ``stream`` overrides the stream each
    entry came from. Returns ``(dlq id, new stream id)`` pairs. Raises
    :class:`DeliveryError` naming ids not in the dead-letter stream (nothing is replayed).
    """
    letters = _select(list_dead_letters(client, dlq_stream), dlq_stream, ids)
    if not letters:
        return []
    for letter in letters:
        if not (stream or letter.stream):
            raise DeliveryError(
                f"dead letter {letter.dlq_id} does not say which stream it came from; "
                "pass the stream to replay it onto"
            )
    pipe: Any = client.pipeline(transaction=False)
    for letter in letters:
        pipe.xadd(stream or letter.stream, dict(letter.fields), **xadd_options(maxlen))
    new_ids = [_text(i) for i in pipe.execute()]
    # Deleted only once every one is back on its stream: a crash in between replays twice,
    # which a purge shrugs off, rather than losing one.
    _delete(client, dlq_stream, letters)
    return [(letter.dlq_id, new) for letter, new in zip(letters, new_ids, strict=True)]


def drop_dead_letters(
    client: SyncRedis, dlq_stream: str, ids: Sequence[str] | None = None
) -> list[str]:
    """Delete dead letters for good: ``ids`` (dead-letter entry ids; None: all of them).

    Returns the ids deleted. Raises :class:`DeliveryError` naming ids not in the
    dead-letter stream (nothing is deleted).
    """
    letters = _select(list_dead_letters(client, dlq_stream), dlq_stream, ids)
    if letters:
        _delete(client, dlq_stream, letters)
    return [letter.dlq_id for letter in letters]


def _select(
    letters: list[DeadLetter], dlq_stream: str, ids: Sequence[str] | None
) -> list[DeadLetter]:
    if ids is None:
        return letters
    wanted = list(dict.fromkeys(ids))
    by_id = {letter.dlq_id: letter for letter in letters}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise DeliveryError(
            f"not in dead-letter stream {dlq_stream}: {', '.join(missing)}; "
            "see `damestoilet dlq list`"
        )
    return [by_id[i] for i in wanted]


def _delete(client: SyncRedis, dlq_stream: str, letters: Sequence[DeadLetter]) -> None:
    # The letters, then their index entries (what keeps a letter from being written twice).
    client.xdel(dlq_stream, *[letter.dlq_id for letter in letters])
    fields = [
        dlq_index_field(letter.group, letter.original_id) for letter in letters if letter.group
    ]
    if fields:
        client.hdel(dlq_index_key(dlq_stream), *fields)


def _parse(dlq_id: str, fields: Mapping[bytes, bytes]) -> DeadLetter:
    def get(name: str) -> str:
        return _opt_text(fields.get(name.encode())) or ""

    def number(name: str) -> int:
        text = get(name)
        return int(text) if text.isdigit() else 0

    own = {k: v for k, v in fields.items() if _text(k) not in DLQ_FIELDS}
    return DeadLetter(
        dlq_id=dlq_id,
        reason=get(DLQ_REASON),
        stream=get(DLQ_STREAM),
        original_id=get(DLQ_ID),
        deliveries=number(DLQ_DELIVERIES),
        time_ms=number(DLQ_TIME),
        fields=own,
        group=get(DLQ_GROUP),
    )


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _opt_text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


class RedisDeadLetters:
    """Dead letters of a Redis stream bus, behind the neutral ``entries`` / ``replay`` /
    ``drop`` verbs that ``damestoilet dlq`` uses on every bus."""

    def __init__(self, client: SyncRedis, *, owns_client: bool = False) -> None:
        """Read and replay through ``client``."""
        self.client = client
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False) -> RedisDeadLetters:
        """Dead letters of the Redis at ``url``; raises ValueError for a bad URL."""
        return cls(connect(url, cluster=cluster), owns_client=True)

    def entries(self, dlq_stream: str, *, count: int | None = None) -> list[DeadLetter]:
        """See :func:`list_dead_letters`; raises :class:`BackendError` when Redis fails."""
        with translate_errors(f"cannot read {dlq_stream}"):
            return list_dead_letters(self.client, dlq_stream, count=count)

    def replay(
        self, dlq_stream: str, ids: Sequence[str] | None = None, *, stream: str | None = None
    ) -> list[tuple[str, str]]:
        """See :func:`replay_dead_letters`; raises :class:`BackendError` when Redis fails."""
        with translate_errors(f"cannot replay {dlq_stream}"):
            return replay_dead_letters(self.client, dlq_stream, ids, stream=stream)

    def drop(self, dlq_stream: str, ids: Sequence[str] | None = None) -> list[str]:
        """See :func:`drop_dead_letters`; raises :class:`BackendError` when Redis fails."""
        with translate_errors(f"cannot drop from {dlq_stream}"):
            return drop_dead_letters(self.client, dlq_stream, ids)

    def close(self) -> None:
        """Close the client if :meth:`from_url` made it."""
        if self._owns_client:
            self.client.close()
