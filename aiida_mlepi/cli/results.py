"""``aiida-mlepi results``: the stored ⟨vF⟩(T) tables, found with the QueryBuilder."""

from __future__ import annotations

import click

from .root import cmd_root


@cmd_root.command("results")
@click.option("--material", default=None, help="Only this material (e.g. AB-bilayer-graphene).")
@click.option("--last", type=click.IntRange(1), default=1, show_default=True, help="How many runs to show.")
@click.pass_context
def cmd_results(ctx, material, last):
    """Print the latest ⟨vF⟩(T) tables stored in the profile."""
    from aiida_mlepi.queries import fermi_velocity_summaries

    from .profile import load_existing_profile
    from .tables import fermi_velocity_table

    load_existing_profile(ctx.obj.get("mlepi_profile"))
    summaries = fermi_velocity_summaries(material=material, limit=last)
    if not summaries:
        stored = sorted({node.get("material", "") for node in fermi_velocity_summaries()} - {""})
        if material is not None and stored:
            raise click.ClickException(f"no ⟨vF⟩(T) results for material {material!r}; "
                                       f"stored materials: {', '.join(stored)}")
        raise click.ClickException("no ⟨vF⟩(T) results stored yet: run `aiida-mlepi demo` first")
    for node in summaries:
        click.echo(f"--- summary node {node.pk} ({node.ctime:%Y-%m-%d %H:%M})")
        click.echo(fermi_velocity_table(node.get_dict()))
