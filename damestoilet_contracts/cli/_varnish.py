"""``damestoilet varnish``: what a Varnish in front of the origin needs (``vcl``)."""

from __future__ import annotations

import click

from damestoilet_contracts.runtime.varnish._vcl import DEFAULT_GRACE_S, render_vcl


@click.group("varnish")
def varnish() -> None:
    """Varnish as a purge target (xkey tags, soft purge, PURGE, bans).

    \b
    Example:
      damestoilet varnish vcl --backend 127.0.0.1:8080 > /etc/varnish/default.vcl
    """


@varnish.command("vcl")
@click.option("--backend", required=True, metavar="HOST:PORT", help="The origin Varnish fronts.")
@click.option(
    "--acl",
    multiple=True,
    metavar="CIDR",
    help="An address or network allowed to purge (repeatable) [default: 127.0.0.1].",
)
@click.option(
    "--secret",
    metavar="TEXT",
    help="Also require this shared secret in the x-damestoilet-secret header of purges.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_S,
    show_default=True,
    help="Seconds a soft-purged object stays servable while it refetches.",
)
def vcl(backend: str, acl: tuple[str, ...], secret: str | None, grace: float) -> None:
    """Print a complete VCL 4.1 for one backend that answers the Varnish purge target:
    xkey purge and softpurge, PURGE of one URL (hard or soft), BAN by URL prefix, each
    refused with 403 from addresses outside the ACL. The purge handling is in named
    damestoilet_* subroutines, to use as it is or to copy into your own VCL. Needs
    varnish-modules (vmod_xkey).

    Exit 2 when an option is malformed.

    \b
    Examples:
      damestoilet varnish vcl --backend 127.0.0.1:8080
      damestoilet varnish vcl --backend origin:80 --acl 10.0.0.0/8 --acl 127.0.0.1 \\
        --secret "$PURGE_SECRET" --grace 120 > default.vcl
    """
    try:
        text = render_vcl(backend, acl=acl or ("127.0.0.1",), secret=secret, grace_s=grace)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(text, nl=False)
