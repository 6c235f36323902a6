"""The envelope: CloudEvents 1.0 attributes, the compiled flush plan and the encoded payload.

Three forms, all versioned and all decoded by the same checks.

Stream entry, version 2 (what emitters write): one field ``e`` holding the v2 blob below.
One field instead of eleven is what keeps a reader's RESP parsing small (2 items, not 22).

Stream entry fields, version 1 (still read: older producers, dead letters, replays), one
field per attribute::

    v                1
    specversion      1.0
    id               0193f0c6-...          time-ordered UUIDv7
    source           //svc/catalog
    type             catalog.v1.ProductPriceChanged
    time             2026-11-26T11:15:37.123Z
    datacontenttype  avro/binary
    dataschema       the schema fingerprint
    rulesfingerprint the rules fingerprint (absent when empty)
    plan             the plan as compact JSON (absent when the producer sent none)
    partitionkey     the event's partition key (absent when empty)
    data             the payload bytes

One bytes blob, version 1 (NATS, Kafka): ``DSE`` + version byte 1, a 16-bit field count,
then per field a 16-bit name length, the name, a 32-bit value length and the value
(big-endian), that is the same fields as above in a single value.

One bytes blob, version 2 (the stream field ``e``; :meth:`Envelope.to_bytes` with
``version=2``): ``DSE`` + version byte 2, a 32-bit big-endian length ``n``, ``n`` bytes of
UTF-8 JSON (no whitespace before or after it), then the payload bytes to the end. The JSON
is an array, by position::

    ["1.0", id, source, type, time, datacontenttype, dataschema, rulesfingerprint, stages,
     partitionkey]

``stages`` is null when the producer sent no plan, else a list of stages, each a list of
``[op, target, mode, [key, ...]]`` groups: consecutive ops of a stage that share op, target
and mode share a group, so a key costs one JSON string (the plan's type is the envelope's).
``partitionkey`` (CloudEvents' Partitioning extension) is left out when empty; a reader from
before it ignores it, as it ignores every element after the ninth: that is what lets v2
readers accept additive attributes (elements after the tenth are ignored here). A
positional array is parsed by the C JSON decoder in one call, with no attribute names to
read or check.

Decoding anything either returns an :class:`Envelope` or raises :class:`EnvelopeError`,
whatever the bytes: a v1 blob inside the ``e`` field is read, but a blob inside that blob is
refused (never recursed into); attributes, targets and keys must be text without NUL,
control characters or lone surrogates (so that they encode back to UTF-8); and every form is
bounded (:data:`MAX_ENVELOPE_BYTES`, :data:`MAX_HEAD_BYTES`, :data:`MAX_ATTRIBUTE_CHARS`,
:data:`MAX_KEY_CHARS`, :data:`MAX_PLAN_OPS`). Fields a decoder does not know are ignored, so
that v1 readers accept additive attributes.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import time as _time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from damestoilet_contracts._errors import EnvelopeError
from damestoilet_contracts.model import FlushOp, Plan
from damestoilet_contracts.model._plan import op_maker
from damestoilet_contracts.runtime._event import ContractEvent
from damestoilet_contracts.runtime._uri import check_source

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

#: The version of the multi-field stream encoding and of :meth:`Envelope.to_bytes`'s default.
ENVELOPE_VERSION = 1
#: The version of the single-field stream encoding that emitters write.
STREAM_VERSION = 2
#: The stream field holding a version-2 envelope.
STREAM_FIELD = "e"
SPEC_VERSION = "1.0"

_MAGIC = b"DSE"
_MAGIC_V2 = b"DSE\x02"
_V2_HEAD = struct.Struct(">I")
_raw_json = json.JSONDecoder().raw_decode
_V2_STREAM_KEYS = (STREAM_FIELD.encode(), STREAM_FIELD)
_V1_KEYS = (b"v", "v")
_OPS = ("key", "prefix", "tag")
_MODES = ("delete", "soft", "hard")
#: The v2 head's first eight elements, by position.
_V2_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "rulesfingerprint",
)
_TEXT_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
)
#: Version-1 fields that may be absent (read as empty).
_OPTIONAL_ATTRIBUTES = ("rulesfingerprint", "partitionkey")
_HEAD = struct.Struct(">H")
_NAME = struct.Struct(">H")
_VALUE = struct.Struct(">I")

#: The largest envelope a decoder reads, in any form (bytes).
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
#: The largest v2 JSON head or v1 ``plan`` field (bytes).
MAX_HEAD_BYTES = 1024 * 1024
#: The longest attribute (``id``, ``source``, ``type``, ...), in characters.
MAX_ATTRIBUTE_CHARS = 1024
#: The longest key, prefix, tag or target name of a plan, in characters.
MAX_KEY_CHARS = 4096
#: The most operations one envelope's plan may hold.
MAX_PLAN_OPS = 100_000
#: What no attribute, target or key may contain: NUL and other C0 controls, DEL, and lone
#: surrogates (which JSON's ``\\ud800`` escapes produce and which cannot be encoded back).
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _UUID7:
    """A process-wide, thread-safe UUIDv7 source, strictly increasing within the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_counter = 0

    def __call__(self) -> tuple[uuid.UUID, int]:
        rand = int.from_bytes(os.urandom(10), "big")
        with self._lock:
            ms = _time.time_ns() // 1_000_000
            counter = rand >> 68  # 12 bits: rand_a
            if ms <= self._last_ms:
                # Same (or a stepped-back) millisecond: count up in rand_a so ids stay ordered.
                ms = self._last_ms
                counter = self._last_counter + 1
                if counter > 0xFFF:
                    ms += 1
                    counter = 0
            self._last_ms, self._last_counter = ms, counter
        rand_b = rand & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        return uuid.UUID(int=value), ms


_uuid7 = _UUID7()


def uuid7() -> uuid.UUID:
    """A new time-ordered UUID (RFC 9562 version 7: 48-bit unix ms, then random bits)."""
    return _uuid7()[0]


def format_time(ms: int) -> str:
    """The RFC 3339 UTC text of unix time ``ms`` (milliseconds), ``2026-11-26T11:15:37.123Z``."""
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def parse_time(text: str) -> float:
    """Unix time in seconds of an RFC 3339 timestamp; raises :class:`EnvelopeError`."""
    # A backlog's events share their millisecond by the dozen, and a coordinator parses each
    # time twice (decoding, then latency): remember the last one. A tuple swap is atomic.
    global _last_time
    last = _last_time
    if text == last[0]:
        return last[1]
    stamp = _parse_time(text)
    _last_time = (text, stamp)
    return stamp


_last_time: tuple[str, float] = ("", 0.0)


def _parse_time(text: str) -> float:
    if "T" not in text and "t" not in text:
        raise EnvelopeError(f"time {text!r} is not RFC 3339: it has no time of day")
    try:
        moment = datetime.fromisoformat(text)
        stamp = moment.timestamp() if moment.tzinfo is not None else None
    except (ValueError, OverflowError) as exc:
        raise EnvelopeError(f"time {text!r} is not RFC 3339: {exc}") from exc
    if stamp is None:
        raise EnvelopeError(f"time {text!r} is not RFC 3339: it has no UTC offset")
    return stamp


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event on the bus: CloudEvents 1.0 attributes, the flush plan and the payload."""

    id: str
    source: str
    type: str
    time: str
    datacontenttype: str
    dataschema: str
    data: bytes
    plan: Plan | None = None
    rulesfingerprint: str = ""
    specversion: str = field(default=SPEC_VERSION)
    #: CloudEvents ``partitionkey`` (the Partitioning extension): the event's key on a bus
    #: that partitions, such as Kafka; empty: none.
    partitionkey: str = ""

    def __post_init__(self) -> None:
        # Runs once per event a coordinator reads: one straight test for the common case, the
        # loops only to name what is wrong.
        str_ = str
        if not (
            type(self.id) is str_
            and type(self.source) is str_
            and type(self.type) is str_
            and type(self.time) is str_
            and type(self.datacontenttype) is str_
            and type(self.dataschema) is str_
            and type(self.rulesfingerprint) is str_
            and type(self.specversion) is str_
            and type(self.partitionkey) is str_
        ):
            for name in (*_TEXT_ATTRIBUTES, "rulesfingerprint", "partitionkey"):
                if not isinstance(getattr(self, name), str):
                    raise EnvelopeError(f"envelope attribute {name} must be text")
        if not (self.id and self.source and self.type and self.datacontenttype):
            for name in ("id", "source", "type", "datacontenttype"):
                if not getattr(self, name):
                    raise EnvelopeError(
                        f"envelope attribute {name} is empty; every event needs one"
                    )
        if self.specversion != SPEC_VERSION:
            raise EnvelopeError(
                f"specversion {self.specversion!r} is not supported; only {SPEC_VERSION}"
            )
        if not isinstance(self.data, bytes):
            raise EnvelopeError("envelope data must be bytes")
        if self.plan is not None and self.plan.type != self.type:
            raise EnvelopeError(
                f"the plan is for {self.plan.type!r} but the envelope's type is {self.type!r}"
            )
        parse_time(self.time)

    @classmethod
    def new(
        cls,
        *,
        type: str,
        data: bytes,
        plan: Plan | None,
        source: str,
        datacontenttype: str,
        dataschema: str = "",
        rulesfingerprint: str = "",
        partitionkey: str = "",
    ) -> Envelope:
        """An envelope with a new UUIDv7 id and the current time (the id's millisecond).

        Raises :class:`EnvelopeError` when an attribute is empty, ``source`` is not a
        URI-reference (RFC 3986) or the plan is for another type.
        """
        check_source(source)
        event_id, ms = _uuid7()
        return cls(
            id=str(event_id),
            source=source,
            type=type,
            time=format_time(ms),
            datacontenttype=datacontenttype,
            dataschema=dataschema,
            data=data,
            plan=plan,
            rulesfingerprint=rulesfingerprint,
            partitionkey=partitionkey,
        )

    @classmethod
    def from_event(cls, event: ContractEvent, *, source: str) -> Envelope:
        """Wrap a generated event: a new UUIDv7 id, the current time, its plan and payload.

        ``source`` is the CloudEvents source (a URI reference naming the emitting service).
        The partition key is the event's ``partition_key()`` when its class has one (generated
        classes do). Raises :class:`PlanError` when the event cannot be planned,
        :class:`EnvelopeError` when an attribute is empty.
        """
        plan = event.flush_plan()
        key = getattr(event, "partition_key", None)
        return cls.new(
            type=event.EVENT_TYPE,
            data=event.to_bytes(),
            plan=plan,
            source=source,
            datacontenttype=event.CONTENT_TYPE,
            dataschema=event.SCHEMA_FINGERPRINT,
            rulesfingerprint=event.RULES_FINGERPRINT,
            partitionkey=key() if callable(key) else "",
        )

    # -- CloudEvents ----------------------------------------------------------------------------

    def to_cloudevent(self) -> CloudEvent:
        """This envelope as a CloudEvents SDK (``cloudevents`` 2.x) ``CloudEvent``.

        The attributes are those of :func:`~damestoilet_contracts.runtime.to_structured`
        (``dataschema`` as ``urn:damestoilet:schema:<fingerprint>``, the plan in the
        ``flushplan`` extension), the payload bytes its data. Raises ImportError naming the
        extra when the SDK is not installed.
        """
        from damestoilet_contracts.runtime._cloudevents import to_sdk_event

        return to_sdk_event(self)

    @classmethod
    def from_cloudevent(cls, event: Any) -> Envelope:
        """The envelope of a CloudEvents SDK event (``get_attributes()`` and ``get_data()``).

        Raises :class:`EnvelopeError` when it is not one this toolkit can carry: no bytes
        payload, a missing attribute, a ``source`` that is not a URI-reference, a bad plan.
        """
        from damestoilet_contracts.runtime._cloudevents import from_sdk_event

        return from_sdk_event(event)

    @property
    def timestamp(self) -> float:
        """The event's ``time`` as unix seconds."""
        return parse_time(self.time)

    # -- stream entry fields ------------------------------------------------------------------

    def to_fields(self, *, version: int = ENVELOPE_VERSION) -> dict[str, bytes]:
        """The stream entry fields of this envelope (see the module docstring): version 1
        (the default), one field per attribute; or version 2 (:data:`STREAM_VERSION`, what
        emitters write), the one field ``e``. Raises ValueError for another version."""
        if version == STREAM_VERSION:
            return {STREAM_FIELD: self._to_v2()}
        if version != ENVELOPE_VERSION:
            raise ValueError(f"envelope version {version} is not one this writer knows (1, 2)")
        fields: dict[str, bytes] = {"v": b"1"}
        for name in _TEXT_ATTRIBUTES:
            fields[name] = getattr(self, name).encode()
        if self.rulesfingerprint:
            fields["rulesfingerprint"] = self.rulesfingerprint.encode()
        if self.plan is not None:
            fields["plan"] = self.plan.to_json().encode()
        if self.partitionkey:
            fields["partitionkey"] = self.partitionkey.encode()
        fields["data"] = self.data
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Envelope:
        """Decode stream entry fields (names and values as bytes or str).

        Raises :class:`EnvelopeError` when they are not a version-1 or version-2 envelope.
        """
        return cls._from_fields(fields, blob_allowed=True)

    @classmethod
    def _from_fields(cls, fields: Mapping[Any, Any], *, blob_allowed: bool) -> Envelope:
        if not isinstance(fields, Mapping):
            raise EnvelopeError(f"envelope fields must be a mapping, not {type(fields).__name__}")
        # Version 2, the common case: one field `e`. An entry with `v` is version 1 whatever
        # else it holds (readers ignore fields they do not know).
        if type(fields) is dict and len(fields) == 1:
            blob = fields.get(b"e")
            if type(blob) is bytes and blob[:4] == _MAGIC_V2:
                return cls._from_v2(blob)
        for name in _V2_STREAM_KEYS:
            blob = fields.get(name)
            if blob is not None:
                if any(key in fields for key in _V1_KEYS):
                    break
                if not blob_allowed:
                    # A blob's fields holding another blob: refused, never recursed into (a
                    # few thousand levels would exhaust the stack).
                    raise EnvelopeError("an envelope blob holds another blob; one level only")
                return cls._from_bytes(_bytes(blob), nested=True)
        try:
            # The common case, as redis-py returns entries: bytes names and values.
            values = {name.decode(): value for name, value in fields.items()}
            if not all(type(value) is bytes for value in values.values()):
                raise TypeError
        except (AttributeError, TypeError, UnicodeDecodeError):
            values = {}
            for raw_name, raw_value in fields.items():
                values[_text(raw_name, "field name")] = _bytes(raw_value)
        version = values.get("v")
        if version is None:
            raise EnvelopeError(
                "not a damestoilet envelope: it has no field `e` (version 2), "
                "and the field `v` is missing (version 1)"
            )
        if version != b"1":
            raise EnvelopeError(
                f"envelope version {version[:20]!r} is not supported; this reader knows 1"
            )
        text: dict[str, str] = {}
        for name in (*_TEXT_ATTRIBUTES, "rulesfingerprint", "partitionkey"):
            raw = values.get(name)
            if raw is None:
                if name in _OPTIONAL_ATTRIBUTES:
                    continue
                raise EnvelopeError(f"envelope attribute {name} is missing")
            text[name] = _attribute(_text(raw, f"attribute {name}"), name)
        data = values.get("data")
        if data is None:
            raise EnvelopeError("envelope data is missing")
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"envelope data is larger than {MAX_ENVELOPE_BYTES} bytes")
        plan = None
        raw_plan = values.get("plan")
        if raw_plan is not None:
            if len(raw_plan) > MAX_HEAD_BYTES:
                raise EnvelopeError(f"flush plan is larger than {MAX_HEAD_BYTES} bytes")
            try:
                plan = Plan.from_json(raw_plan)
            except RecursionError as exc:
                raise EnvelopeError("flush plan is nested too deeply") from exc
            _check_plan_text(plan)
        return cls(data=data, plan=plan, **text)

    # -- single blob ------------------------------------------------------------------------

    def to_bytes(self, *, version: int = ENVELOPE_VERSION) -> bytes:
        """This envelope as one bytes value, version 1 (the default) or 2 (see the module
        docstring). Raises ValueError for another version."""
        if version == STREAM_VERSION:
            return self._to_v2()
        fields = self.to_fields(version=version)
        parts = [_MAGIC, bytes([ENVELOPE_VERSION]), _HEAD.pack(len(fields))]
        for name, value in fields.items():
            encoded = name.encode()
            parts += [_NAME.pack(len(encoded)), encoded, _VALUE.pack(len(value)), value]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Envelope:
        """Decode one bytes value written by :meth:`to_bytes`; raises :class:`EnvelopeError`."""
        return cls._from_bytes(blob, nested=False)

    @classmethod
    def _from_bytes(cls, blob: bytes, *, nested: bool) -> Envelope:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise EnvelopeError(f"an envelope blob must be bytes, not {type(blob).__name__}")
        view = bytes(blob)
        if len(view) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"envelope blob is larger than {MAX_ENVELOPE_BYTES} bytes")
        if view[:4] == _MAGIC_V2:
            return cls._from_v2(view)
        if view[:3] != _MAGIC:
            raise EnvelopeError("not a damestoilet envelope: the blob does not start with DSE")
        if len(view) < 6:
            raise EnvelopeError("envelope blob is truncated in its header")
        if view[3] != ENVELOPE_VERSION:
            raise EnvelopeError(
                f"envelope version {view[3]} is not supported; this reader knows 1 and 2"
            )
        (count,) = _HEAD.unpack_from(view, 4)
        offset = 6
        fields: dict[bytes, bytes] = {}
        for _ in range(count):
            name, offset = _chunk(view, offset, _NAME)
            value, offset = _chunk(view, offset, _VALUE)
            fields[name] = value
        if offset != len(view):
            raise EnvelopeError(f"envelope blob has {len(view) - offset} trailing bytes")
        # The fields of a blob read from an entry's `e` may not hold a blob again.
        return cls._from_fields(fields, blob_allowed=not nested)

    # -- version 2 ------------------------------------------------------------------------------

    def _to_v2(self) -> bytes:
        stages = None
        if self.plan is not None:
            stages = [_groups(stage) for stage in self.plan.stages]
        head = [
            self.specversion,
            self.id,
            self.source,
            self.type,
            self.time,
            self.datacontenttype,
            self.dataschema,
            self.rulesfingerprint,
            stages,
        ]
        if self.partitionkey:
            head.append(self.partitionkey)
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
        return b"".join((_MAGIC_V2, _V2_HEAD.pack(len(text)), text, self.data))

    @classmethod
    def _from_v2(cls, blob: bytes) -> Envelope:
        if len(blob) < 8:
            raise EnvelopeError("envelope blob is truncated in its header")
        if len(blob) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"envelope blob is larger than {MAX_ENVELOPE_BYTES} bytes")
        (size,) = _V2_HEAD.unpack_from(blob, 4)
        end = 8 + size
        if end > len(blob):
            raise EnvelopeError("envelope blob is truncated in its attributes")
        if size > MAX_HEAD_BYTES:
            raise EnvelopeError(f"envelope attributes are larger than {MAX_HEAD_BYTES} bytes")
        try:
            text = blob[8:end].decode()
            # raw_decode skips json.loads' wrapper (about half its cost on a small array)
            head, stop = _raw_json(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise EnvelopeError(f"envelope attributes are not UTF-8 JSON: {exc}") from exc
        if stop != len(text):
            raise EnvelopeError("envelope attributes have trailing bytes after their JSON")
        if type(head) is not list or len(head) < 9:
            raise EnvelopeError("envelope attributes must be a JSON array of at least 9 items")
        spec, event_id, source, type_, time, content_type, schema, rules, stages = head[:9]
        key = head[9] if len(head) > 9 else ""
        if type(key) is not str:
            raise EnvelopeError("envelope attribute partitionkey must be text")
        if size > MAX_ATTRIBUTE_CHARS:
            # (a head no longer than the limit cannot hold a longer attribute)
            for value in (event_id, source, type_, time, content_type, schema, rules, spec, key):
                if type(value) is str and len(value) > MAX_ATTRIBUTE_CHARS:
                    raise EnvelopeError(
                        f"an envelope attribute is longer than {MAX_ATTRIBUTE_CHARS}"
                    )
        if "\\" in text:
            # Only a JSON escape yields a control character or a lone surrogate (strict
            # JSON refuses raw ones), so text without a backslash needs no scan.
            for name, value in zip(_V2_ATTRIBUTES, head[:8], strict=True):
                if type(value) is str:
                    _attribute(value, name)
            if key:
                _attribute(key, "partitionkey")
            if stages is not None:
                _check_text_deep(stages)
        # positional, in field order: a keyword call costs more, once per event
        return cls(
            event_id,
            source,
            type_,
            time,
            content_type,
            schema,
            blob[end:],
            None if stages is None else _plan_v2(type_, stages),
            rules,
            spec,
            key,
        )


def _groups(stage: tuple[FlushOp, ...]) -> list[list[Any]]:
    """A stage as v2 groups, in order: ``[op, target, mode, [key, ...]]``."""
    groups: list[list[Any]] = []
    last: list[Any] | None = None
    for o in stage:
        if last is None or last[0] != o.op or last[1] != o.target or last[2] != o.mode:
            last = [o.op, o.target, o.mode, []]
            groups.append(last)
        last[3].append(o.key)
    return groups


#: FlushOp(...) without the frozen dataclass's __init__: one per key of every event read.
_make_op = op_maker()


def _plan_v2(type_: Any, stages: Any) -> Plan:
    """The plan of a v2 envelope from its ``[op, target, mode, [key, ...]]`` groups."""
    if type(stages) is not list:
        raise EnvelopeError("malformed flush plan: stages must be a list")
    out: list[tuple[FlushOp, ...]] = []
    count = 0
    for stage in stages:
        if type(stage) is not list:
            raise EnvelopeError("malformed flush plan: each stage must be a list")
        ops: list[FlushOp] = []
        for group in stage:
            if type(group) is not list or len(group) != 4:
                raise EnvelopeError(f"malformed flush plan: bad operation group {group!r}")
            op, target, mode, keys = group
            # tuple membership compares with ==, so it is safe for any JSON value and holds
            # only for those strings
            if not (op in _OPS and mode in _MODES and type(target) is str and type(keys) is list):
                raise EnvelopeError(f"malformed flush plan: bad operation group {group!r}")
            if len(target) > MAX_KEY_CHARS:
                raise EnvelopeError(f"malformed flush plan: a target is over {MAX_KEY_CHARS} chars")
            for key in keys:
                if type(key) is not str or not key or len(key) > MAX_KEY_CHARS:
                    raise EnvelopeError(
                        f"malformed flush plan: bad key {_preview(key)} in {op} group "
                        f"(keys are 1 to {MAX_KEY_CHARS} characters of text)"
                    )
            count += len(keys)
            if count > MAX_PLAN_OPS:
                raise EnvelopeError(f"flush plan has more than {MAX_PLAN_OPS} operations")
            ops += [_make_op(op, target, key, mode) for key in keys]
        out.append(tuple(ops))
    return Plan(type_, tuple(out))


def _preview(value: object) -> str:
    """A short, printable ``repr`` of hostile input for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _attribute(value: str, name: str) -> str:
    if len(value) > MAX_ATTRIBUTE_CHARS:
        raise EnvelopeError(f"envelope attribute {name} is longer than {MAX_ATTRIBUTE_CHARS}")
    # A partition key routes, it names no key of ours: any text that encodes back will do.
    bad = _SURROGATE if name == "partitionkey" else _BAD_TEXT
    if bad.search(value):
        raise EnvelopeError(
            f"envelope attribute {name} holds a control character or a lone surrogate: "
            f"{_preview(value)}"
        )
    return value


def _check_plan_text(plan: Plan) -> None:
    """Refuse a v1 plan whose targets or keys are too long, too many or not clean text."""
    ops = plan.ops
    if len(ops) > MAX_PLAN_OPS:
        raise EnvelopeError(f"flush plan has more than {MAX_PLAN_OPS} operations")
    for o in ops:
        for what, value in (("target", o.target), ("key", o.key)):
            if len(value) > MAX_KEY_CHARS or _BAD_TEXT.search(value):
                raise EnvelopeError(
                    f"malformed flush plan: bad {what} {_preview(value)} (1 to "
                    f"{MAX_KEY_CHARS} characters, no control characters or lone surrogates)"
                )


def _check_text_deep(value: object) -> None:
    """Refuse a control character or lone surrogate in any string of a v2 ``stages`` value
    (iteratively: the value's depth is bounded by the JSON decoder, not by this walk)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if type(item) is str:
            if _BAD_TEXT.search(item):
                raise EnvelopeError(
                    "malformed flush plan: a target or key holds a control character or a "
                    f"lone surrogate: {_preview(item)}"
                )
        elif type(item) is list:
            todo += item


def _chunk(view: bytes, offset: int, length: struct.Struct) -> tuple[bytes, int]:
    if offset + length.size > len(view):
        raise EnvelopeError("envelope blob is truncated in a field length")
    (size,) = length.unpack_from(view, offset)
    offset += length.size
    if offset + size > len(view):
        raise EnvelopeError("envelope blob is truncated in a field value")
    return view[offset : offset + size], offset + size


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"envelope {what} is not UTF-8: {exc}") from exc
    raise EnvelopeError(f"envelope {what} must be bytes or text, not {type(value).__name__}")


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError as exc:  # lone surrogates
            raise EnvelopeError(f"envelope field value is not encodable text: {exc}") from exc
    raise EnvelopeError(f"envelope field values must be bytes or text, not {type(value).__name__}")
