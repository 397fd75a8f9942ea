"""Tests of :mod:`aiida_mlepi.core.special_displacements` (ZG) on the reference-engine AB bilayer, 6×6 supercell.

The tolerances come from measurements on these modes (144 atoms, 432 modes; alternating start, local search
converged in 17 sweeps at 0 K and 8 at 300 K). A single configuration reproduces per-atom thermal
quantities only roughly (|u_a|² is one number per atom, u_a u_aᵀ has rank 1); averages over the 36 atoms of
one primitive site are close. Measured relative errors of the optimised configuration, 0 K / 300 K:

* per-atom MSD |u_a|² vs ⟨|u_a|²⟩: mean |err| 0.167 / 0.099, max 0.62 / 0.30
  (the plain alternating signs: mean 0.60 / 0.44, max 2.97 / 1.95);
* per-site mean MSD (4 sites): max |err| 0.051 / 0.010;
* per-site mean of each Cartesian component ⟨u_α²⟩: max |err| 0.27 / 0.13;
* all-atom mean of each component: max |err| 0.057 / 0.016;
* E(S) in Å⁴: alternating 1.122e-2 / 1.149e-1, optimised 5.88e-3 / 7.80e-2, 20 random sign sets ≥ 1.064e-2 / 1.081e-1.
"""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.phonons import SupercellModes
from aiida_mlepi.core.sampling import (
    SamplingError,
    analytic_displacement_tensors,
    analytic_mean_square_displacement,
    mode_patterns,
    mode_variances,
)
from aiida_mlepi.core.special_displacements import (
    SpecialDisplacement,
    alternating_signs,
    displacement_tensor_error,
    optimise_special_displacement,
    special_displacements,
)

#: tolerances per temperature (K), measured with margin. The ZG configuration depends on the basis of each
#: degenerate phonon subspace; that basis is now fixed by the dynamical matrix (core.phonons.canonical_eigenvectors)
#: instead of LAPACK (whose choice changed with numpy 2.4.6 / scipy 1.17.1 and broke the old bounds). Measured with
#: the canonical basis, 0 K / 300 K: MSD error mean 0.198 / 0.096, max 1.048 / 0.382, per-site MSD 0.052 / 0.061,
#: per-site component 0.456 / 0.257, supercell component mean 0.098 / 0.002 (LAPACK's basis of the older stack gave
#: max 0.62 / 0.32, per-site MSD < 0.02 at 300 K: the worst atom is basis-dependent, the averages much less so)
TOLERANCES = {
    0.0: dict(msd_mean=0.22, msd_max=1.2, site_msd=0.08, site_component=0.55, component_mean=0.12,
              error_ratio=0.6),
    300.0: dict(msd_mean=0.13, msd_max=0.45, site_msd=0.08, site_component=0.3, component_mean=0.03,
                error_ratio=0.8),
}


@pytest.fixture(scope="module")
def zg(engine_bilayer_modes) -> dict[float, SpecialDisplacement]:
    return {t: optimise_special_displacement(engine_bilayer_modes, t) for t in TOLERANCES}


def _primitive_sites(modes: SupercellModes, n: int = 6) -> np.ndarray:
    """(N,) index of the primitive-cell atom each supercell atom is a lattice translate of."""
    primitive = np.array(modes.supercell.cell[:])
    primitive[:2] /= n
    frac = modes.supercell.positions @ np.linalg.inv(primitive)
    key = np.round(np.round(frac, 4) % 1.0, 4)
    _, site = np.unique(key, axis=0, return_inverse=True)
    return site.ravel()


def _random_signs(modes: SupercellModes, rng: np.random.Generator) -> np.ndarray:
    return np.where(modes.acoustic_mask, 0, rng.choice([-1, 1], size=modes.acoustic_mask.size))


@pytest.mark.parametrize("temperature", sorted(TOLERANCES))
def test_msd_per_atom_and_component_matches_analytic(engine_bilayer_modes, zg, temperature):
    modes, tol = engine_bilayer_modes, TOLERANCES[temperature]
    result = zg[temperature]
    assert result.converged
    u = result.displacements
    exact_msd = analytic_mean_square_displacement(modes, temperature)
    exact_comp = np.diagonal(analytic_displacement_tensors(modes, temperature), axis1=1, axis2=2)
    msd_err = (u**2).sum(axis=1) / exact_msd - 1.0
    assert np.abs(msd_err).mean() < tol["msd_mean"]
    assert np.abs(msd_err).max() < tol["msd_max"]
    np.testing.assert_allclose(result.msd_relative_error, msd_err, atol=1e-12)
    # equal masses: Σ_a M_a|u_a|² = Σ_μ σ_μ² for any signs, so the supercell-mean MSD is exact
    assert (u**2).sum() == pytest.approx(exact_msd.sum(), rel=1e-10)
    sites = _primitive_sites(modes)
    assert np.bincount(sites).tolist() == [36, 36, 36, 36]
    for site in range(4):
        atoms = sites == site
        site_msd = (u[atoms] ** 2).sum(axis=1).mean() / exact_msd[atoms].mean() - 1.0
        site_comp = (u[atoms] ** 2).mean(axis=0) / exact_comp[atoms].mean(axis=0) - 1.0
        assert abs(site_msd) < tol["site_msd"]
        assert np.abs(site_comp).max() < tol["site_component"]
    assert np.abs((u**2).mean(axis=0) / exact_comp.mean(axis=0) - 1.0).max() < tol["component_mean"]


@pytest.mark.parametrize("temperature", sorted(TOLERANCES))
def test_optimised_signs_beat_alternating_and_random(engine_bilayer_modes, zg, temperature):
    modes, result = engine_bilayer_modes, zg[temperature]
    alternating = displacement_tensor_error(modes, temperature, alternating_signs(modes))
    assert result.error_initial == pytest.approx(alternating, rel=1e-12)
    assert result.error == pytest.approx(displacement_tensor_error(modes, temperature, result.signs), rel=1e-12)
    rng = np.random.default_rng(11)
    random = min(displacement_tensor_error(modes, temperature, _random_signs(modes, rng)) for _ in range(10))
    ratio = TOLERANCES[temperature]["error_ratio"]
    assert result.error < ratio * alternating
    assert result.error < ratio * random
    # a local minimum: no single flip lowers E (checked by brute force, not by the incremental ΔE)
    steps = np.sqrt(mode_variances(modes, temperature))[:, None, None] * mode_patterns(modes)
    target = analytic_displacement_tensors(modes, temperature)
    flipped = result.displacements[None] - 2.0 * result.signs[:, None, None] * steps  # (3N, N, 3)
    errors = ((np.einsum("mia,mib->miab", flipped, flipped) - target) ** 2).sum(axis=(1, 2, 3))
    assert errors[~modes.acoustic_mask].min() >= result.error * (1 - 1e-9)


def test_alternating_signs_follow_frequency_order(engine_bilayer_modes):
    modes = engine_bilayer_modes
    signs = alternating_signs(modes)
    assert np.all(signs[modes.acoustic_mask] == 0)
    ordered = signs[np.argsort(modes.frequencies_thz, kind="stable")]
    ordered = ordered[ordered != 0]
    assert ordered.size == 3 * modes.n_atoms - 3
    np.testing.assert_array_equal(ordered, np.where(np.arange(ordered.size) % 2 == 0, 1, -1))


def test_antipode_is_exactly_minus_u(engine_bilayer_modes, zg):
    pair = special_displacements(engine_bilayer_modes, 300.0)
    assert pair.shape == (2, engine_bilayer_modes.n_atoms, 3)
    np.testing.assert_array_equal(pair[0], zg[300.0].displacements)
    np.testing.assert_array_equal(pair[1], -pair[0])
    single = special_displacements(engine_bilayer_modes, 300.0, antipode=False)
    np.testing.assert_array_equal(single, pair[:1])


def test_temperatures_differ_only_through_sigma(engine_bilayer_modes, zg):
    """Each mode carries exactly ±σ_μ(T); with the same signs u(300 K) scales mode by mode by √coth."""
    modes = engine_bilayer_modes
    weights = np.sqrt(modes.masses_amu)[None, :, None] * modes.eigenvectors  # ε_μ √M: amplitude projector
    sigma = {t: np.sqrt(mode_variances(modes, t)) for t in TOLERANCES}
    for t, result in zg.items():
        amplitudes = np.einsum("mia,ia->m", weights, result.displacements)
        np.testing.assert_allclose(amplitudes, result.signs * sigma[t], atol=1e-12 * sigma[t].max())
    same_signs = optimise_special_displacement(modes, 300.0, initial_signs=zg[0.0].signs, max_sweeps=0)
    np.testing.assert_array_equal(same_signs.signs, zg[0.0].signs)
    a0 = np.einsum("mia,ia->m", weights, zg[0.0].displacements)
    a300 = np.einsum("mia,ia->m", weights, same_signs.displacements)
    sampled = ~modes.acoustic_mask
    np.testing.assert_allclose(a300[sampled] / a0[sampled], sigma[300.0][sampled] / sigma[0.0][sampled], rtol=1e-10)
    assert np.all(sigma[300.0][sampled] / sigma[0.0][sampled] > 1.0)
    # centre of mass fixed: the Γ translations carry no amplitude
    com = np.einsum("i,ia->a", modes.masses_amu, same_signs.displacements) / modes.masses_amu.sum()
    assert np.abs(com).max() < 1e-12  # Å; measured ~1e-13 (rms |u| ~ 0.1 Å)


def test_bad_input_raises(engine_bilayer_modes):
    modes = engine_bilayer_modes
    with pytest.raises(SamplingError, match="temperature"):
        special_displacements(modes, -5.0)
    with pytest.raises(SamplingError, match="max_sweeps"):
        optimise_special_displacement(modes, 300.0, max_sweeps=-1)
    with pytest.raises(SamplingError, match="shape"):
        displacement_tensor_error(modes, 300.0, np.ones(5))
    with pytest.raises(SamplingError, match="±1"):
        displacement_tensor_error(modes, 300.0, np.zeros(modes.acoustic_mask.size))
