"""Optional signing of envelopes: an HMAC-SHA256 with a shared key (docs/trust.md).

A signed stream entry carries one more field, ``s``: ``v1=`` and the hex HMAC of what it
signs, which is the ``e`` blob of a version-2 entry, or else every other field, sorted by
name, each name and value prefixed by its 32-bit big-endian length (a version-1 entry). The
envelope decoders ignore ``s``, so a reader without a key reads signed entries as before.

A signed message on a bus with headers (NATS JetStream, Kafka: CloudEvents binary mode)
carries one more header, ``damestoilet-signature`` (NATS) or ``damestoilet_signature``
(Kafka, whose binding names headers with ``_``), of the same form, over
:func:`message_bytes`: the body and every CloudEvents header. The decoders ignore it too.

A coordinator given keys (:class:`SigningKeys`) dead-letters entries that are unsigned or
whose signature none of its keys gives. Rotation: sign with the new key while the readers
accept both (``accepted``), then drop the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The stream field holding the signature.
SIGNATURE_FIELD = "s"
#: The environment variables :meth:`SigningKeys.from_env` reads.
KEY_ENV = "DAMESTOILET_SIGNING_KEY"
PREVIOUS_KEY_ENV = "DAMESTOILET_SIGNING_KEY_PREVIOUS"

#: The message header holding the signature, by CloudEvents binding (see the module doc).
SIGNATURE_HEADERS: Mapping[str, str] = {
    "http": "damestoilet-signature",
    "kafka": "damestoilet_signature",
    "nats": "damestoilet-signature",
}

#: A message's headers: a mapping, or the ``(name, value)`` pairs confluent-kafka gives.
Headers = Mapping[str, Any] | Iterable[tuple[str, Any]]

_PREFIX = b"v1="
# Domain separation: a message signature is never the signature of a stream entry's blob.
_MESSAGE_TAG = b"damestoilet-message-v1"
_COVERED_PREFIXES = ("ce-", "ce_")
_CONTENT_TYPE = "content-type"
_LENGTH = struct.Struct(">I")
_SIGNATURE_KEYS = (SIGNATURE_FIELD.encode(), SIGNATURE_FIELD)


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The key that signs (``key``) and every key a signature may be checked with: ``key``
    and the ``accepted`` ones (the previous key, during a rotation)."""

    key: bytes
    accepted: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for key in (self.key, *self.accepted):
            if len(key) < 16:
                raise ValueError("a signing key needs at least 16 bytes (32 random ones is right)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SigningKeys | None:
        """The keys in ``$DAMESTOILET_SIGNING_KEY`` (and ``..._PREVIOUS``, accepted too), or
        None when the first is unset. Raises ValueError for a key under 16 bytes."""
        env = os.environ if environ is None else environ
        key = env.get(KEY_ENV)
        if not key:
            return None
        previous = env.get(PREVIOUS_KEY_ENV)
        return cls(key.encode(), (previous.encode(),) if previous else ())

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> SigningKeys:
        """The first file's key signs, the others are accepted (a trailing newline is not part
        of a key). Raises OSError when a file cannot be read, ValueError for a short key."""
        keys = [Path(p).read_bytes().rstrip(b"\r\n") for p in paths]
        if not keys:
            raise ValueError("give at least one key file")
        return cls(keys[0], tuple(keys[1:]))

    def sign(self, fields: Mapping[Any, bytes]) -> bytes:
        """The value of the ``s`` field for an entry of ``fields``."""
        return (
            _PREFIX + hmac.new(self.key, signed_bytes(fields), hashlib.sha256).hexdigest().encode()
        )

    def check(self, fields: Mapping[Any, Any]) -> str | None:
        """Why ``fields`` must not be trusted (unsigned, malformed, or signed with no key we
        accept), or None when one of the keys gives its signature."""
        signature = None
        for name in _SIGNATURE_KEYS:
            signature = fields.get(name)
            if signature is not None:
                break
        if signature is None:
            return "the entry is not signed and this coordinator requires signatures"
        if isinstance(signature, str):
            signature = signature.encode(errors="replace")
        if not isinstance(signature, bytes) or not signature.startswith(_PREFIX):
            return "the entry's signature is malformed (expected v1=<hex HMAC-SHA256>)"
        try:
            message = signed_bytes(fields)
        except (TypeError, UnicodeEncodeError):
            return "the entry's fields cannot be signed (not bytes or text)"
        if self._verifies(message, signature[len(_PREFIX) :]):
            return None
        return "the entry's signature does not match any accepted key"

    def sign_message(self, headers: Headers, body: bytes) -> str:
        """The value of the signature header (:data:`SIGNATURE_HEADERS`) for a binary-mode
        message of ``headers`` and ``body``. Raises ValueError for a CloudEvents header given
        twice (names differing only in case), TypeError for a value not bytes or text."""
        digest = hmac.new(self.key, message_bytes(headers, body), hashlib.sha256).hexdigest()
        return (_PREFIX + digest.encode()).decode()

    def check_message(self, headers: Headers, body: bytes, binding: str) -> str | None:
        """Why a message of ``headers`` and ``body`` on ``binding`` (``nats``, ``kafka``,
        ``http``) must not be trusted (unsigned, malformed, or signed with no key we accept),
        or None when one of the keys gives its signature header."""
        header = SIGNATURE_HEADERS.get(binding, SIGNATURE_HEADERS["nats"])
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        found = [value for name, value in pairs if name.lower() == header]
        if not found:
            return (
                f"the message is not signed (no {header} header) and this coordinator "
                "requires signatures"
            )
        signature = found[0]
        if isinstance(signature, str):
            signature = signature.encode(errors="replace")
        if len(found) > 1 or not isinstance(signature, bytes) or not signature.startswith(_PREFIX):
            return (
                f"the message's signature is malformed (expected one {header} header, "
                "v1=<hex HMAC-SHA256>)"
            )
        try:
            message = message_bytes(pairs, body)
        except ValueError as exc:  # UnicodeEncodeError too
            return f"the message cannot be checked: {exc}"
        except TypeError:
            return "the message's headers cannot be signed (not bytes or text)"
        if self._verifies(message, signature[len(_PREFIX) :]):
            return None
        return "the message's signature does not match any accepted key"

    def _verifies(self, message: bytes, given: bytes) -> bool:
        for key in (self.key, *self.accepted):
            expected = hmac.new(key, message, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(expected, given):
                return True
        return False


def signed_bytes(fields: Mapping[Any, Any]) -> bytes:
    """What the signature of an entry covers: its ``e`` blob when that and ``s`` are its only
    fields, else every field but ``s``, sorted by name, length-prefixed. Raises TypeError for
    a name or value that is not bytes or text."""
    own = {_raw(name): value for name, value in fields.items() if name not in _SIGNATURE_KEYS}
    if len(own) == 1 and b"e" in own:
        return _raw(own[b"e"])
    parts = []
    for name in sorted(own):
        value = _raw(own[name])
        parts += [_LENGTH.pack(len(name)), name, _LENGTH.pack(len(value)), value]
    return b"".join(parts)


def message_bytes(headers: Headers, body: bytes) -> bytes:
    """What the signature of a binary-mode message (NATS, Kafka) covers, in one canonical form.

    Covered: the body, and every header whose name, lower-cased, is ``content-type`` or
    starts with ``ce-`` or ``ce_``: all that :func:`runtime._cloudevents.from_binary` and
    the core's ``decode`` read (including ``ce-specversion``, which chooses binary mode over
    an envelope blob in the body), on either binding, plus any CloudEvents extension a
    decoder might read later. A message with no such header (an envelope blob as the body)
    is covered by its body alone.

    The form is stable across what the buses do to headers: names are lower-cased (NATS
    keeps the case it is given, and the decoder ignores it), pairs are sorted by name (neither
    nats-py nor confluent-kafka keeps an order that means anything), and values are compared
    as the bytes of their text (nats-py gives ``str``, confluent-kafka ``bytes``; the NATS
    binding percent-encodes, so no value has the surrounding blanks nats-py strips; Kafka
    values travel byte for byte). A Kafka header with no value (None) is absent, as the bus
    drops it before decoding. A covered name given twice (in two cases: the buses already
    keep only the last of an exact repeat) is refused, since which one a decoder keeps
    depends on an order the form does not hold.

    Not covered, on purpose: every other header. Those the bus adds or reads itself
    (``Nats-Msg-Id``, ``Nats-Expected-*``, a republish's ``Nats-Stream``/``Nats-Sequence``),
    the dead-letter headers (``dlq_*``, added when a message is dead-lettered and dropped on
    replay, so that a replayed letter still verifies), tracing headers and the signature
    header itself carry nothing the decoder reads: changing them cannot change what is
    purged. Nor is the Kafka record's key, which only places the record on a partition (the
    event's partition key is ``ce_partitionkey``, covered).

    The bytes: the length-prefixed tag ``damestoilet-message-v1`` (so that no message
    signature is ever a stream entry's), the number of covered headers (32-bit big-endian),
    each header sorted by name as its name and its value, each prefixed by its 32-bit
    big-endian length, then the body, prefixed the same way. Raises ValueError for a covered
    name given twice or a value that is not UTF-8 text, TypeError for a value that is neither
    bytes nor text.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    covered: dict[bytes, bytes] = {}
    for raw_name, value in pairs:
        name = raw_name.lower()
        if value is None or not (name == _CONTENT_TYPE or name.startswith(_COVERED_PREFIXES)):
            continue
        key = name.encode()
        if key in covered:
            raise ValueError(f"header {name} is given twice (names differ only in case)")
        covered[key] = _raw(value)
    parts = [_LENGTH.pack(len(_MESSAGE_TAG)), _MESSAGE_TAG, _LENGTH.pack(len(covered))]
    for key in sorted(covered):
        value = covered[key]
        parts += [_LENGTH.pack(len(key)), key, _LENGTH.pack(len(value)), value]
    parts += [_LENGTH.pack(len(body)), bytes(body)]
    return b"".join(parts)


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"entry fields are bytes or text, not {type(value).__name__}")
