"""Thermal averages of Monte Carlo samples and their convergence (paper Fig. 4e–f).

A thermal average ⟨O⟩_T is estimated by the mean of O over N independent thermal configurations;
its standard error is s/√N with s the sample standard deviation (ddof = 1). For antithetic pairs
(configurations +u and −u, :mod:`aiida_mlepi.core.sampling`) the two members are correlated, so
the pair mean is one independent sample (``pairs=True``): consecutive values (0, 1), (2, 3), …
are the pairs. Units are those of the values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class StatisticsInputError(ValueError):
    """Bad sample values for a thermal average."""


@dataclass(frozen=True)
class ThermalAverage:
    """Mean, standard error of the mean, number of independent samples, sample std (ddof=1)."""

    mean: float
    stderr: float  #: std/√n; nan for n = 1
    n: int  #: number of independent samples (pairs count once with ``pairs=True``)
    std: float  #: sample standard deviation (ddof = 1); nan for n = 1


def _samples(values, pairs: bool) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise StatisticsInputError("no samples given")
    if not np.all(np.isfinite(x)):
        raise StatisticsInputError("samples contain NaN or infinite values")
    if pairs:
        if x.size % 2:
            raise StatisticsInputError(
                f"pairs=True needs an even number of values (antithetic pairs), got {x.size}")
        x = 0.5 * (x[0::2] + x[1::2])
    return x


def thermal_average(values, pairs: bool = False) -> ThermalAverage:
    """Mean and standard error of ``values`` (pair means are the samples if ``pairs``)."""
    x = _samples(values, pairs)
    n = x.size
    if n == 1:
        return ThermalAverage(float(x[0]), float("nan"), 1, float("nan"))
    std = float(np.std(x, ddof=1))
    return ThermalAverage(float(x.mean()), std / np.sqrt(n), n, std)


def running_average(values, pairs: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convergence with the number of samples: (n, mean of the first n, stderr of the first n).

    Arrays of length N (independent samples); stderr[0] is nan. Computed with cumulative sums
    (Σx, Σx² about the overall mean for round-off safety).
    """
    x = _samples(values, pairs)
    n = np.arange(1, x.size + 1)
    shift = x.mean()
    y = x - shift
    s1 = np.cumsum(y)
    s2 = np.cumsum(y * y)
    mean = shift + s1 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > 1, (s2 - s1 * s1 / n) / (n - 1), np.nan)
        stderr = np.sqrt(np.clip(var, 0.0, None)) / np.sqrt(n)
    stderr[0] = np.nan
    return n, mean, stderr
