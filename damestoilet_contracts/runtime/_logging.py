"""Log records with their fields in ``extra=``, and the two ways the CLI prints them.

Every line the runtime logs is ``logger.log(level, msg, extra={"damestoilet": fields})``: the
message is a short snake_case name (``started``, ``purged``, ``lost``), the fields are one
dict under the record attribute :data:`FIELDS` (one attribute, not one per field: a field
named ``name``, ``msg`` or ``process`` would collide with the record's own and make
``logging`` raise). :class:`JsonFormatter` prints one JSON object a line, :class:`HumanFormatter`
one ``key=value`` line for a terminal; both remove the password of every URL they print.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

from damestoilet_contracts.runtime._redact import redact

#: The record attribute that holds a line's fields (``record.damestoilet``).
FIELDS = "damestoilet"

#: What ``--log-format`` takes: ``auto`` is ``text`` on a terminal, ``json`` otherwise.
LogFormat = Literal["auto", "json", "text"]

# Attributes every LogRecord has: whatever else a record carries came through ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def log_fields(logger: logging.Logger, level: int, msg: str, fields: Mapping[str, Any]) -> None:
    """Log ``msg`` with ``fields`` under :data:`FIELDS`, when ``level`` is on for ``logger``.

    Text values lose their URL passwords here already, so a record stays clean whatever
    handler or formatter reads it (pytest's caplog, a user's own)."""
    if logger.isEnabledFor(level):
        clean = {k: redact(v) if isinstance(v, str) and "@" in v else v for k, v in fields.items()}
        logger.log(level, msg, extra={FIELDS: clean})


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of ``record``: those under :data:`FIELDS`, then any other ``extra=`` keys."""
    attrs = vars(record)
    ours = attrs.get(FIELDS)
    out: dict[str, Any] = dict(ours) if isinstance(ours, Mapping) else {}
    others = attrs.keys() - _RECORD_ATTRS
    if len(others) > (ours is not None):
        for key in sorted(others - {FIELDS}):
            out.setdefault(key, attrs[key])
    return out


_second: tuple[int, str] = (-1, "")


def _time(record: logging.LogRecord) -> str:
    global _second
    whole = int(record.created)
    if _second[0] != whole:  # one strftime a second, not one a line
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int(record.msecs):03d}Z"


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts) or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO-8601 UTC, ms), ``level``, ``logger``, ``msg``,
    then the record's fields (a field named like one of those four is written as
    ``field.<name>``), and ``exc`` with the traceback if there is one. Values JSON cannot
    hold are written as ``str()``. Passwords in URLs are written as ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line of ``record``."""
        out: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            out[f"field.{key}" if key in out else key] = value
        exc = _exception(self, record)
        if exc is not None:
            out["exc"] = exc
        return redact(json.dumps(out, default=str))


_COLORS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


class HumanFormatter(logging.Formatter):
    """One line for a person: ``HH:MM:SS.mmm LEVEL logger msg key=value ...`` (local time;
    values with spaces quoted), the traceback on the lines after. With ``color``, the level
    is coloured (ANSI). Passwords in URLs are written as ``***``."""

    def __init__(self, *, color: bool = False) -> None:
        """``color``: colour the level name (for a terminal)."""
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        """The line of ``record``."""
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        level = f"{record.levelname:<7}"
        if self.color:
            level = f"\x1b[{_COLORS.get(record.levelname, '0')}m{level}\x1b[0m"
        fields = " ".join(f"{k}={_value(v)}" for k, v in record_fields(record).items())
        line = f"{moment}.{int(record.msecs):03d} {level} {record.name} {record.getMessage()}"
        if fields:
            line += " " + fields
        exc = _exception(self, record)
        if exc is not None:
            line += "\n" + exc
        return redact(line)


def formatter_for(log_format: LogFormat, stream: IO[str]) -> logging.Formatter:
    """The formatter ``log_format`` names for ``stream``: ``auto`` is a coloured
    :class:`HumanFormatter` on a terminal (colourless with ``NO_COLOR`` set), else JSON."""
    if log_format == "json":
        return JsonFormatter()
    tty = _isatty(stream)
    if log_format == "text":
        return HumanFormatter(color=tty and not os.environ.get("NO_COLOR"))
    if log_format != "auto":
        raise ValueError(f"log format {log_format!r}: use auto, json or text")
    return HumanFormatter(color=not os.environ.get("NO_COLOR")) if tty else JsonFormatter()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or a bare file-like object
        return False


def configure(
    level: str | int = "info",
    *,
    log_format: LogFormat = "auto",
    stream: IO[str] | None = None,
    force: bool = False,
) -> logging.Handler | None:
    """Send the root logger's records at ``level`` and above to ``stream`` (default
    stderr), formatted as ``log_format`` says (see :func:`formatter_for`).

    Like :func:`logging.basicConfig`, does nothing and returns None when the root logger
    has handlers already, unless ``force`` (which replaces them); else returns the handler.
    Raises ValueError for an unknown level or format."""
    root = logging.getLogger()
    if root.handlers and not force:
        return None
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r}: use debug, info, warning or error")
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter_for(log_format, out))
    logging.basicConfig(handlers=[handler], level=numeric, force=force)
    return handler
