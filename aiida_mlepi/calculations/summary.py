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


#: per-temperature keys of the spectral estimate copied into the summary rows
SPECTRAL_ROW_KEYS = ("temperature_k", "n_samples", "n_independent", "residual_rms_ev", "folded_gap_ev",
                     "folded_splitting_ev", "running_n")


@calcfunction
def summarize_band_renormalisation(static_lattice: orm.Dict, **averages: orm.Dict) -> orm.Dict:
    """Table of the band parameters (T) ± standard error and their changes vs the static lattice
    (spectral estimator; one row per temperature, every parameter with its ``_stderr``/``_relative``)."""
    rows = sorted((avg.get_dict() for avg in averages.values()), key=lambda row: row["temperature_k"])
    first = rows[0]
    parameters = [key for key in first if key.startswith("static_") and not key.startswith("static_residual")]
    names = [key[len("static_"):] for key in parameters]
    table = []
    for row in rows:
        entry = {key: row.get(key) for key in SPECTRAL_ROW_KEYS}
        for name in names:
            for suffix in ("", "_stderr", "_relative", "_relative_stderr", "_shift"):
                if f"{name}{suffix}" in row:
                    entry[f"{name}{suffix}"] = row[f"{name}{suffix}"]
        headline = row["headline"]
        entry[f"running_{headline}"] = row.get(f"running_{headline}")
        entry[f"running_{headline}_stderr"] = row.get(f"running_{headline}_stderr")
        table.append(entry)
    return orm.Dict({
        "observable": "band_renormalisation_summary",
        "estimator": first["estimator"],
        "material": first.get("material", static_lattice.get("material", "")),
        "sampler": first.get("sampler"),
        "supercell_cells": first.get("supercell_cells"),
        "num_atoms": first.get("num_atoms"),
        "k_window_inv_angstrom": first["k_window_inv_angstrom"],
        "broadening_ev": first.get("broadening_ev"),
        "headline": first["headline"],
        "static_lattice": {name: static_lattice.get(name) for name in names if name in static_lattice.get_dict()},
        "temperatures_k": [row["temperature_k"] for row in rows],
        "rows": table,
    })


#: quantities of the renormalisation plot per estimator model
RENORMALISATION_PLOT = {
    "ab-bilayer": (("velocity_m_per_s", r"$v_0$"), ("gamma1_ev", r"$\gamma_1$")),
    "monolayer": (("velocity_m_per_s", r"$v_\mathrm{F}$"),),
    "band-edges": (("gap_ev", r"$E_\mathrm{g}$"),),
}


@calcfunction
def plot_band_renormalisation(summary: orm.Dict) -> orm.SinglefileData:
    """PNG: relative change of each fitted band parameter vs T with ±1 s.e. bars (spectral estimator)."""
    from aiida_mlepi.core.plotting_spectral import plot_renormalisation_vs_temperature

    data = summary.get_dict()
    model = data["estimator"].split(":", 1)[-1]
    window = data["k_window_inv_angstrom"]
    title = (f"{data.get('material', '')}: {data.get('supercell_cells')}-cell supercell, {data.get('sampler', 'mc')} "
             f"sampling, fit window q = {window[0]:g}–{window[1]:g} Å$^{{-1}}$ from K")
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_renormalisation_vs_temperature(data["rows"], Path(tmp) / "band_renormalisation_vs_T.png",
                                                   RENORMALISATION_PLOT[model], title=title)
        return orm.SinglefileData(file=str(path), filename="band_renormalisation_vs_T.png")


@calcfunction
def plot_spectral_function_maps(summary: orm.Dict, **spectral_functions: orm.ArrayData) -> orm.SinglefileData:
    """PNG: configuration-averaged A(q, E) on the line through K — static lattice, then each temperature —
    on one colour scale, with the peaks used in the fit (direction-averaged, drawn at ±q) and the fitted
    model over the fit window."""
    import numpy as np

    from aiida_mlepi.core.plotting_spectral import plot_spectral_functions
    from aiida_mlepi.core.spectral_estimators import half_splittings, model_half_splittings

    data = summary.get_dict()
    model = data["estimator"].split(":", 1)[-1]
    nodes = sorted(spectral_functions.values(), key=lambda n: n.base.attributes.get("temperature_k"))
    if not nodes or "line_spectral_function" not in nodes[0].get_arraynames():
        raise ValueError("the spectral functions have no heat-map line (line_points = 0)")
    grid = nodes[0].get_array("energy_grid_ev") - nodes[0].base.attributes.get("fermi_level_static_ev")
    band_edges = model == "band-edges"  # gapped: the whole window (both edges), no dispersion fit to overlay
    keep = np.abs(grid) <= (np.abs(grid).max() if band_edges else 1.0)
    q_line = nodes[0].get_array("line_q")
    window = data["k_window_inv_angstrom"]

    def overlays(peaks: np.ndarray, q: np.ndarray, params: dict) -> dict:
        if band_edges:  # the peaks are at the band-edge k-points, not on the line's q window
            return {}
        out = {"peaks_q": np.concatenate([-q[::-1], q]), "window": window}
        rel = peaks - nodes[0].base.attributes.get("fermi_level_static_ev")
        out["peaks"] = np.vstack([rel[::-1], rel])
        if model != "band-edges":
            fit_params = [params["velocity_ev_angstrom"]] + ([params["gamma1_ev"]] if model == "ab-bilayer" else [])
            _, mid = half_splittings(rel)
            half = model_half_splittings(model, fit_params, q)
            m = half.shape[1]
            bands = np.concatenate([(mid - half)[:, ::-1], mid + half], axis=1)  # v_m … v_1 c_1 … c_m
            out["fit_q"] = np.concatenate([-q[::-1], [np.nan], q])
            out["fit_bands"] = np.vstack([bands[::-1], np.full((1, 2 * m), np.nan), bands])
        return out

    rows = {row["temperature_k"]: row for row in data["rows"]}
    static_params = data["static_lattice"]
    q_fit = nodes[0].get_array("q_inv_angstrom")
    panels = [{"label": "static lattice", "q": q_line, "energies": grid[keep],
               "spectral": nodes[0].get_array("static_line_spectral_function")[:, keep],
               **overlays(nodes[0].get_array("static_peaks_ev"), q_fit, static_params)}]
    chosen = nodes if len(nodes) <= 3 else [nodes[0], nodes[len(nodes) // 2], nodes[-1]]
    for node in chosen:
        t = node.base.attributes.get("temperature_k")
        params = {k: rows[t].get(k) for k in ("velocity_ev_angstrom", "gamma1_ev")}
        panels.append({"label": f"{t:g} K ({node.base.attributes.get('n_samples')} configurations)", "q": q_line,
                       "energies": grid[keep], "spectral": node.get_array("line_spectral_function")[:, keep],
                       **overlays(node.get_array("peaks_ev"), q_fit, params)})
    legend = ("line through the first band-edge k-point; band edges in the table" if band_edges
              else "circles: peaks (direction average), dashed: fitted model")
    title = (f"{data.get('material', '')}: unfolded spectral function, σ = {1e3 * data.get('broadening_ev', 0):.0f} meV; "
             f"{legend}")
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_spectral_functions(panels, Path(tmp) / "spectral_function_maps.png", title=title)
        return orm.SinglefileData(file=str(path), filename="spectral_function_maps.png")
