"""What a screening has done: one :class:`RunStatus` per run, as a table, a CSV and a plot.

The observable of a run is the headline band parameter of its summary (the Fermi velocity v0 / vF, or the
gap for band edges): per temperature the value, its change relative to the static lattice and their
standard errors over configurations (None with a single independent configuration).
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiida import orm

from aiida_mlepi.core.plotting_screening import RenormalisationSeries, plot_screening_renormalisation

from .controller import (EXTRA_ATTEMPT, EXTRA_FAILURE, EXTRA_KEY, EXTRA_RUN, MAX_ATTEMPTS, failed_group_label,
                         inputs_group_label, is_retryable)

CSV_COLUMNS = ("name", "material", "engine", "workflow", "protocol", "state", "attempts", "pk", "temperature_k",
               "observable", "value", "stderr", "relative_change", "relative_change_stderr", "static_value",
               "n_samples", "supercell_cells", "wall_time_s", "key", "error")


@dataclass
class RunStatus:
    """One run of a screening: its description, its process (if submitted) and its results."""

    run: dict[str, Any]
    state: str  #: pending | created | waiting | running | finished | failed | retrying
    attempts: int = 0
    pk: int | None = None
    wall_time_s: float | None = None
    error: str = ""
    headline: str = ""
    static_value: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  #: per temperature: summary row
    supercell_cells: int | None = None  #: primitive cells in the sampled supercell
    final: bool = False  #: nothing more will happen to this run (finished, or failed with no retry left)

    @property
    def name(self) -> str:
        return self.run["name"]


def _summary(node: orm.ProcessNode) -> dict | None:
    outputs = node.outputs
    if "summary" in outputs and outputs.summary.get("observable") == "band_renormalisation_summary":
        return outputs.summary.get_dict()
    if "loop" in outputs and "summary" in outputs.loop:
        return outputs.loop.summary.get_dict()
    return None


def _processes(label: str) -> dict[str, list[tuple[orm.ProcessNode, bool]]]:
    """run key → [(process, retired to G/failed)] of screening ``label``."""
    out: dict[str, list[tuple[orm.ProcessNode, bool]]] = {}
    for group, retired in ((label, False), (failed_group_label(label), True)):
        qb = orm.QueryBuilder().append(orm.Group, filters={"label": group}, tag="g")
        qb.append(orm.ProcessNode, with_group="g", project="*")
        for node in qb.all(flat=True):
            out.setdefault(node.base.extras.get(EXTRA_KEY, ""), []).append((node, retired))
    return out


def _state(node: orm.ProcessNode, retired: bool) -> str:
    if node.is_finished_ok:
        return "finished"
    if node.is_terminated:
        return "retrying" if retired else "failed"
    return node.process_state.value if node.process_state is not None else "created"


def screening_status(label: str) -> list[RunStatus]:
    """Every run of screening ``label`` in the order it was added, with the latest attempt's state."""
    qb = orm.QueryBuilder().append(orm.Group, filters={"label": inputs_group_label(label)}, tag="g")
    qb.append(orm.Node, with_group="g", project="*").order_by({orm.Node: {"id": "asc"}})
    processes = _processes(label)
    statuses = []
    now = datetime.datetime.now(datetime.timezone.utc)
    for structure in qb.all(flat=True):
        run = structure.base.extras.get(EXTRA_RUN)
        nodes = sorted(processes.get(run["key"], []), key=lambda item: item[0].pk)
        if not nodes:
            statuses.append(RunStatus(run, "pending"))
            continue
        latest, retired = nodes[-1]
        status = RunStatus(run, _state(latest, retired), attempts=latest.base.extras.get(EXTRA_ATTEMPT, len(nodes)),
                           pk=latest.pk)
        status.final = status.state == "finished" or (status.state == "failed" and not (
            is_retryable(latest) and status.attempts < MAX_ATTEMPTS))
        end = latest.mtime if latest.is_terminated else now
        status.wall_time_s = (end - latest.ctime).total_seconds()
        if latest.is_terminated and not latest.is_finished_ok:
            status.error = latest.base.extras.get(EXTRA_FAILURE, "") or f"exit status {latest.exit_status}"
        summary = _summary(latest) if latest.is_finished_ok else None
        if summary is not None:
            status.headline = summary["headline"]
            status.static_value = summary["static_lattice"].get(status.headline)
            status.rows = summary["rows"]
            status.supercell_cells = summary.get("supercell_cells")
        statuses.append(status)
    return statuses


def status_records(statuses: list[RunStatus]) -> list[dict[str, Any]]:
    """One record (CSV_COLUMNS) per run and temperature (one record for a run without results)."""
    records = []
    for status in statuses:
        base = {"name": status.name, "material": status.run["material"], "engine": status.run["engine"],
                "workflow": status.run["workflow"], "protocol": status.run["protocol"], "state": status.state,
                "attempts": status.attempts, "pk": status.pk, "wall_time_s": status.wall_time_s,
                "key": status.run["key"], "error": status.error, "observable": status.headline or None,
                "static_value": status.static_value, "supercell_cells": status.supercell_cells}
        if not status.rows:
            records.append({column: base.get(column) for column in CSV_COLUMNS})
            continue
        h = status.headline
        for row in status.rows:
            record = {**base, "temperature_k": row["temperature_k"], "value": row.get(h),
                      "stderr": row.get(f"{h}_stderr"), "relative_change": row.get(f"{h}_relative"),
                      "relative_change_stderr": row.get(f"{h}_relative_stderr"), "n_samples": row.get("n_samples")}
            records.append({column: record.get(column) for column in CSV_COLUMNS})
    return records


def _fmt(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    return "—" if value is None else f"{value * scale:+.{digits}f}"


def status_table(statuses: list[RunStatus]) -> str:
    """Plain-text table: run, material, state, T (K), observable change vs the static lattice (%) ± s.e.,
    wall time; one line per temperature (the run's columns on its first line only)."""
    header = (f"{'run':<28} {'material':<22} {'engine':<9} {'state':<9} {'T (K)':>7} "
              f"{'observable':<18} {'change (%)':>11} {'± s.e. (%)':>10} {'wall (s)':>9}")
    lines = [header, "-" * len(header)]
    for status in statuses:
        first = (f"{status.name:<28} {status.run['material']:<22} {status.run['engine']:<9} {status.state:<9}")
        wall = "" if status.wall_time_s is None else f"{status.wall_time_s:9.0f}"
        if not status.rows:
            lines.append(f"{first} {'':>7} {'':<18} {'':>11} {'':>10} {wall:>9}")
        for i, row in enumerate(status.rows):
            h = status.headline
            lead = first if i == 0 else " " * len(first)
            lines.append(f"{lead} {row['temperature_k']:7.1f} {h:<18} {_fmt(row.get(f'{h}_relative'), 2, 100):>11} "
                         f"{_fmt(row.get(f'{h}_relative_stderr'), 2, 100).lstrip('+'):>10} "
                         f"{wall if i == 0 else '':>9}")
        if status.error:
            lines.append(f"{'':<28}   ↳ attempt {status.attempts}: {status.error}")
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.state] = counts.get(status.state, 0) + 1
    lines.append("")
    lines.append(f"{len(statuses)} runs: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return "\n".join(lines)


def write_csv(statuses: list[RunStatus], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in status_records(statuses):
            writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return path


def write_plot(statuses: list[RunStatus], path: str | Path, title: str = "") -> Path:
    """Renormalisation vs T of every finished run on one figure (see :func:`plot_screening_renormalisation`)."""
    series = []
    for status in statuses:
        if not status.rows:
            continue
        h = status.headline
        series.append(RenormalisationSeries(
            label=status.name, observable=h, temperatures_k=tuple(r["temperature_k"] for r in status.rows),
            relative_change=tuple(r.get(f"{h}_relative") for r in status.rows),
            relative_stderr=tuple(r.get(f"{h}_relative_stderr") for r in status.rows)))
    missing = tuple(f"{status.name} ({status.state})" for status in statuses if not status.rows)
    return plot_screening_renormalisation(series, path, title=title, missing=missing)
