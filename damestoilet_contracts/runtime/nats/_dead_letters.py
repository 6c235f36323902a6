"""Reading and replaying the dead-letter stream of a JetStream bus (``<subject>:dlq``, stored
in ``<NAME>_DLQ``): each message is the original body with the original headers and the
``dlq_*`` ones. A dead letter's id is its sequence in the dead-letter stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import nats.js.errors

from damestoilet_contracts._errors import DeliveryError
from damestoilet_contracts.runtime._blocking import LoopThread
from damestoilet_contracts.runtime._seams import (
    DLQ_DELIVERIES,
    DLQ_FIELDS,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_REASON,
    DLQ_STREAM,
    DLQ_TIME,
)
from damestoilet_contracts.runtime.nats._layout import (
    connect,
    ensure_stream,
    stream_name,
    translated,
)
from damestoilet_contracts.runtime.redis._dead_letters import DeadLetter


def _number(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


async def _list(js: Any, dlq_subject: str, count: int | None) -> list[tuple[DeadLetter, Any]]:
    name = stream_name(dlq_subject)
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        return []
    out: list[tuple[DeadLetter, Any]] = []
    if not info.state.messages:
        return out
    first, last = max(1, int(info.state.first_seq)), int(info.state.last_seq)
    for seq in range(first, last + 1):
        if count is not None and len(out) >= count:
            break
        try:
            raw = await js.get_msg(name, seq)
        except nats.js.errors.NotFoundError:
            continue  # deleted (replayed) meanwhile
        headers = dict(raw.headers or {})
        # What `dlq list` shows of the event comes from its CloudEvents headers.
        shown = {
            name.encode(): unquote(headers.get(f"ce-{name}", "")).encode()
            for name in ("id", "type")
            if f"ce-{name}" in headers
        }
        letter = DeadLetter(
            dlq_id=str(seq),
            reason=headers.get(DLQ_REASON, ""),
            stream=headers.get(DLQ_STREAM, ""),
            original_id=headers.get(DLQ_ID, ""),
            deliveries=_number(headers.get(DLQ_DELIVERIES)),
            time_ms=_number(headers.get(DLQ_TIME)),
            fields=shown,
            group=headers.get(DLQ_GROUP, ""),
        )
        original = {k: v for k, v in headers.items() if k not in DLQ_FIELDS}
        out.append((letter, (original, bytes(raw.data or b""))))
    return out


async def list_dead_letters_async(
    url: str, dlq_subject: str, *, count: int | None = None
) -> list[DeadLetter]:
    """The dead letters on ``dlq_subject`` of the NATS server at ``url``, oldest first."""
    nc = await connect(url)
    try:
        async with translated(f"reading {dlq_subject} failed"):
            return [letter for letter, _ in await _list(nc.jetstream(), dlq_subject, count)]
    finally:
        await nc.close()


async def replay_dead_letters_async(
    url: str,
    dlq_subject: str,
    ids: Sequence[str] | None = None,
    *,
    stream: str | None = None,
) -> list[tuple[str, str]]:
    """Publish dead letters back on their subject with their original body and headers (the
    envelope id unchanged; ``Nats-Msg-Id`` gets a ``:replay:<dlq id>`` suffix so that the
    duplicate window does not drop the replay), then delete them from the dead-letter
    stream. Returns ``(dlq id, new sequence)`` pairs; raises :class:`DeliveryError` naming
    ids not in the dead-letter stream (nothing is replayed)."""
    nc = await connect(url)
    try:
        js = nc.jetstream()
        async with translated(f"replaying {dlq_subject} failed"):
            letters = _select(await _list(js, dlq_subject, None), dlq_subject, ids)
            out = []
            for letter, original in letters:
                target = stream or letter.stream
                if not target:
                    raise DeliveryError(
                        f"dead letter {letter.dlq_id} does not say which subject it came "
                        "from; pass the stream to replay it onto"
                    )
                await ensure_stream(js, target)
                headers, body = original
                headers["Nats-Msg-Id"] = f"{headers.get('ce-id', '')}:replay:{letter.dlq_id}"
                ack = await js.publish(target, body, headers=headers)
                out.append((letter.dlq_id, str(ack.seq)))
            # Deleted only once every one is back: a crash in between replays twice.
            for letter, _ in letters:
                await js.delete_msg(stream_name(dlq_subject), int(letter.dlq_id))
            return out
    finally:
        await nc.close()


def _select(
    letters: list[tuple[DeadLetter, Any]], dlq_subject: str, ids: Sequence[str] | None
) -> list[tuple[DeadLetter, Any]]:
    if ids is None:
        return letters
    wanted = list(dict.fromkeys(ids))
    by_id = {letter.dlq_id: (letter, o) for letter, o in letters}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise DeliveryError(
            f"not in dead-letter stream {dlq_subject}: {', '.join(missing)}; "
            "see `damestoilet dlq list`"
        )
    return [by_id[i] for i in wanted]


async def drop_dead_letters_async(
    url: str, dlq_subject: str, ids: Sequence[str] | None = None
) -> list[str]:
    """Delete dead letters for good: ``ids`` (their sequences; None: all). Returns the ids
    deleted; raises :class:`DeliveryError` naming ids not in the dead-letter stream (nothing
    is deleted)."""
    nc = await connect(url)
    try:
        js = nc.jetstream()
        async with translated(f"dropping from {dlq_subject} failed"):
            letters = _select(await _list(js, dlq_subject, None), dlq_subject, ids)
            for letter, _ in letters:
                await js.delete_msg(stream_name(dlq_subject), int(letter.dlq_id))
            return [letter.dlq_id for letter, _ in letters]
    finally:
        await nc.close()


def list_dead_letters(url: str, dlq_subject: str, *, count: int | None = None) -> list[DeadLetter]:
    """Sync :func:`list_dead_letters_async` (its own event loop)."""
    loop = LoopThread("damestoilet-nats-dlq")
    try:
        return loop.run(list_dead_letters_async(url, dlq_subject, count=count))
    finally:
        loop.stop()


def replay_dead_letters(
    url: str, dlq_subject: str, ids: Sequence[str] | None = None, *, stream: str | None = None
) -> list[tuple[str, str]]:
    """Sync :func:`replay_dead_letters_async` (its own event loop)."""
    loop = LoopThread("damestoilet-nats-dlq")
    try:
        return loop.run(replay_dead_letters_async(url, dlq_subject, ids, stream=stream))
    finally:
        loop.stop()


class JetStreamDeadLetters:
    """Dead letters of a JetStream bus, behind the neutral ``entries`` / ``replay`` /
    ``drop`` verbs that ``damestoilet dlq`` uses on every bus."""

    def __init__(self, url: str) -> None:
        """Dead letters of the NATS server at ``url``."""
        self.url = url

    @classmethod
    def from_url(cls, url: str) -> JetStreamDeadLetters:
        """See the constructor."""
        return cls(url)

    def entries(self, dlq_stream: str, *, count: int | None = None) -> list[DeadLetter]:
        """See :func:`list_dead_letters_async`."""
        return list_dead_letters(self.url, dlq_stream, count=count)

    def replay(
        self, dlq_stream: str, ids: Sequence[str] | None = None, *, stream: str | None = None
    ) -> list[tuple[str, str]]:
        """See :func:`replay_dead_letters_async`."""
        return replay_dead_letters(self.url, dlq_stream, ids, stream=stream)

    def drop(self, dlq_stream: str, ids: Sequence[str] | None = None) -> list[str]:
        """See :func:`drop_dead_letters_async`."""
        loop = LoopThread("damestoilet-nats-dlq")
        try:
            out: list[str] = loop.run(drop_dead_letters_async(self.url, dlq_stream, ids))
            return out
        finally:
            loop.stop()

    def close(self) -> None:
        """Nothing to release: each call uses its own connection."""
