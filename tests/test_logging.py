"""Issue 16: logs through stdlib ``logging`` with their fields in ``extra=``, a JSON formatter
with time and level, readable lines when stderr is a terminal; passwords never printed."""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from damestoilet_contracts.cli import main
from damestoilet_contracts.logging import (
    FIELDS,
    HumanFormatter,
    JsonFormatter,
    formatter_for,
    record_fields,
)
from damestoilet_contracts.runtime._core import log, log_event
from damestoilet_contracts.runtime._seams import Delivery

SECRET = "redis://app:s3cret@cache:6379/0"


def _record(
    msg: str = "started",
    level: int = logging.INFO,
    fields: dict[str, object] | None = None,
    **extra: object,
) -> logging.LogRecord:
    logger = logging.getLogger("damestoilet.coordinator")
    if fields is not None:
        extra[FIELDS] = fields
    return logger.makeRecord(logger.name, level, __file__, 1, msg, (), None, extra=extra)


# -- the records ---------------------------------------------------------------------------------


def test_runtime_lines_carry_their_fields_under_one_extra_attribute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="damestoilet.coordinator"):
        log("started", stream="s", consumer="c1", name="not the logger's name")
        log_event("purged", None, Delivery("1-0", {}, 2), latency_ms=1.5)
    started, purged = caplog.records
    assert started.getMessage() == "started"
    assert started.name == "damestoilet.coordinator"  # a field called name collides with nothing
    assert getattr(started, FIELDS) == {
        "stream": "s",
        "consumer": "c1",
        "name": "not the logger's name",
    }
    assert purged.getMessage() == "purged"
    assert record_fields(purged) == {
        "outcome": "purged",
        "id": None,
        "type": None,
        "entry": "1-0",
        "deliveries": 2,
        "latency_ms": 1.5,
    }


def test_record_fields_are_redacted_before_any_handler_sees_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="damestoilet.coordinator"):
        log("backend_error", level=logging.WARNING, error=f"cannot reach {SECRET}")
    [record] = caplog.records
    assert record_fields(record)["error"] == "cannot reach redis://app:***@cache:6379/0"


def test_no_record_is_built_below_the_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="damestoilet.coordinator"):
        log_event("purged", None, Delivery("1-0", {}, 1))
        log("started")
    assert caplog.records == []


# -- the formatters ------------------------------------------------------------------------------


def test_json_lines_have_time_level_logger_msg_then_the_fields() -> None:
    record = _record("purged", fields={"outcome": "purged", "id": "e1", "deliveries": 1})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert list(document) == ["time", "level", "logger", "msg", "outcome", "id", "deliveries"]
    assert document["level"] == "INFO"
    assert document["logger"] == "damestoilet.coordinator"
    assert document["msg"] == "purged"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["time"])
    moment = datetime.fromisoformat(document["time"])
    assert abs(moment.timestamp() - record.created) < 0.001
    assert '"msg": "purged"' in line  # what scripts grep for


def test_json_lines_take_a_users_own_extra_keys_and_keep_colliding_ones_apart() -> None:
    record = _record("hello %s", request_id="r1", fields={"level": "x", "n": 1})
    record.args = ("world",)
    document = json.loads(JsonFormatter().format(record))
    assert document["msg"] == "hello world"
    assert document["level"] == "INFO"
    assert document["field.level"] == "x"
    assert document["n"] == 1
    assert document["request_id"] == "r1"


def test_json_lines_write_what_json_cannot_hold_as_text_and_add_the_traceback() -> None:
    try:
        raise RuntimeError(f"lost {SECRET}")
    except RuntimeError:
        record = _record("failed", level=logging.ERROR, fields={"path": Path("/x")})
        record.exc_info = sys.exc_info()
    document = json.loads(JsonFormatter().format(record))
    assert document["path"] == "/x"
    assert "RuntimeError: lost redis://app:***@cache:6379/0" in document["exc"]
    assert "s3cret" not in JsonFormatter().format(record)


@pytest.mark.parametrize(
    "formatter", [JsonFormatter(), HumanFormatter(), HumanFormatter(color=True)]
)
def test_no_formatter_prints_a_password(formatter: logging.Formatter) -> None:
    """In the message, in a field, in a user's own extra key: the line is redacted whole."""
    record = _record(f"connecting to {SECRET}", url=SECRET, fields={"bus": SECRET})
    line = formatter.format(record)
    assert "s3cret" not in line
    assert line.count("redis://app:***@cache:6379/0") == 3


def test_human_lines_read_as_time_level_logger_msg_and_key_values() -> None:
    record = _record(
        "dead_lettered",
        level=logging.WARNING,
        fields={"id": "e1", "reason": "plan refused: target x", "n": 2, "empty": ""},
    )
    line = HumanFormatter().format(record)
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} WARNING damestoilet\.coordinator dead_lettered "
        r'id=e1 reason="plan refused: target x" n=2 empty=""',
        line,
    )
    colored = HumanFormatter(color=True).format(record)
    assert "\x1b[33mWARNING\x1b[0m" in colored


def test_auto_picks_text_for_a_terminal_and_json_for_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    main_fd, tty_fd = pty.openpty()
    with os.fdopen(tty_fd, "w") as tty, (tmp_path / "f").open("w") as file:
        assert isinstance(formatter_for("auto", tty), HumanFormatter)
        assert isinstance(formatter_for("auto", file), JsonFormatter)
        assert isinstance(formatter_for("text", file), HumanFormatter)
        assert isinstance(formatter_for("json", tty), JsonFormatter)
        human = formatter_for("auto", tty)
        assert isinstance(human, HumanFormatter) and human.color
        monkeypatch.setenv("NO_COLOR", "1")
        plain = formatter_for("auto", tty)
        assert isinstance(plain, HumanFormatter) and not plain.color
    os.close(main_fd)
    with pytest.raises(ValueError, match="log format"):
        formatter_for("yaml", sys.stderr)  # type: ignore[arg-type]


# -- the workers ---------------------------------------------------------------------------------


def _coordinator(redis_url: str, stderr: int, *args: str, env: dict[str, str] | None = None) -> int:
    """Start ``damestoilet coordinator`` with its stderr on ``stderr``; return its pid."""
    command = [
        sys.executable, "-c", "from damestoilet_contracts.cli import main; main()",
        "coordinator", "--redis", redis_url, "--stream", "log-events", "--block-ms", "50", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    return proc.pid


def _until(read: Callable[[], str], needle: str, pid: int) -> str:
    deadline = time.monotonic() + 20
    text = ""
    try:
        while time.monotonic() < deadline:
            text += read()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged within 20 s:\n{text}")
    finally:
        os.kill(pid, 15)
        os.waitpid(pid, 0)


def _reader(fd: int) -> Callable[[], str]:
    os.set_blocking(fd, False)

    def read() -> str:
        try:
            return os.read(fd, 65536).decode(errors="replace")
        except (BlockingIOError, OSError):
            return ""

    return read


@pytest.mark.redis
def test_a_coordinator_on_a_terminal_logs_readable_lines(redis_url: str) -> None:
    main_fd, tty_fd = pty.openpty()
    pid = _coordinator(redis_url, tty_fd)
    os.close(tty_fd)
    try:
        text = _until(_reader(main_fd), " started ", pid)
    finally:
        os.close(main_fd)
    [line] = [x for x in text.splitlines() if " started " in x]
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} INFO    damestoilet\.coordinator started ", line)
    assert "stream=log-events" in line
    assert not line.lstrip().startswith("{")


@pytest.mark.redis
@pytest.mark.parametrize(
    ("args", "env"),
    [((), {}), (("--log-format", "json"), {}), ((), {"DAMESTOILET_LOG_FORMAT": "json"})],
    ids=["auto", "flag", "envvar"],
)
def test_a_coordinator_logs_json_off_a_terminal_or_when_asked(
    redis_url: str, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    """auto off a terminal; --log-format json or DAMESTOILET_LOG_FORMAT=json on one."""
    log = tmp_path / "log"
    if args or env:
        main_fd, tty_fd = pty.openpty()
        pid = _coordinator(redis_url, tty_fd, *args, env=env)
        os.close(tty_fd)
        try:
            text = _until(_reader(main_fd), '"msg": "started"', pid)
        finally:
            os.close(main_fd)
    else:
        with log.open("wb") as out:
            pid = _coordinator(redis_url, out.fileno())
        text = _until(lambda: log.read_text(errors="replace"), '"msg": "started"', pid)
    [started] = [json.loads(x) for x in text.splitlines() if '"msg": "started"' in x]
    assert started["level"] == "INFO"
    assert started["logger"] == "damestoilet.coordinator"
    assert started["stream"] == "log-events"
    assert started["time"].endswith("Z")


@pytest.mark.redis
def test_log_format_text_gives_readable_lines_in_a_file_too(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with log.open("wb") as out:
        pid = _coordinator(redis_url, out.fileno(), "--log-format", "text")
    text = _until(lambda: log.read_text(errors="replace"), " started ", pid)
    assert not [x for x in text.splitlines() if x.startswith("{")]


@pytest.mark.parametrize("command", ["coordinator", "agent", "relay"])
def test_every_worker_takes_log_format_with_its_variable(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--log-format [auto|json|text]" in result.output
    assert "DAMESTOILET_LOG_FORMAT" in result.output
