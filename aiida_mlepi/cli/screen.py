"""``aiida-mlepi screen``: screen the materials of a screening file, one EPI run each, through the daemon.

    aiida-mlepi screen FILE.yaml [--group NAME] [--max-concurrent N] [--engine E] [--protocol P] [--no-wait]
    aiida-mlepi screen status --group NAME
    aiida-mlepi screen report --group NAME [--output-dir DIR]

The file is checked first: every problem is printed (one line per bad entry) and nothing is submitted.
Re-running the same command after a crash or a daemon restart submits only what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from .root import cmd_root


class _ScreenGroup(click.Group):
    """``screen FILE …`` runs the ``submit`` subcommand; ``screen status|report …`` the others."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["submit", *args]
        return super().parse_args(ctx, args)


@cmd_root.group("screen", cls=_ScreenGroup)
def cmd_screen():
    """Screen catalogue materials: `screen FILE.yaml` submits one run per material (at most --max-concurrent at a
    time) and follows them; `screen status` and `screen report` show the results."""


def _default_group(path: Path) -> str:
    return f"screening/{path.stem}"


def _check_file(path: Path, engine: str | None, protocol: str | None):
    from aiida_mlepi.core.screening import ScreeningError, load_screening
    from aiida_mlepi.workchains.dataset import load_protocols
    from aiida_mlepi.workchains.pipeline import PROTOCOL_FILE

    try:
        return load_screening(path, protocols=tuple(load_protocols(PROTOCOL_FILE)["protocols"]), engine=engine,
                              protocol=protocol)
    except ScreeningError as exc:
        raise click.ClickException(str(exc)) from None


def _summary_line(statuses) -> str:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.state] = counts.get(status.state, 0) + 1
    done = sum(status.final for status in statuses)
    return f"{done}/{len(statuses)} done: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


@cmd_screen.command("submit")
@click.argument("path", metavar="FILE.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--group", "label", default=None, help="Group label of the screening (default: screening/<file stem>).")
@click.option("--max-concurrent", type=click.IntRange(1), default=2, show_default=True,
              help="At most this many runs in flight at once.")
@click.option("--engine", default=None, help="Engine of every run (default: each run's, else the catalogue entry's).")
@click.option("--protocol", default=None, help="Protocol (protocols/pipeline.yaml) of every run (default: each run's).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Keep submitting as slots free up until every run is done (--no-wait: one batch, then exit; "
                   "run it again, e.g. from cron, to continue).")
@click.option("--interval", type=click.FloatRange(0.5), default=10.0, show_default=True,
              help="Seconds between two checks while waiting.")
@click.pass_context
def cmd_submit(ctx, path, label, max_concurrent, engine, protocol, wait, interval):
    """Submit one run per material of FILE.yaml to the daemon (idempotent: rerun it to continue)."""
    plan = _check_file(path, engine, protocol)  # before the profile: a bad file fails fast, submits nothing
    from .profile import ensure_profile
    from .run import _require_broker

    profile = ensure_profile(ctx.obj.get("mlepi_profile"), echo=click.echo)
    from aiida.engine.daemon.client import get_daemon_client

    daemon_running = get_daemon_client(profile.name).is_daemon_running
    if profile.process_control_backend == "core.zeromq" and not daemon_running:
        raise click.ClickException(f"profile '{profile.name}' uses the ZeroMQ broker that the daemon brings along: "
                                   f"start it first (verdi -p {profile.name} daemon start 2), then run this again")
    _require_broker(profile)
    from aiida_mlepi.codes import ensure_local_python_code
    from aiida_mlepi.screening.controller import ScreeningController, prepare_screening
    from aiida_mlepi.screening.results import screening_status

    label = label or _default_group(path)
    keys = prepare_screening(plan, label)
    code = ensure_local_python_code() if any(run.workflow == "pipeline" for run in plan.runs) else None
    controller = ScreeningController.for_screening(label, max_concurrent, keys=keys,
                                                   code_pk=None if code is None else code.pk)
    click.echo(f"screening '{label}' (profile '{profile.name}'): {len(keys)} runs from {path}, "
               f"at most {max_concurrent} at once")
    if not daemon_running:
        lost = controller.record_lost_tasks()
        if lost:
            click.echo(f"  {len(lost)} process(es) lost their broker task when the daemon stopped "
                       f"({', '.join(map(str, lost))}): recorded, they are revived when you start the daemon and "
                       "run this command again")
    else:
        revived = controller.revive_lost_tasks()
        if revived:
            click.echo(f"  revived {len(revived)} process(es) whose broker task a daemon stop had lost: "
                       f"{', '.join(map(str, revived))}")
    last = ""
    while True:
        for node in controller.adopt_orphans():
            click.echo(f"  adopted {node.process_label}<{node.pk}> ({node.label}), submitted before an interruption")
        for (key,), node in controller.submit_new_batch().items():
            attempt = node.base.extras.get("mlepi_screening_attempt", 1)
            click.echo(f"  submitted {node.process_label}<{node.pk}> for {key.split('|')[0]}"
                       + (f" (attempt {attempt}, after: {_last_failure(controller, key)})" if attempt > 1 else ""))
        statuses = [s for s in screening_status(label) if s.run["key"] in keys]
        line = _summary_line(statuses)
        if line != last:
            click.echo(f"[{time.strftime('%H:%M:%S')}] {line}")
            last = line
        if not wait or all(status.final for status in statuses):
            break
        time.sleep(interval)
    if wait:
        click.echo("")
        from aiida_mlepi.screening.results import status_table

        click.echo(status_table(statuses))
    click.echo(f"\nstatus: aiida-mlepi -p {profile.name} screen status --group {label}\n"
               f"report: aiida-mlepi -p {profile.name} screen report --group {label}")


def _last_failure(controller, key: str) -> str:
    from aiida import orm

    from aiida_mlepi.screening.controller import EXTRA_FAILURE, EXTRA_KEY

    qb = orm.QueryBuilder().append(orm.Group, filters={"label": controller.failed_group.label}, tag="g")
    qb.append(orm.ProcessNode, with_group="g", filters={f"extras.{EXTRA_KEY}": key},
              project=f"extras.{EXTRA_FAILURE}").order_by({orm.ProcessNode: {"id": "desc"}})
    reasons = qb.all(flat=True)
    return reasons[0] if reasons else "a failure"


def _statuses(ctx, label: str):
    from aiida_mlepi.screening.controller import load_controller
    from aiida_mlepi.screening.results import screening_status

    from .profile import load_existing_profile

    load_existing_profile(ctx.obj.get("mlepi_profile"))
    try:
        load_controller(label)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return screening_status(label)


@cmd_screen.command("status")
@click.option("--group", "label", required=True, help="Group label of the screening.")
@click.pass_context
def cmd_status(ctx, label):
    """Table of the runs: material, state, observable change vs the static lattice (%) per T ± s.e., wall time."""
    from aiida_mlepi.screening.results import status_table

    click.echo(status_table(_statuses(ctx, label)))


@cmd_screen.command("report")
@click.option("--group", "label", required=True, help="Group label of the screening.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("mlepi-output"),
              show_default=True, help="Where the CSV and the plot are written.")
@click.pass_context
def cmd_report(ctx, label, output_dir):
    """Write <group>.csv (one row per run and temperature) and <group>.png (renormalisation vs T per material)."""
    from aiida_mlepi.core.plotting import PlotInputError
    from aiida_mlepi.screening.results import status_table, write_csv, write_plot

    statuses = _statuses(ctx, label)
    stem = label.replace("/", "_")
    csv_path = write_csv(statuses, output_dir / f"{stem}.csv")
    click.echo(status_table(statuses))
    click.echo(f"\ntable: {csv_path.resolve()}")
    try:
        plot = write_plot(statuses, output_dir / f"{stem}.png", title=f"screening '{label}'")
    except PlotInputError as exc:
        click.echo(f"plot: none ({exc})")
    else:
        click.echo(f"plot: {plot.resolve()}")
