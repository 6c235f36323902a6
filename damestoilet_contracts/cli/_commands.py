"""The list of commands of the ``damestoilet`` group, one import per command module."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []

from damestoilet_contracts.cli._lint import lint  # noqa: E402

COMMANDS.append(lint)

from damestoilet_contracts.cli._plan import plan  # noqa: E402

COMMANDS.append(plan)

from damestoilet_contracts.cli._coordinator import coordinator  # noqa: E402

COMMANDS.append(coordinator)

from damestoilet_contracts.cli._dlq import dlq  # noqa: E402

COMMANDS.append(dlq)

from damestoilet_contracts.cli._emit import emit  # noqa: E402

COMMANDS.append(emit)

from damestoilet_contracts.cli._breaking import breaking  # noqa: E402

COMMANDS.append(breaking)

from damestoilet_contracts.cli._generate import generate  # noqa: E402

COMMANDS.append(generate)

from damestoilet_contracts.cli._asyncapi import asyncapi  # noqa: E402

COMMANDS.append(asyncapi)

from damestoilet_contracts.cli._graph import graph  # noqa: E402

COMMANDS.append(graph)

from damestoilet_contracts.cli._agent import agent  # noqa: E402

COMMANDS.append(agent)

from damestoilet_contracts.cli._bench import bench  # noqa: E402

COMMANDS.append(bench)

from damestoilet_contracts.cli._verify import verify  # noqa: E402

COMMANDS.append(verify)

from damestoilet_contracts.cli._demo import demo  # noqa: E402

COMMANDS.append(demo)

from damestoilet_contracts.cli._outbox import outbox  # noqa: E402

COMMANDS.append(outbox)

from damestoilet_contracts.cli._relay import relay  # noqa: E402

COMMANDS.append(relay)

from damestoilet_contracts.cli._varnish import varnish  # noqa: E402

COMMANDS.append(varnish)

from damestoilet_contracts.cli._index_audit import index_audit  # noqa: E402

COMMANDS.append(index_audit)

from damestoilet_contracts.cli._trim import trim  # noqa: E402

COMMANDS.append(trim)
