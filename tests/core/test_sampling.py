"""Tests of :mod:`aiida_mlepi.core.sampling` (paper Eq. 1–2) on the analytic graphene spring model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.constants as sc

from aiida_mlepi.core.layers import LAYER_ARRAY, get_layer_ids
from aiida_mlepi.core.phonons import SupercellModes, compute_supercell_modes
from aiida_mlepi.core.sampling import (
    NORMAL_VARIANCE_AMU_A2_THZ,
    SamplingError,
    analytic_mean_square_displacement,
    mode_variances,
    sample_displacements,
    sampled_structures,
)
from aiida_mlepi.core.structures import graphene_monolayer
from aiida_mlepi.core.units import KB_EV_PER_K
from tests.core.test_phonons import GrapheneSprings

N_SAMPLES = 4000


@pytest.fixture(scope="module")
def modes() -> SupercellModes:
    graphene = graphene_monolayer()
    return compute_supercell_modes(graphene, (4, 4, 1), GrapheneSprings(graphene))


def test_zero_point_constant_against_scipy():
    """ħ/(2ω) at f = 1 THz in amu·Å², from scipy's CODATA constants (≈ 0.50538 amu·Å²)."""
    expected = sc.hbar / (2 * 2 * np.pi * 1e12) / (sc.atomic_mass * 1e-20)
    assert NORMAL_VARIANCE_AMU_A2_THZ == pytest.approx(expected, rel=1e-8)
    assert NORMAL_VARIANCE_AMU_A2_THZ == pytest.approx(0.50538, rel=1e-4)


def test_variances_zero_point_and_classical_limits(modes):
    freqs = modes.frequencies_thz
    v0 = mode_variances(modes, 0.0)
    assert np.all(v0[modes.acoustic_mask] == 0.0)
    np.testing.assert_allclose(v0[~modes.acoustic_mask], NORMAL_VARIANCE_AMU_A2_THZ / freqs[~modes.acoustic_mask],
                               rtol=1e-14)
    # 1e-6 K: coth = 1 to machine precision, continuous with T = 0
    np.testing.assert_allclose(mode_variances(modes, 1e-6), v0, rtol=1e-14)


def test_high_temperature_msd_equals_classical_kT_over_force_constants(modes):
    """Classical limit: ⟨u uᵀ⟩ → k_B T · Φ⁺ (pseudo-inverse without translations), computed from Φ directly."""
    t = 1.0e6  # K; ħω/2k_BT ≤ 1e-3 for every mode here, so the quantum correction is < 1e-6
    n = modes.n_atoms
    phi = modes.force_constants.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    p = np.eye(3 * n) - np.tile(np.eye(3), (n, 1)) @ np.tile(np.eye(3), (n, 1)).T / n
    # Σ_μ≠transl. ε ε^T/(M ω²) in Cartesian space equals P_M Φ⁺ P_M; for equal masses P_M = P
    cov = p @ np.linalg.pinv(phi, rcond=1e-10, hermitian=True) @ p
    expected = KB_EV_PER_K * t * np.diag(cov).reshape(n, 3).sum(axis=1)
    msd = analytic_mean_square_displacement(modes, t)
    np.testing.assert_allclose(msd, expected, rtol=1e-5)


def test_sampled_msd_matches_analytic_at_0K_and_300K(modes):
    results = {}
    for t in (0.0, 300.0):
        u = sample_displacements(modes, t, N_SAMPLES, seed=7)
        assert u.shape == (N_SAMPLES, modes.n_atoms, 3)
        sq = (u**2).sum(axis=2)  # (samples, atoms)
        msd, stderr = sq.mean(axis=0), sq.std(axis=0, ddof=1) / np.sqrt(N_SAMPLES)
        analytic = analytic_mean_square_displacement(modes, t)
        assert np.all(np.abs(msd - analytic) < 4 * stderr)
        # equal atoms by symmetry: the analytic MSD is the same on every site
        np.testing.assert_allclose(analytic, analytic.mean(), rtol=1e-8)
        results[t] = (msd.mean(), analytic.mean())
    ratio_sampled = results[300.0][0] / results[0.0][0]
    ratio_analytic = results[300.0][1] / results[0.0][1]
    assert ratio_analytic > 1.0 and ratio_sampled > 1.0
    assert ratio_sampled == pytest.approx(ratio_analytic, rel=0.03)


def test_acoustic_translations_are_not_sampled(modes):
    """No centre-of-mass motion: every sample is orthogonal to the uniform translations."""
    u = sample_displacements(modes, 300.0, 50, seed=1)
    com = np.einsum("i,sia->sa", modes.masses_amu, u) / modes.masses_amu.sum()
    assert np.abs(com).max() < 1e-14


def test_seeded_reproducibility_and_antithetic_pairs(modes):
    a = sample_displacements(modes, 120.0, 6, seed=42)
    b = sample_displacements(modes, 120.0, 6, seed=42)
    c = sample_displacements(modes, 120.0, 6, seed=43)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    pairs = sample_displacements(modes, 120.0, 7, seed=42, antithetic=True)
    assert pairs.shape[0] == 7
    np.testing.assert_array_equal(pairs[0::2][:3] + pairs[1::2], 0.0)
    np.testing.assert_array_equal(pairs[0::2], a[:4])  # the first draws are the same stream
    mean_u = pairs[:6].mean(axis=0)
    assert np.abs(mean_u).max() == 0.0


def test_sampled_structures_keep_layers_and_add_displacements(modes):
    u = sample_displacements(modes, 300.0, 3, seed=5)
    structures = sampled_structures(modes, u)
    assert len(structures) == 3
    for atoms, disp in zip(structures, u):
        np.testing.assert_allclose(atoms.positions - modes.supercell.positions, disp, atol=1e-12)
        np.testing.assert_array_equal(atoms.arrays[LAYER_ARRAY], modes.supercell.arrays[LAYER_ARRAY])
        assert tuple(atoms.pbc) == (True, True, False)
    # the equilibrium supercell is not modified
    assert np.abs(sampled_structures(modes, np.zeros_like(u[0]))[0].positions - modes.supercell.positions).max() == 0


def test_bad_input_raises(modes):
    with pytest.raises(SamplingError, match="temperature"):
        sample_displacements(modes, -1.0, 10, seed=0)
    with pytest.raises(SamplingError, match="n_samples"):
        sample_displacements(modes, 300.0, 0, seed=0)
    with pytest.raises(SamplingError, match="shape"):
        sampled_structures(modes, np.zeros((2, 5, 3)))
    graphene = graphene_monolayer()
    unstable = compute_supercell_modes(graphene, (3, 3, 1), GrapheneSprings(graphene, kz=-1.0))
    lowest = unstable.frequencies_thz.min()
    with pytest.raises(SamplingError, match=rf"17 imaginary .* lowest {lowest:.4g} THz"):
        sample_displacements(unstable, 300.0, 10, seed=0)
    with pytest.raises(SamplingError, match="17 imaginary"):
        analytic_mean_square_displacement(unstable, 0.0)


def test_rigid_layer_modes_are_found_and_excluded(engine_bilayer_modes):
    """AB bilayer: 3 acoustic + 2 shear + 1 breathing rigid-layer Γ modes; excluding the interlayer ones
    removes most of a 6×6 cell's in-plane MSD at 300 K (measured 0.0172 → 0.0033 Å² per atom)."""
    from aiida_mlepi.core.sampling import (analytic_displacement_tensors, excluding_rigid_layer_modes,
                                           rigid_layer_mode_mask)

    modes = engine_bilayer_modes
    rigid = rigid_layer_mode_mask(modes)
    assert rigid.sum() == 6 and rigid[modes.acoustic_mask].all()
    interlayer = np.sort(modes.frequencies_cm1[rigid & ~modes.acoustic_mask])
    assert interlayer[0] == pytest.approx(interlayer[1], rel=1e-6)  # the degenerate shear pair
    assert 15 < interlayer[0] < 40 and 80 < interlayer[2] < 160  # cm⁻¹: shear ~24, breathing ~116
    excluded = excluding_rigid_layer_modes(modes)
    assert excluded.acoustic_mask.sum() == 6 and modes.acoustic_mask.sum() == 3  # the input is not changed
    full = analytic_displacement_tensors(modes, 300.0)
    kept = analytic_displacement_tensors(excluded, 300.0)
    in_plane_full = np.mean(full[:, 0, 0] + full[:, 1, 1])
    in_plane_kept = np.mean(kept[:, 0, 0] + kept[:, 1, 1])
    assert 0.1 < in_plane_kept / in_plane_full < 0.3
    # out of plane only the breathing mode goes: a few per cent
    assert np.mean(kept[:, 2, 2]) / np.mean(full[:, 2, 2]) == pytest.approx(1.0, abs=0.06)
    # the samples of the reduced set have (almost) no rigid interlayer slide: each layer's mean displacement
    # is ~1e-5 Å (the rigid-layer modes are rigid to 0.99 of their norm), against ~0.1 Å with them
    ids = get_layer_ids(modes.supercell)
    u_kept = sample_displacements(excluded, 300.0, 4, seed=2)
    u_full = sample_displacements(modes, 300.0, 4, seed=2)
    slide_kept = max(np.abs(u_kept[:, ids == layer].mean(axis=1)).max() for layer in (0, 1))
    slide_full = max(np.abs(u_full[:, ids == layer].mean(axis=1)).max() for layer in (0, 1))
    assert slide_kept < 1e-4 and slide_full > 1e-2
