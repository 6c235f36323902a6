"""Keeping passwords out of messages and logs: every URL in a text loses its credentials."""

from __future__ import annotations

import re

# scheme://userinfo@ where userinfo is user:password, :password or a lone token (which some
# clients take as the password).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s@:]*)(:[^/\s@]*)?@")


def _mask(match: re.Match[str]) -> str:
    scheme, user, password = match.group(1), match.group(2), match.group(3)
    if password is None:
        return f"{scheme}***@"
    return f"{scheme}{user}:***@"


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``:
    ``redis://app:s3cret@cache:6379/0`` -> ``redis://app:***@cache:6379/0``."""
    if "@" not in text:
        return text
    return _USERINFO.sub(_mask, text)
