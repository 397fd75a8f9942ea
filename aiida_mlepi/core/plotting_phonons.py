"""Phonon band-structure plot (png) of :class:`~aiida_mlepi.core.phonons.PhononBands`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .phonons import PhononBands
from .units import THZ_TO_CM1

_UNITS = {"cm-1": (THZ_TO_CM1, "Frequency (cm$^{-1}$)"), "THz": (1.0, "Frequency (THz)")}


class PlotError(ValueError):
    """Bad plot request (unknown unit, mismatched bands)."""


def plot_phonon_bands(bands: PhononBands, path: str | Path, *, unit: str = "cm-1", title: str | None = None,
                      reference: PhononBands | None = None, reference_label: str = "reference",
                      label: str = "phonons", figsize: tuple[float, float] = (5.0, 4.0), dpi: int = 120) -> Path:
    """Draw the bands (and optionally a ``reference`` on the same path, dashed) into a png at ``path``.

    ``unit`` is ``"cm-1"`` or ``"THz"``. Imaginary branches show as negative frequencies.
    Returns the path written.
    """
    if unit not in _UNITS:
        raise PlotError(f"unknown unit {unit!r}: use one of {sorted(_UNITS)}")
    if reference is not None and reference.distances.shape != bands.distances.shape:
        raise PlotError("the reference bands must be computed on the same q-path (same number of q-points)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale, ylabel = _UNITS[unit]
    fig, ax = plt.subplots(figsize=figsize)
    try:
        for data, style, name in ((bands, "-", label), (reference, "--", reference_label)):
            if data is None:
                continue
            colour = "C0" if style == "-" else "C3"
            start = 0
            for seg, end in enumerate(data.segment_ends):
                sl = slice(start, end + 1)
                ax.plot(data.distances[sl], data.frequencies_thz[sl] * scale, style, color=colour, lw=1.0,
                        label=name if seg == 0 else None)
                start = end + 1
        handles, labels = ax.get_legend_handles_labels()
        if reference is not None:
            # one legend entry per data set
            ax.legend([handles[0], handles[labels.index(reference_label)]], [label, reference_label], loc="best")
        for x in bands.tick_distances:
            ax.axvline(x, color="0.6", lw=0.6)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xticks(bands.tick_distances)
        ax.set_xticklabels(bands.tick_labels)
        ax.set_xlim(bands.distances[0], bands.distances[-1])
        ax.set_ylabel(ylabel)
        fmin = min(0.0, float(np.min(bands.frequencies_thz))) * scale
        ax.set_ylim(fmin * 1.05, float(np.max(bands.frequencies_thz)) * scale * 1.05)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi)
    finally:
        plt.close(fig)
    return out
