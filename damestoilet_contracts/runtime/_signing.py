"""Optional signing of envelopes: an HMAC-SHA256 with a shared key (docs/trust.md).

A signed stream entry carries one more field, ``s``: ``v1=`` and the hex HMAC of what it
signs, which is the ``e`` blob of a version-2 entry, or else every other field, sorted by
name, each name and value prefixed by its 32-bit big-endian length (a version-1 entry). The
envelope decoders ignore ``s``, so a reader without a key reads signed entries as before.

A coordinator given keys (:class:`SigningKeys`) dead-letters entries that are unsigned or
whose signature none of its keys gives. Rotation: sign with the new key while the readers
accept both (``accepted``), then drop the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The stream field holding the signature.
SIGNATURE_FIELD = "s"
#: The environment variables :meth:`SigningKeys.from_env` reads.
KEY_ENV = "DAMESTOILET_SIGNING_KEY"
PREVIOUS_KEY_ENV = "DAMESTOILET_SIGNING_KEY_PREVIOUS"

_PREFIX = b"v1="
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
        given = signature[len(_PREFIX) :]
        for key in (self.key, *self.accepted):
            expected = hmac.new(key, message, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(expected, given):
                return None
        return "the entry's signature does not match any accepted key"


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


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"entry fields are bytes or text, not {type(value).__name__}")
