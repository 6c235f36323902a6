"""The ``damestoilet`` group. Each command lives in its own module and only parses, calls the
library and prints. Exit codes: 0 done, 1 the input is wrong, 2 usage.
"""

from __future__ import annotations

import click

from damestoilet_contracts._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="damestoilet")
def main() -> None:
    """Cache invalidation as a typed, schema-first contract.

    Every option can be set in the environment: DAMESTOILET_<COMMAND>_<OPTION>, and the
    shared ones (--redis, --bus, --stream, ...) also as DAMESTOILET_<OPTION>; each --help
    names them. Shell completion: eval "$(_DAMESTOILET_COMPLETE=bash_source damestoilet)".

    \b
    Examples:
      damestoilet lint schemas
      damestoilet plan schemas catalog.v1.ProductPriceChanged --json '{"product_id": "p1"}'
    """


def _register() -> None:
    # Imported here, not at the top, so that each command module can import the group's helpers
    # without a cycle; the list is the order --help shows.
    from damestoilet_contracts.cli import _commands
    from damestoilet_contracts.cli._envvars import add_envvars

    for command in _commands.COMMANDS:
        main.add_command(command)
    add_envvars(main)


_register()
