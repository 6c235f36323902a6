"""Environment variables for every option of every command, shown in ``--help``.

Each option reads ``DAMESTOILET_<COMMAND>_<OPTION>`` (click's ``auto_envvar_prefix``, the
words of nested commands joined: ``DAMESTOILET_DLQ_LIST_REDIS``). The options that name the
same thing everywhere (the Redis, the bus, the stream, ...) also read one shared name,
``DAMESTOILET_REDIS``, ``DAMESTOILET_BUS``, after the command's own. A flag on the command
line wins over both.
"""

from __future__ import annotations

import click

#: The prefix of every variable.
PREFIX = "DAMESTOILET"
#: Options (by their long flag) that read a shared variable too: they mean the same in every
#: command.
SHARED = frozenset(
    {
        "REDIS",
        "BUS",
        "CLUSTER",
        "BUS_CLUSTER",
        "STREAM",
        "GROUP",
        "CONSUMER",
        "DLQ_STREAM",
        "HANDLERS",
        "FLUSH_GRAPH",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "METRICS_PORT",
        "METRICS_ADDR",
    }
)


def add_envvars(command: click.Command, words: tuple[str, ...] = ()) -> None:
    """Give every option of ``command`` (and of its subcommands) its variables and show them.

    ``words`` are the command names from the top group down to ``command`` (none for the
    top group itself, whose own options, --version and --help, read no variable).
    """
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "help", "version"):
            continue
        param.show_envvar = True
        if param.envvar is None and words:
            own = "_".join([PREFIX, *(w.upper().replace("-", "_") for w in words), _flag(param)])
            shared = f"{PREFIX}_{_flag(param)}"
            param.envvar = [own, shared] if _flag(param) in SHARED else own
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_envvars(sub, (*words, name))


def _flag(param: click.Option) -> str:
    # The variable is named after the long option (--redis -> REDIS), not the Python name.
    longs = [o for o in param.opts if o.startswith("--")]
    name = longs[0][2:] if longs else (param.name or "")
    return name.upper().replace("-", "_")
