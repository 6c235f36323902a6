"""CLI conveniences: -V, an environment variable for every option (shown in --help), shell
completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import redis
from click.testing import CliRunner

from damestoilet_contracts import DamestoiletError, __version__
from damestoilet_contracts.cli import main
from damestoilet_contracts.cli._handlers import find_handlers
from tests.conftest import REPO, SCHEMAS


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_version_as_dash_v() -> None:
    for flag in ("-V", "--version"):
        result = CliRunner().invoke(main, [flag])
        assert (result.exit_code, result.output) == (0, f"damestoilet, version {__version__}\n")


def test_every_option_of_every_command_has_an_environment_variable_shown_in_help() -> None:
    runner = CliRunner()
    for path, command in _commands(main):
        options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
        help_text = runner.invoke(main, [*path, "--help"], terminal_width=200).output
        for option in options:
            names = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or [])
            own = "DAMESTOILET_" + "_".join(p.upper().replace("-", "_") for p in path) + "_"
            assert names and names[0].startswith(own), (path, option.name, names)
            assert names[0] in help_text, (path, option.name)
        assert "Example" in help_text, path


def test_an_option_is_read_from_its_variable_and_the_flag_wins() -> None:
    case = str(REPO / "tests" / "cases" / "avro-near-miss-annotation" / "schemas")
    runner = CliRunner()
    from_env = runner.invoke(main, ["lint", case], env={"DAMESTOILET_LINT_FORMAT": "json"})
    assert from_env.exit_code == 1
    assert len(json.loads(from_env.stdout)) == 3
    flag = runner.invoke(main, ["lint", case, "--format", "text"],
                         env={"DAMESTOILET_LINT_FORMAT": "json"})  # fmt: skip
    assert flag.stdout.startswith(case)


def test_shared_variables_reach_every_command_and_the_commands_own_comes_first(
    redis_client: redis.Redis, redis_url: str
) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["dlq", "list", "--json"], env={"DAMESTOILET_REDIS": redis_url})
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == ""  # no dead letters, one JSON line each
    emitted = runner.invoke(
        main,
        ["emit", str(SCHEMAS), "catalog.v1.CategoryRenamed", "-q",
         "--json", '{"category_id": "c1", "old_name": "a", "new_name": "b"}'],
        env={"DAMESTOILET_REDIS": redis_url, "DAMESTOILET_STREAM": "env-events"},
    )  # fmt: skip
    assert emitted.exit_code == 0, emitted.output
    assert redis_client.xlen("env-events") == 1
    own_first = runner.invoke(
        main,
        ["dlq", "list"],
        env={"DAMESTOILET_DLQ_LIST_REDIS": "redis://127.0.0.1:1/0", "DAMESTOILET_REDIS": redis_url},
    )
    assert own_first.exit_code == 1  # the command's own variable, a dead port, was used


def test_shell_completion_script_is_printed() -> None:
    code = "from damestoilet_contracts.cli import main; main(prog_name='damestoilet')"
    env = {**os.environ, "_DAMESTOILET_COMPLETE": "bash_source"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "_damestoilet_completion" in done.stdout
    assert "complete " in done.stdout


def test_handlers_are_found_from_the_current_directory_or_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "svc" / "svc_events"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("HANDLERS = {'svc.v1.E': len}\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path / "svc")
    assert find_handlers("svc_events") == {"svc.v1.E": len}
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("svc_events", None)
    assert find_handlers("svc/svc_events") == {"svc.v1.E": len}
    with pytest.raises(DamestoiletError, match="not a package folder"):
        find_handlers("svc/nothing_here")


def test_a_handlers_package_that_fails_to_import_is_a_message_not_a_traceback(
    tmp_path: Path, redis_url: str
) -> None:
    broken = tmp_path / "broken_events"
    broken.mkdir()
    (broken / "__init__.py").write_text("HANDLERS = {\n")  # a syntax error
    result = CliRunner().invoke(
        main, ["coordinator", "--redis", redis_url, "--handlers", str(broken)]
    )
    assert result.exit_code == 1
    assert "importing handlers package 'broken_events' failed: SyntaxError" in result.output
    assert "Traceback" not in result.output
