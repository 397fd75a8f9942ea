"""``aiida-mlepi results``: the stored EPI-loop tables (band renormalisation or ⟨vF⟩(T)), found with the QueryBuilder."""

from __future__ import annotations

import click

from .root import cmd_root


@cmd_root.command("results")
@click.option("--material", default=None, help="Only this material (e.g. AB-bilayer-graphene).")
@click.option("--last", type=click.IntRange(1), default=1, show_default=True, help="How many runs to show.")
@click.pass_context
def cmd_results(ctx, material, last):
    """Print the latest EPI-loop tables stored in the profile (band renormalisation, or legacy ⟨vF⟩(T))."""
    from aiida_mlepi.queries import loop_summaries

    from .profile import load_existing_profile
    from .tables import summary_table

    load_existing_profile(ctx.obj.get("mlepi_profile"))
    summaries = loop_summaries(material=material, limit=last)
    if not summaries:
        stored = sorted({node.get("material", "") for node in loop_summaries()} - {""})
        if material is not None and stored:
            raise click.ClickException(f"no results for material {material!r}; "
                                       f"stored materials: {', '.join(stored)}")
        raise click.ClickException("no results stored yet: run `aiida-mlepi demo` first")
    for node in summaries:
        click.echo(f"--- summary node {node.pk} ({node.ctime:%Y-%m-%d %H:%M})")
        click.echo(summary_table(node.get_dict()))
