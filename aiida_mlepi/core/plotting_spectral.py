"""Plots of unfolded spectral functions and of band renormalisations (matplotlib, Agg; units in the labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, title: str) -> Path:
    """Give ``fig`` its title, write it to ``path`` (PNG, 130 dpi) and close it."""
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=130)
    _pyplot().close(fig)
    return path


def plot_spectral_functions(panels: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Heat maps of A(q, E) along a line through K, one panel each, on one colour scale.

    Each panel: ``label``, ``q`` (n_q,) Å⁻¹ (signed distance from K along the line), ``energies`` (nE,) eV
    relative to the static E_F, ``spectral`` (n_q, nE) eV⁻¹, and optionally ``fit_q`` / ``fit_bands``
    ((n_fit, n_bands) eV, the fitted model dispersion drawn over the map) and ``peaks_q`` / ``peaks``
    (the peak positions used in the fit) and ``window`` (q_min, q_max) Å⁻¹ (shaded outside the fit window).
    """
    plt = _pyplot()
    from matplotlib.colors import PowerNorm

    vmax = max(float(np.nanmax(p["spectral"])) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.0, 4.2), constrained_layout=True,
                             squeeze=False)
    # shared energy axis, set by hand: in a pytest session after the GPAW tests, subplots(sharey=True) got a
    # float nan instead of the first Axes from its object array (reproducible, cause not found; see the note)
    for ax in axes[0][1:]:
        ax.sharey(axes[0][0])
        ax.tick_params(labelleft=False)
    image = None
    for ax, panel in zip(axes[0], panels):
        q, e = np.asarray(panel["q"]), np.asarray(panel["energies"])
        image = ax.pcolormesh(q, e, np.asarray(panel["spectral"]).T, shading="nearest", cmap="magma",
                              norm=PowerNorm(0.5, vmin=0.0, vmax=vmax), rasterized=True)
        if "fit_bands" in panel:
            for branch in np.asarray(panel["fit_bands"]).T:
                ax.plot(panel["fit_q"], branch, color="cyan", lw=0.9, ls="--")
        if "peaks" in panel:
            pk = np.asarray(panel["peaks"])
            for branch in pk.T:
                ax.plot(panel["peaks_q"], branch, "o", ms=3, mfc="none", mec="lime", mew=0.8)
        if "window" in panel:
            lo, hi = panel["window"]
            for a, b in ((-lo, lo),):
                ax.axvspan(a, b, color="white", alpha=0.12, lw=0)
            ax.axvline(hi, color="white", lw=0.5, ls=":")
            ax.axvline(-hi, color="white", lw=0.5, ls=":")
        ax.set_title(panel["label"], fontsize=10)
        ax.set_xlabel(r"$q$ from K along the line (Å$^{-1}$)")
    axes[0][0].set_ylabel(r"$E - E_\mathrm{F}^\mathrm{static}$ (eV)")
    cbar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9)
    cbar.set_label(r"$\langle A(\mathbf{k}, E)\rangle$ (eV$^{-1}$), same scale in every panel")
    return _save(fig, path, title)


def plot_renormalisation_vs_temperature(rows: Sequence[dict], path: str | Path, quantities: Sequence[tuple],
                                        title: str = "") -> Path:
    """One panel per quantity: its relative change vs T (K) with ±1 s.e. bars.

    ``rows``: dicts with ``temperature_k`` and, per quantity key, ``{key}_relative`` and
    ``{key}_relative_stderr`` (fractions); ``quantities``: (key, mathtext label) pairs.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.2 * len(quantities), 3.6), constrained_layout=True,
                             squeeze=False)
    t = np.array([r["temperature_k"] for r in rows], dtype=float)
    for ax, (key, label) in zip(axes[0], quantities):
        y = 100 * np.array([r.get(f"{key}_relative", np.nan) for r in rows], dtype=float)
        err = 100 * np.array([np.nan if r.get(f"{key}_relative_stderr") is None else r[f"{key}_relative_stderr"]
                              for r in rows], dtype=float)
        ax.axhline(0.0, color="0.6", lw=0.8, label="static lattice")
        ax.errorbar(t, y, yerr=np.nan_to_num(err), fmt="o-", capsize=3, color="C0",
                    label="thermal average (±1 s.e. over configurations)")
        ax.set_xlabel(r"$T$ (K)")
        ax.set_ylabel(f"relative change of {label} (%)")
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path, title)


def plot_running_estimate(series: dict[str, tuple], path: str | Path, ylabel: str, reference: float | None = None,
                          title: str = "") -> Path:
    """Convergence with the number of configurations: ``series[label] = (n, value, stderr)`` with ±1 s.e. bars
    (``reference``: the static-lattice value, dashed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8), constrained_layout=True)
    for label, (n, value, err) in series.items():
        err = np.array([np.nan if e is None else e for e in err], dtype=float)
        ax.errorbar(n, value, yerr=np.nan_to_num(err), fmt="o-", capsize=3, label=f"{label} (±1 s.e.)")
    if reference is not None:
        ax.axhline(reference, color="0.4", ls="--", lw=0.9, label="static lattice")
    ax.set_xscale("log", base=2)
    counts = sorted({int(x) for n, _, _ in series.values() for x in n})
    ax.set_xticks(counts)
    ax.set_xticklabels([str(c) for c in counts])
    ax.set_xlabel("configurations")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path, "")
