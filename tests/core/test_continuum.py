"""Bistritzer–MacDonald continuum model (:mod:`aiida_mlepi.core.continuum`): analytic limits and the magic angle."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.continuum import (FIRST_MAGIC_ALPHA, ContinuumModel, ContinuumModelError,
                                        magic_angle_deg)


def _dirac_velocity_ratio(model: ContinuumModel, dk: float = 1e-5) -> float:
    """v*/v_F at K_m from the splitting of the two flat bands at K_m + δk."""
    e = model.flat_bands(np.array([dk, 0.0]))
    return (e[1] - e[0]) / (2 * dk) / model.hbar_vf


def test_decoupled_layers_are_dirac_cones():
    """w = 0: the bands nearest zero are ±ħv_F|k| from layer 1 near K_m = 0 and from layer 2 near K'_m = q₁."""
    model = ContinuumModel(1.08, w0=0.0, w1=0.0, shells=3)
    k = np.array([0.0021, -0.0013])
    assert np.allclose(model.flat_bands(k), np.array([-1, 1]) * model.hbar_vf * np.linalg.norm(k), atol=1e-12)
    q1 = model.q()[0]
    assert np.allclose(model.flat_bands(q1 + k), np.array([-1, 1]) * model.hbar_vf * np.linalg.norm(k), atol=1e-12)
    # Γ_m is k_θ from both Dirac points
    assert np.allclose(model.flat_bands(model.points()["Γ_m"]), np.array([-1, 1]) * model.hbar_vf * model.k_theta, atol=1e-12)


def test_weak_coupling_velocity_matches_bistritzer_macdonald():
    """Small α: v*/v_F = (1 − 3α²)/(1 + 6α²) (BM 2011, Eq. 4), here α = 0.127 at 5°."""
    model = ContinuumModel(5.0, shells=3)
    alpha = model.alpha
    assert 0.12 < alpha < 0.13
    assert _dirac_velocity_ratio(model) == pytest.approx((1 - 3 * alpha**2) / (1 + 6 * alpha**2), rel=0.01)


def test_first_magic_angle_with_bm_parameters():
    """BM's parameters: the Dirac velocity vanishes near 1.05° and the flat bands are narrowest there."""
    assert abs(_dirac_velocity_ratio(ContinuumModel(1.05, shells=3))) < 0.01
    assert _dirac_velocity_ratio(ContinuumModel(1.5, shells=3)) > 0.1
    w_magic = ContinuumModel(1.05, shells=3).flat_band_width()
    assert w_magic < 0.02 < ContinuumModel(1.5, shells=3).flat_band_width()  # eV
    # the magic angle formula inverts α(θ)
    theta = magic_angle_deg(ContinuumModel(1.0).hbar_vf, 0.110)
    assert ContinuumModel(theta).alpha == pytest.approx(FIRST_MAGIC_ALPHA, rel=1e-10)


def test_bad_parameters():
    with pytest.raises(ContinuumModelError):
        ContinuumModel(0.0)
    with pytest.raises(ContinuumModelError):
        ContinuumModel(1.08, hbar_vf=-1.0)
