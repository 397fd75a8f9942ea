"""``aiida-mlepi run``: the whole MLEPI pipeline (MlepiWorkChain) on AB bilayer graphene from a protocol."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .demo import _parse_temperatures
from .root import cmd_root

PROTOCOLS = ("fast", "balanced", "stringent")


def _optional_temperatures(ctx, param, value: str | None) -> list[float] | None:
    return None if value is None else _parse_temperatures(ctx, param, value)


def _overrides(sampler: str | None, temperatures: list[float] | None, samples: int | None,
               n_check: int | None, committee: int | None = None, active_learning: bool = False) -> dict:
    production = {key: value for key, value in (("sampler", sampler), ("temperatures_k", temperatures),
                                                ("n_samples", samples)) if value is not None}
    overrides: dict = {"production": production} if production else {}
    if n_check is not None:
        overrides["n_check"] = n_check
    if committee is not None:
        overrides["committee"] = {"phonon": committee, "electron": committee}
    if active_learning:
        overrides["active_learning"] = True
    return overrides


def _require_broker(profile) -> None:
    """A clear error when ``profile`` cannot take submitted processes; a hint when no daemon runs."""
    if profile.process_control_backend is None:
        raise click.ClickException(f"--daemon submits to the daemon, but profile '{profile.name}' has no broker "
                                   "(process control): run without --daemon, or use a profile with RabbitMQ or "
                                   "the ZeroMQ broker")
    from aiida.engine.daemon.client import get_daemon_client

    if not get_daemon_client(profile.name).is_daemon_running:
        click.echo(f"note: no daemon is running for profile '{profile.name}'; the pipeline waits until you run "
                   f"`verdi -p {profile.name} daemon start`")


@cmd_root.command("run")
@click.option("--engine", default="reference", show_default=True,
              help="Dataset engine (aiida_mlepi.dataset_engines); the ground-truth check needs 'reference'.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="fast", show_default=True,
              help="fast: CI-sized (minutes); balanced: a first real run; stringent: production.")
@click.option("--sampler", type=click.Choice(["mc", "zg"]), default=None, help="Thermal sampler (default: the protocol's).")
@click.option("--temperatures", default=None, callback=_optional_temperatures,
              help="Comma-separated temperatures (K) (default: the protocol's).")
@click.option("--samples", type=click.IntRange(1), default=None, help="Samples per temperature (mc).")
@click.option("--n-check", type=click.IntRange(0), default=None,
              help="Samples per temperature recomputed by the engine (0: no ground-truth check).")
@click.option("--committee", type=click.IntRange(1, 16), default=None,
              help="Members per network (default: the protocol's; 1: no committee uncertainty).")
@click.option("--active-learning", is_flag=True,
              help="One round: samples above the committee threshold are labelled by the engine, added to the "
                   "training sets, the networks retrained and the loop rerun.")
@click.option("--daemon", is_flag=True, help="Submit to the daemon instead of running here; prints the pk.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("mlepi-output"),
              show_default=True, help="Where the plots are written.")
@click.pass_context
def cmd_run(ctx, engine, protocol, sampler, temperatures, samples, n_check, committee, active_learning, daemon,
            output_dir):
    """Run the MLEPI pipeline on AB bilayer graphene: training datasets from the engine → HedgeNet-Phonon and
    HedgeNet-Electron committees (trained in parallel on localhost) → the EPI loop with member 0 of both → the
    committee spread per sample and of the observable (→ one round of active learning) → ground-truth check
    (the engine on a few samples per temperature and the engine's phonons).

    Profile handling as `demo` (creates 'mlepi' when there is no profile). The Python code of the training
    jobs (this interpreter on the computer 'localhost') is set up when missing.
    """
    from .profile import ensure_profile

    profile = ensure_profile(ctx.obj.get("mlepi_profile"), echo=click.echo)
    click.echo(f"AiiDA profile: {profile.name}")
    if daemon:
        _require_broker(profile)

    from aiida import orm
    from aiida.engine import run_get_node, submit

    from aiida_mlepi.calculations.engine import relax_bilayer_graphene
    from aiida_mlepi.codes import ensure_local_python_code
    from aiida_mlepi.core.engine.relax import supercell_kpoints_mesh
    from aiida_mlepi.workchains.dataset import protocol_inputs
    from aiida_mlepi.workchains.pipeline import PROTOCOL_FILE, MlepiWorkChain

    from .progress import ProgressBars
    from .tables import pipeline_table

    start = time.perf_counter()
    overrides = _overrides(sampler, temperatures, samples, n_check, committee, active_learning)
    supercell = protocol_inputs(protocol, overrides, PROTOCOL_FILE)["production"]["supercell"]
    mesh = supercell_kpoints_mesh(tuple(supercell))
    relax_mesh = [mesh[0] * supercell[0], mesh[1] * supercell[1], 1]
    click.echo(f"Relaxing AB bilayer graphene with the reference engine ({relax_mesh[0]}×{relax_mesh[1]} k-mesh) …")
    structure = relax_bilayer_graphene(orm.Str("AB"), orm.Dict({}), orm.List(relax_mesh))
    code = ensure_local_python_code()
    click.echo(f"training code: {code.full_label} ({code.filepath_executable})")
    builder = MlepiWorkChain.get_builder_from_protocol(structure, engine=engine, protocol=protocol, code=code,
                                                       overrides=overrides)
    if daemon:
        node = submit(builder)
        click.echo(f"submitted MlepiWorkChain<{node.pk}>; follow it with: verdi -p {profile.name} process "
                   f"status {node.pk}; results: verdi -p {profile.name} process show {node.pk}")
        return
    with ProgressBars():
        _, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise click.ClickException(
            f"MlepiWorkChain<{node.pk}> failed with exit code {node.exit_status}: {node.exit_message}\n"
            f"inspect it with: verdi -p {profile.name} process report {node.pk}")
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = [("renormalisation vs T", output_dir / "band_renormalisation_vs_T.png", node.outputs.loop.plot)]
    if "spectral_plot" in node.outputs.loop:
        plots.append(("spectral functions", output_dir / "spectral_function_maps.png", node.outputs.loop.spectral_plot))
    if "committee_plot" in node.outputs:
        plots.append(("committee uncertainty", output_dir / "committee_uncertainty.png", node.outputs.committee_plot))
    for _, path, data in plots:
        path.write_bytes(data.get_content(mode="rb"))
    click.echo("")
    click.echo(pipeline_table(node.outputs.summary.get_dict()))
    click.echo("")
    click.echo(f"MlepiWorkChain<{node.pk}> finished in {time.perf_counter() - start:.0f} s "
               f"(profile '{profile.name}'; inspect: verdi -p {profile.name} process show {node.pk})")
    for label, path, _ in plots:
        click.echo(f"{label}: {path.resolve()}")
