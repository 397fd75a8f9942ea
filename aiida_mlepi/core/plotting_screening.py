"""The figure of a screening: the renormalisation of each material's observable vs temperature, one figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .plotting import STDERR_CAPTION, PlotInputError, _save, plt

#: display names of the summaries' headline observables
OBSERVABLE_LABELS = {"velocity_m_per_s": r"$v_0$ / $v_\mathrm{F}$", "gap_ev": r"$E_\mathrm{g}$"}


@dataclass(frozen=True)
class RenormalisationSeries:
    """One material: the relative change of ``observable`` vs the static lattice at each temperature (K)."""

    label: str
    observable: str
    temperatures_k: tuple[float, ...]
    relative_change: tuple[float, ...]  #: (X(T) − X_static) / X_static
    relative_stderr: tuple[float | None, ...]  #: ±1 s.e. over configurations (None: one independent configuration)


def plot_screening_renormalisation(series: list[RenormalisationSeries], path: str | Path,
                                   title: str = "", missing: tuple[str, ...] = ()) -> Path:
    """Relative renormalisation (%) vs T, one line with ±1 s.e. bars per material, on one set of axes
    (materials shifted by ~1 % of the T range so that their bars do not hide each other).

    ``missing``: runs without a result (e.g. ``'name (failed)'``), listed under the axes."""
    if not series:
        raise PlotInputError("no finished run to plot")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = "osD^vP*X"
    all_t = [t for s in series for t in s.temperatures_k]
    dodge = 0.012 * (max(all_t) - min(all_t) or 100.0)  # K: materials at the same T side by side, bars apart
    for i, s in enumerate(series):
        t = np.asarray(s.temperatures_k, dtype=float) + (i - (len(series) - 1) / 2) * dodge
        y = 100.0 * np.asarray(s.relative_change, dtype=float)
        err = np.array([np.nan if e is None else 100.0 * e for e in s.relative_stderr], dtype=float)
        name = OBSERVABLE_LABELS.get(s.observable, s.observable)
        ax.errorbar(t, y, yerr=np.where(np.isfinite(err), err, 0.0), marker=markers[i % len(markers)],
                    capsize=3, label=f"{s.label} ({name})")
    ax.axhline(0.0, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("change vs static lattice (%)")
    ax.set_title(f"{title or 'Band renormalisation vs T'} ({STDERR_CAPTION})", fontsize=10)
    ax.legend(fontsize=8)
    if missing:
        fig.text(0.01, -0.02, "no result: " + ", ".join(missing), fontsize=7, color="0.35", va="top")
    return _save(fig, path)
