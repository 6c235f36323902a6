"""URI checks the envelope needs: ``source`` as a URI-reference, ``dataschema`` as a URI.

CloudEvents 1.0 makes ``source`` a URI-reference (RFC 3986 section 4.1: an absolute URI such
as ``https://svc.example/catalog`` or a relative reference such as ``//shop/catalog``) and
``dataschema`` a URI. The envelope keeps the schema fingerprint bare on the stream (its bytes
are the v2 wire format); :func:`schema_uri` and :func:`schema_fingerprint` convert between the
two at the CloudEvents boundary.
"""

from __future__ import annotations

import functools
import re

from damestoilet_contracts._errors import EnvelopeError

#: The URN a bare schema fingerprint becomes in ``dataschema``.
SCHEMA_URN_PREFIX = "urn:damestoilet:schema:"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3986 unreserved, sub-delims, ":", "@", "/", "?", "#", "[", "]" and "%" (checked apart).
_ALLOWED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?#[]%"
)
_IP_LITERAL = re.compile(r"(?:[^@\[\]]*@)?\[[0-9A-Fa-f:.vV]+\](?::[0-9]*)?")
_HEX = frozenset("0123456789abcdefABCDEF")
_EXAMPLE = "write it like //team/service or https://service.example/events"


def check_source(source: str) -> str:
    """Return ``source`` when it is a non-empty URI-reference; raise :class:`EnvelopeError`."""
    if not isinstance(source, str) or not source:
        raise EnvelopeError(f"source must be a non-empty URI-reference; {_EXAMPLE}")
    return _check_text(source)


@functools.lru_cache(maxsize=256)
def _check_text(source: str) -> str:
    # Cached: an emitter checks the same few sources again and again (an exception is not).
    problem = _uri_reference_problem(source)
    if problem:
        raise EnvelopeError(f"source {source!r} is not a URI-reference (RFC 3986): {problem}")
    return source


def _uri_reference_problem(text: str) -> str:
    """What makes ``text`` not an RFC 3986 URI-reference, or an empty string."""
    for index, char in enumerate(text):
        if char not in _ALLOWED:
            return f"character {char!r} at position {index} must be percent-encoded; {_EXAMPLE}"
        if char == "%":
            digits = text[index + 1 : index + 3]
            if len(digits) != 2 or not _HEX.issuperset(digits):
                return f"'%' at position {index} is not followed by two hex digits"
    rest, _, fragment = text.partition("#")
    if "#" in fragment:
        return "it has more than one '#'"
    hier, _, query = rest.partition("?")
    first_segment = hier.split("/", 1)[0]
    if ":" in first_segment:
        # A relative reference's first segment has no ':', so this is a scheme.
        scheme = first_segment.split(":", 1)[0]
        if not _SCHEME.fullmatch(scheme):
            return (
                f"{scheme!r} before ':' is not a scheme (a letter, then letters, digits, '+', "
                f"'-' or '.'); {_EXAMPLE}"
            )
        hier = hier[len(scheme) + 1 :]
    authority, path = "", hier
    if hier.startswith("//"):
        end = hier.find("/", 2)
        authority, path = (hier[2:], "") if end < 0 else (hier[2:end], hier[end:])
    brackets = any(c in part for c in "[]" for part in (path, query, fragment))
    if brackets or (
        ("[" in authority or "]" in authority) and not _IP_LITERAL.fullmatch(authority)
    ):
        return "'[' and ']' may appear only around an IP literal host"
    return ""


def schema_uri(fingerprint: str) -> str:
    """The ``dataschema`` URI of an envelope's schema fingerprint.

    A bare fingerprint becomes ``urn:damestoilet:schema:<fingerprint>``; a value that is
    already a URI (a registry URL) is kept; an empty one stays empty (no dataschema).
    """
    if not fingerprint or ":" in fingerprint:
        return fingerprint
    return SCHEMA_URN_PREFIX + fingerprint


def schema_fingerprint(uri: str) -> str:
    """The inverse of :func:`schema_uri`: the bare fingerprint of a ``urn:damestoilet:schema:``
    URI, any other URI as it is."""
    if uri.startswith(SCHEMA_URN_PREFIX):
        return uri[len(SCHEMA_URN_PREFIX) :]
    return uri
