"""The list of commands of the ``damestoilet`` group, one import per command module."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
