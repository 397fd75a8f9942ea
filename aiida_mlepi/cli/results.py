"""``aiida-mlepi results``: the stored EPI-loop tables (band renormalisation or ⟨vF⟩(T)), found with the QueryBuilder."""

from __future__ import annotations

import click

from .root import cmd_root


@cmd_root.command("results")
@click.option("--material", default=None, help="Only this material (e.g. AB-bilayer-graphene).")
@click.option("--last", type=click.IntRange(1), default=1, show_default=True,
              help="How many runs of each kind (pipeline, EPI loop) to show.")
@click.pass_context
def cmd_results(ctx, material, last):
    """Print the latest results stored in the profile: MLEPI pipeline runs (`aiida-mlepi run`: ML table and
    ground-truth check), then EPI-loop tables (band renormalisation, or legacy ⟨vF⟩(T))."""
    from aiida_mlepi.queries import loop_summaries, pipeline_summaries

    from .profile import load_existing_profile
    from .tables import pipeline_table, summary_table

    load_existing_profile(ctx.obj.get("mlepi_profile"))
    pipelines = pipeline_summaries(material=material, limit=last)
    summaries = loop_summaries(material=material, limit=last)
    if not summaries and not pipelines:
        stored = sorted({node.get("material", "") for node in loop_summaries() + pipeline_summaries()} - {""})
        if material is not None and stored:
            raise click.ClickException(f"no results for material {material!r}; "
                                       f"stored materials: {', '.join(stored)}")
        raise click.ClickException("no results stored yet: run `aiida-mlepi run` (the pipeline) or "
                                   "`aiida-mlepi demo` (the engine-only loop) first")
    for node in pipelines:
        click.echo(f"--- pipeline summary node {node.pk} ({node.ctime:%Y-%m-%d %H:%M})")
        click.echo(pipeline_table(node.get_dict()))
    for node in summaries:
        click.echo(f"--- summary node {node.pk} ({node.ctime:%Y-%m-%d %H:%M})")
        click.echo(summary_table(node.get_dict()))
