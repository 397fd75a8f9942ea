"""Thermal averages, standard errors, convergence and the ⟨v_F⟩ plots."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.plotting import (PlotInputError, plot_convergence,
                                       plot_fermi_velocity_vs_temperature)
from aiida_mlepi.core.statistics import (StatisticsInputError, ThermalAverage, running_average,
                                         thermal_average)


def test_thermal_average_exact_small_case():
    avg = thermal_average([1.0, 2.0, 3.0, 6.0])
    assert avg.mean == 3.0 and avg.n == 4
    assert np.isclose(avg.std, np.sqrt(14.0 / 3.0))  # Σ(x−3)² = 4+1+0+9 = 14, ddof = 1
    assert np.isclose(avg.stderr, np.sqrt(14.0 / 3.0) / 2.0)
    one = thermal_average([5.0])
    assert one.mean == 5.0 and one.n == 1 and np.isnan(one.stderr)


def test_stderr_of_iid_normal_samples_is_sigma_over_sqrt_n():
    rng = np.random.default_rng(0)
    sigma, n, trials = 2.0, 400, 300
    samples = rng.normal(10.0, sigma, size=(trials, n))
    errs = np.array([thermal_average(s).stderr for s in samples])
    means = np.array([thermal_average(s).mean for s in samples])
    # the estimated stderr ≈ σ/√n (to ~1 % averaged over trials) …
    assert abs(errs.mean() / (sigma / np.sqrt(n)) - 1) < 0.01
    # … and it is the actual spread of the means over independent trials (χ² tolerance ~ 4/√(2·300))
    assert abs(means.std(ddof=1) / (sigma / np.sqrt(n)) - 1) < 0.12


def test_running_average_is_cumulative_mean_and_ends_at_full_average():
    rng = np.random.default_rng(1)
    x = 3e5 + 1e4 * rng.standard_normal(50)
    n, mean, err = running_average(x)
    np.testing.assert_array_equal(n, np.arange(1, 51))
    np.testing.assert_allclose(mean, np.cumsum(x) / n, rtol=1e-13)
    for m in (2, 7, 50):
        np.testing.assert_allclose(err[m - 1], np.std(x[:m], ddof=1) / np.sqrt(m), rtol=1e-10)
    assert np.isnan(err[0])
    full = thermal_average(x)
    assert np.isclose(mean[-1], full.mean) and np.isclose(err[-1], full.stderr)


def test_antithetic_pairs_count_once():
    rng = np.random.default_rng(2)
    base = rng.normal(0.0, 1.0, 100)
    # perfectly antithetic linear response: O(+u) = c + a u, O(−u) = c − a u → zero variance
    vals = np.column_stack([5.0 + 0.3 * base, 5.0 - 0.3 * base]).ravel()
    avg = thermal_average(vals, pairs=True)
    assert avg.n == 100 and np.isclose(avg.mean, 5.0) and avg.stderr < 1e-14
    # with a quadratic part only the even response survives: pair means = c + b u²
    vals = np.column_stack([1.0 + base + 0.5 * base**2, 1.0 - base + 0.5 * base**2]).ravel()
    paired = thermal_average(vals, pairs=True)
    np.testing.assert_allclose(paired.std, np.std(0.5 * base**2, ddof=1))
    n, mean, err = running_average(vals, pairs=True)
    assert len(n) == 100 and np.isclose(mean[-1], paired.mean) and np.isclose(err[-1], paired.stderr)
    with pytest.raises(StatisticsInputError):
        thermal_average([1.0, 2.0, 3.0], pairs=True)


def test_bad_samples_rejected():
    with pytest.raises(ValueError):
        thermal_average([])
    with pytest.raises(ValueError):
        running_average([1.0, np.nan])


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(3)
    table = {t: thermal_average(3e5 - 20.0 * t + 2e3 * rng.standard_normal(20)) for t in (100, 300, 500)}
    assert isinstance(table[100], ThermalAverage)
    p1 = plot_fermi_velocity_vs_temperature(table, tmp_path / "vf_T.png", reference=3.05e5)
    rows = np.array([[t, a.mean, a.stderr] for t, a in table.items()])
    p2 = plot_fermi_velocity_vs_temperature(rows, tmp_path / "vf_T_rows.png")
    p3 = plot_convergence(3e5 + 1e3 * rng.standard_normal(64), tmp_path / "conv.png", pairs=True,
                          reference=3e5)
    for p in (p1, p2, p3):
        assert p.exists() and p.stat().st_size > 5000
    with pytest.raises(PlotInputError):
        plot_fermi_velocity_vs_temperature(np.zeros((3, 2)), tmp_path / "bad.png")
    with pytest.raises(PlotInputError):
        plot_convergence([1.0], tmp_path / "bad2.png")


def test_log_ticks_bracket_the_data_with_readable_labels():
    from aiida_mlepi.core.plotting import _log_ticks, _tick_label

    # stderr in 10^6 m/s from 4.5e-5 to 3.7e-3: 1-2-5 ticks from just below to just above
    assert _log_ticks(4.5e-5, 3.7e-3) == pytest.approx([2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3])
    # one point (2 pairs) still gets a scale of two ticks around it; a value on a tick gets the next one
    assert _log_ticks(9.24e-5, 9.24e-5) == pytest.approx([5e-5, 1e-4])
    assert _log_ticks(2e-3, 2e-3) == pytest.approx([2e-3, 5e-3])
    assert [_tick_label(t) for t in (5e-5, 0.002, 16.0, 100.0)] == ["0.00005", "0.002", "16", "100"]
