"""Plots (png, matplotlib Agg backend): band structures, ⟨v_F⟩(T), convergence vs samples.

Energies eV, velocities m/s (plotted in 10⁶ m/s, as in the command-line tables), temperatures K.
Error bars and bands are ±1 standard error over configurations. Each function writes one file
and returns its :class:`~pathlib.Path`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .bands import BandStructure  # noqa: E402
from .statistics import running_average  # noqa: E402
from .units import VELOCITY_DISPLAY_M_PER_S  # noqa: E402

VELOCITY_SCALE = VELOCITY_DISPLAY_M_PER_S  #: m/s per plotted unit (10⁶ m/s)
VELOCITY_LABEL = r"$\langle v_\mathrm{F}\rangle$ ($10^6$ m/s)"
STDERR_CAPTION = "±1 s.e. over configurations"


class PlotInputError(ValueError):
    """Data that cannot be plotted as asked."""


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_bands(bands: BandStructure, path: str | Path, *, reference: BandStructure | None = None,
               energy_window: tuple[float, float] | None = None, title: str = "") -> Path:
    """Band structure (relative to E_F if known) with optional reference bands (dashed)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ef = bands.fermi_level or 0.0
    ax.plot(bands.distance, bands.energies - ef, color="C0", lw=1.2)
    if reference is not None:
        ref_ef = reference.fermi_level or 0.0
        scale = bands.distance[-1] / reference.distance[-1]
        ax.plot(reference.distance * scale, reference.energies - ref_ef, "--", color="C3", lw=0.8)
    for x in bands.label_distance:
        ax.axvline(x, color="0.6", lw=0.6)
    ax.axhline(0.0, color="0.4", lw=0.6, ls=":")
    ax.set_xticks(bands.label_distance, bands.labels)
    ax.set_xlim(bands.distance[0], bands.distance[-1])
    if energy_window is not None:
        ax.set_ylim(*energy_window)
    ax.set_ylabel("E − E_F (eV)" if bands.fermi_level is not None else "E (eV)")
    ax.set_title(title)
    return _save(fig, path)


def plot_fermi_velocity_vs_temperature(table, path: str | Path = "fermi_velocity_vs_T.png", *,
                                       reference: float | None = None, label: str = "MC") -> Path:
    """⟨v_F⟩(T) with standard-error bars (paper Fig. 4f).

    ``table``: rows (T in K, mean m/s, stderr m/s), as an (n, 3) array or a mapping
    T → :class:`~aiida_mlepi.core.statistics.ThermalAverage`. ``reference``: v_F of the static
    (T = 0) structure, m/s, drawn as a horizontal line.
    """
    if isinstance(table, dict):
        rows = np.array([[t, a.mean, a.stderr] for t, a in sorted(table.items())], dtype=float)
    else:
        rows = np.asarray(table, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != 3 or len(rows) == 0:
        raise PlotInputError("table must have rows (temperature K, mean m/s, stderr m/s)")
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.errorbar(rows[:, 0], rows[:, 1] / VELOCITY_SCALE, yerr=np.nan_to_num(rows[:, 2]) / VELOCITY_SCALE,
                fmt="o-", capsize=3, label=f"{label} ({STDERR_CAPTION})" if label else STDERR_CAPTION)
    if reference is not None:
        ax.axhline(reference / VELOCITY_SCALE, color="k", ls="--", lw=0.8, label="static")
    ax.set_xlabel("T (K)")
    ax.set_ylabel(VELOCITY_LABEL)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def _tick_label(value: float) -> str:
    """Plain decimal label (0.0005, 2, 16), no exponent notation."""
    return np.format_float_positional(value, precision=3, unique=True, fractional=False, trim="-")


def _log_ticks(low: float, high: float) -> list[float]:
    """Ticks of the 1-2-5 series that bracket [low, high] (> 0): the largest ≤ low up to the smallest ≥ high."""
    series = [m * 10.0 ** d for d in range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1)
              for m in (1, 2, 5)]
    first = max(t for t in series if t <= low * (1 + 1e-9))
    last = min(t for t in series if t >= high * (1 - 1e-9))
    if last == first:  # a single value on a tick: add the next one, so the axis has a scale
        last = series[series.index(first) + 1]
    return [t for t in series if first <= t <= last]


def _set_log_axis(axis, ticks, low: float, high: float, margin: float = 1.1) -> None:
    """Explicit ticks with plain labels and limits that include [low, high] with a margin (factor)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _: _tick_label(value)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
    lower, upper = min(low, min(ticks)) / margin, max(high, max(ticks)) * margin
    (axis.axes.set_xlim if axis is axis.axes.xaxis else axis.axes.set_ylim)(lower, upper)


def plot_convergence(values, path: str | Path = "fermi_velocity_convergence.png", *,
                     pairs: bool = False, label: str = "", reference: float | None = None) -> Path:
    """Running mean ± 1 stderr vs number of configurations, and stderr vs n on log axes with the 1/√n guide
    (paper Fig. 4e).

    ``values``: one series of per-sample values (m/s), or a mapping label → series (e.g. one per
    temperature, drawn in different colours). ``reference``: static-lattice value (m/s).
    The log panel has ticks at the sample counts 2, 4, 8, … and the last count.
    """
    series = dict(values) if isinstance(values, dict) else {label: values}
    if not series:
        raise PlotInputError("nothing to plot")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    scale = 2 if pairs else 1  # plot against configurations, not pairs
    last_err = last_n = None
    counts, errors = [], []
    for index, (name, data) in enumerate(series.items()):
        n, mean, err = running_average(data, pairs=pairs)
        n = scale * np.asarray(n)
        if len(n) < 2:
            plt.close(fig)
            raise PlotInputError("convergence needs at least two independent samples")
        colour = f"C{index % 10}"
        ax1.plot(n, mean / VELOCITY_SCALE, color=colour, label=str(name) or None)
        ax1.fill_between(n[1:], (mean - err)[1:] / VELOCITY_SCALE, (mean + err)[1:] / VELOCITY_SCALE,
                         color=colour, alpha=0.25)
        positive = err[1:] > 0
        ax2.loglog(n[1:][positive], err[1:][positive] / VELOCITY_SCALE, "o", ms=3, color=colour)
        counts.extend(n[1:])
        errors.extend(err[1:][positive] / VELOCITY_SCALE)
        if err[-1] > 0:
            last_err, last_n = err[-1], n
    if reference is not None:
        ax1.axhline(reference / VELOCITY_SCALE, color="k", ls="--", lw=0.8, label="static")
    if last_err is not None:
        guide = last_err * np.sqrt(last_n[-1] / last_n[1:]) / VELOCITY_SCALE
        ax2.loglog(last_n[1:], guide, "k--", lw=0.8, label=r"$\propto 1/\sqrt{n}$")
        errors.extend(guide)
        ax2.legend(frameon=False)
    xlabel = "configurations" + (" (antithetic ± pairs)" if pairs else "")
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel(r"running $\langle v_\mathrm{F}\rangle$ ($10^6$ m/s)")
    ax1.set_title(f"band: {STDERR_CAPTION}", fontsize=8)
    if any(str(name) for name in series) or reference is not None:
        ax1.legend(frameon=False, fontsize=7, ncol=2, loc="best")
    n_max = int(max(counts))
    n_ticks = [2 ** k for k in range(1, n_max.bit_length() + 1) if min(counts) <= 2 ** k <= n_max]
    if n_max not in n_ticks:
        n_ticks.append(n_max)
    _set_log_axis(ax2.xaxis, n_ticks, min(counts), n_max)
    if errors:
        _set_log_axis(ax2.yaxis, _log_ticks(min(errors), max(errors)), min(errors), max(errors))
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel(r"standard error ($10^6$ m/s)")
    return _save(fig, path)
