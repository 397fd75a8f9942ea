"""Root command group of ``aiida-mlepi``."""

from __future__ import annotations

import click
from aiida.cmdline.groups import VerdiCommandGroup


@click.group("aiida-mlepi", cls=VerdiCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--profile", "profile_name", default=None, metavar="PROFILE",
              help="AiiDA profile to use; it must exist (default: the default profile; `demo` creates "
                   "'mlepi' when there is no profile at all).")
@click.pass_context
def cmd_root(ctx: click.Context, profile_name: str | None) -> None:
    """Electron–phonon interactions from finite differences (MLEPI / HedgeNet) on AiiDA."""
    ctx.obj["mlepi_profile"] = profile_name
