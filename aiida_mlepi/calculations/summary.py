"""Calcfunctions that tabulate and plot ⟨vF⟩(T) at the end of the EPI loop."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import calcfunction


@calcfunction
def summarize_fermi_velocity(reference: orm.Dict, **averages: orm.Dict) -> orm.Dict:
    """Table of ⟨vF⟩(T) ± standard error, and the renormalisation relative to the static lattice."""
    rows = sorted((avg.get_dict() for avg in averages.values()), key=lambda row: row["temperature_k"])
    v0 = reference["fermi_velocity_m_per_s"]
    return orm.Dict({
        "observable": "fermi_velocity_summary",
        "material": reference.get("material", rows[0]["material"] if rows else ""),
        "static_lattice_m_per_s": v0,
        "temperatures_k": [row["temperature_k"] for row in rows],
        "mean_m_per_s": [row["mean_m_per_s"] for row in rows],
        "stderr_m_per_s": [row["stderr_m_per_s"] for row in rows],
        "n_samples": [row["n_samples"] for row in rows],
        "relative_change": [row["mean_m_per_s"] / v0 - 1.0 for row in rows],
    })


@calcfunction
def plot_fermi_velocity_summary(summary: orm.Dict) -> orm.SinglefileData:
    """PNG of ⟨vF⟩(T) with standard-error bars and the static-lattice value (paper Fig. 4f)."""
    from aiida_mlepi.core.plotting import plot_fermi_velocity_vs_temperature

    with tempfile.TemporaryDirectory() as tmp:
        data = summary.get_dict()
        stderr = [float("nan") if err is None else err for err in data["stderr_m_per_s"]]
        rows = list(zip(data["temperatures_k"], data["mean_m_per_s"], stderr))
        path = plot_fermi_velocity_vs_temperature(rows, Path(tmp) / "fermi_velocity_vs_T.png",
                                                  reference=data["static_lattice_m_per_s"])
        return orm.SinglefileData(file=str(path), filename="fermi_velocity_vs_T.png")
