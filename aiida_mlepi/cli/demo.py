"""``aiida-mlepi demo``: the EPI loop on AB bilayer graphene with the reference engine."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .root import cmd_root


def _parse_temperatures(ctx, param, value: str) -> list[float]:
    try:
        temperatures = [float(t) for t in value.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers in K, got {value!r}") from None
    if not temperatures:
        raise click.BadParameter("give at least one temperature")
    if min(temperatures) < 0:
        raise click.BadParameter(f"temperatures must be ≥ 0 K, got {temperatures}")
    return temperatures


@cmd_root.command("demo")
@click.option("--supercell", type=click.IntRange(1, 24), default=6, show_default=True,
              help="n of the n×n×1 supercell of the phonon and sampling stages.")
@click.option("--temperatures", default="0,150,300", show_default=True, callback=_parse_temperatures,
              help="Comma-separated temperatures (K).")
@click.option("--samples", type=click.IntRange(1), default=16, show_default=True,
              help="Monte-Carlo configurations per temperature.")
@click.option("--sampler", type=click.Choice(["mc", "zg"]), default="mc", show_default=True,
              help="Thermal sampler: Monte Carlo, or the special displacement configuration (ZG) and its antipode.")
@click.option("--estimator", type=click.Choice(["spectral", "chord"]), default="spectral", show_default=True,
              help="Observable: band parameters from unfolded spectral functions, or the legacy chord velocity.")
@click.option("--seed", type=int, default=20240601, show_default=True)
@click.option("--antithetic/--no-antithetic", default=True, show_default=True,
              help="Sample ± pairs (needs an even --samples).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("mlepi-output"),
              show_default=True, help="Where the plots are written.")
@click.pass_context
def cmd_demo(ctx, supercell, temperatures, samples, sampler, estimator, seed, antithetic, output_dir):
    """Run phonons → thermal sampling → H(R) → unfolded spectral functions → band renormalisation (T) for
    AB bilayer graphene (reference engine): v0 and γ1 of the four-band model fitted to the peaks of the
    configuration-averaged A(k, E) clear of the folded point, with standard errors.

    Uses the profile given with -p (it must exist), or the default profile, or, when there is no
    profile at all, creates a local 'mlepi' profile (SQLite, no services needed). Every structure, Hamiltonian and observable is stored.
    """
    if antithetic and samples % 2:
        raise click.BadParameter(f"antithetic pairs need an even number of samples, got {samples}",
                                 param_hint="--samples")
    from .profile import ensure_profile

    profile = ensure_profile(ctx.obj.get("mlepi_profile"), echo=click.echo)
    click.echo(f"AiiDA profile: {profile.name}")

    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.calculations.engine import relax_bilayer_graphene
    from aiida_mlepi.core.engine.relax import supercell_kpoints_mesh
    from aiida_mlepi.core.plotting import plot_convergence
    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

    from .progress import ProgressBars
    from .tables import band_convergence_table, convergence_table, summary_table

    start = time.perf_counter()
    # forces of the n×n supercell on an m×m k-mesh sample the zone like an (nm)×(nm) mesh of the unit cell:
    # relax with that mesh, so that the phonon stage starts from a force-free structure
    phonon_mesh = list(supercell_kpoints_mesh((supercell, supercell, 1)))
    relax_mesh = [phonon_mesh[0] * supercell, phonon_mesh[1] * supercell, 1]
    click.echo(f"Relaxing AB bilayer graphene with the reference engine ({relax_mesh[0]}×{relax_mesh[1]} k-mesh) …")
    structure = relax_bilayer_graphene(orm.Str("AB"), orm.Dict({}), orm.List(relax_mesh))
    click.echo(f"  a = {structure.cell[0][0]:.4f} Å, layers = {structure.num_layers}  (node {structure.pk})")
    inputs = {
        "structure": structure,
        "supercell_matrix": orm.List([supercell, supercell, 1]),
        "temperatures_k": orm.List(temperatures),
        "n_samples": orm.Int(samples),
        "seed": orm.Int(seed),
        "antithetic": orm.Bool(antithetic),
        "phonon_kpoints_mesh": orm.List(phonon_mesh),
        "sampler": orm.Str(sampler),
        "observable_settings": orm.Dict({"estimator": estimator}),
    }
    with ProgressBars():
        _, node = run_get_node(EpiLoopWorkChain, **inputs)
    if not node.is_finished_ok:
        raise click.ClickException(
            f"EpiLoopWorkChain<{node.pk}> failed with exit code {node.exit_status}: {node.exit_message}\n"
            f"inspect it with: verdi -p {profile.name} process report {node.pk}")
    summary = node.outputs.summary.get_dict()
    averages = [node.outputs.averages[key].get_dict() for key in node.outputs.averages]
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    if estimator == "chord":
        plots.append(("plot", output_dir / "fermi_velocity_vs_T.png", node.outputs.plot))
    else:
        plots.append(("renormalisation vs T", output_dir / "band_renormalisation_vs_T.png", node.outputs.plot))
        if "spectral_plot" in node.outputs:
            plots.append(("spectral functions", output_dir / "spectral_function_maps.png", node.outputs.spectral_plot))
    for _, path, data in plots:
        path.write_bytes(data.get_content(mode="rb"))
    click.echo("")
    click.echo(summary_table(summary))
    click.echo("")
    if estimator == "chord":
        series = {f"{avg['temperature_k']:g} K": avg["values_m_per_s"]
                  for avg in sorted(averages, key=lambda a: a["temperature_k"])}
        if samples >= (4 if antithetic else 2):
            plots.append(("convergence plot", Path(plot_convergence(
                series, output_dir / "fermi_velocity_convergence.png", pairs=antithetic,
                reference=summary["static_lattice_m_per_s"])), None))
        click.echo("running <vF> (10^6 m/s) vs number of samples:")
        click.echo(convergence_table(averages))
    else:
        from aiida_mlepi.core.plotting_spectral import plot_running_estimate

        headline = summary["headline"]
        click.echo("running v0 (10^6 m/s, ±1 s.e.) vs number of configurations:")
        click.echo(band_convergence_table(summary))
        if max(len(row["running_n"]) for row in summary["rows"]) > 1:
            series = {f"{row['temperature_k']:g} K": (row["running_n"],
                                                      [v / 1e6 for v in row[f"running_{headline}"]],
                                                      [None if e is None else e / 1e6
                                                       for e in row[f"running_{headline}_stderr"]])
                      for row in summary["rows"]}
            path = plot_running_estimate(series, output_dir / "band_convergence_vs_samples.png",
                                         r"$v_0$ ($10^6$ m/s)", reference=summary["static_lattice"][headline] / 1e6,
                                         title="convergence with the number of configurations")
            plots.append(("convergence plot", Path(path), None))
    click.echo("")
    click.echo(f"EpiLoopWorkChain<{node.pk}> finished in {time.perf_counter() - start:.0f} s "
               f"(profile '{profile.name}'; inspect: verdi -p {profile.name} process show {node.pk})")
    for label, path, _ in plots:
        click.echo(f"{label}: {path.resolve()}")
