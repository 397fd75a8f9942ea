"""Estimators from unfolded spectral functions: known velocities survive a disorder gap; the chord does not."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.bands import repeat_hamiltonian
from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.observables import fermi_velocity
from aiida_mlepi.core.spectral_estimators import (EstimatorInputError, SpectralSettings, configuration_spectrum,
                                                  estimate, fit_dispersion, model_half_splittings,
                                                  primitive_band_energies, static_band_energies)
from aiida_mlepi.core.unfolding import PrimitiveCell
from aiida_mlepi.core.units import EV_ANGSTROM_TO_M_PER_S
from tests.core.test_bands import GAMMA1, T, bilayer_pi, graphene_pi
from tests.core.test_observables import V_DIRAC

N = 6  #: supercell of the synthetic tests (K folds onto Γ: the worst case for a disorder gap)
MASS_EV = 0.03  #: typical random sublattice mass: m = ±MASS·U(0.8, 1.2), gap 2|m| at the folded point
NOISE_EV = 0.01  #: rms of an extra random on-site energy per atom


def with_onsite(h: HamiltonianR, onsite_ev: np.ndarray) -> HamiltonianR:
    """``h`` plus diagonal on-site energies (one orbital per atom)."""
    extra = np.column_stack([np.zeros((len(h), 3), int), np.arange(len(h)), np.arange(len(h))])
    return HamiltonianR(cell=h.cell, positions=h.positions, numbers=h.numbers, basis=h.basis,
                        edges=np.vstack([h.edges, extra]), h_values=np.concatenate([h.h_values, onsite_ev]),
                        pbc=h.pbc)


def disordered_configurations(h_prim: HamiltonianR, n_cfg: int, seed: int) -> tuple[list[HamiltonianR], np.ndarray]:
    """n×n supercells with a random gap-opening sublattice mass (random sign, |m| ~ MASS) and on-site noise."""
    rng = np.random.default_rng(seed)
    sc = repeat_hamiltonian(h_prim, N, N)
    sublattice = np.tile(np.array([1.0, -1.0] * (len(h_prim) // 2)), N * N)
    masses = rng.choice([-1.0, 1.0], n_cfg) * rng.uniform(0.8, 1.2, n_cfg) * MASS_EV
    return [with_onsite(sc, m * sublattice + rng.normal(0.0, NOISE_EV, len(sc))) for m in masses], masses


def primitive_of(h: HamiltonianR) -> PrimitiveCell:
    return PrimitiveCell(h.cell, h.positions, h.numbers)


def test_model_half_splittings_are_the_analytic_bands():
    q = np.array([0.05, 0.1])
    np.testing.assert_allclose(model_half_splittings("monolayer", [5.0], q)[:, 0], 5.0 * q)
    d = model_half_splittings("ab-bilayer", [5.0, 0.4], q)
    np.testing.assert_allclose(d[:, 1] - d[:, 0], 0.4)
    np.testing.assert_allclose(d[:, 0] * d[:, 1], (5.0 * q) ** 2)  # (√(a²+x²) − a)(√(a²+x²) + a) = x²


def test_monolayer_velocity_survives_a_disorder_gap_but_the_chord_does_not():
    h_prim = graphene_pi()
    primitive = primitive_of(h_prim)
    settings = SpectralSettings(model="monolayer", q_min_inv_angstrom=0.04, q_max_inv_angstrom=0.12)
    clean = repeat_hamiltonian(h_prim, N, N)
    n_el = len(clean)  # one π electron per C
    static = configuration_spectrum(clean, primitive, n_el, settings)
    reference = estimate(static, [static], settings)
    # the clean model through the same estimator: the known Dirac velocity 3|t|a_cc/2 (within 0.3 %:
    # the isotropic cubic correction of the nearest-neighbour bands over the window)
    assert reference.values["velocity_ev_angstrom"] == pytest.approx(V_DIRAC, rel=3e-3)
    assert static.folded_gap_ev < 1e-10

    configs, masses = disordered_configurations(h_prim, 16, seed=1)
    spectra = [configuration_spectrum(h, primitive, n_el, settings, static.fermi_level_ev) for h in configs]
    result = estimate(static, spectra, settings)
    v, err = result.values["velocity_ev_angstrom"], result.stderr["velocity_ev_angstrom"]
    known = reference.values["velocity_ev_angstrom"]
    assert err is not None and 0 < err < 0.01 * known
    # the known velocity within its error bar, allowing for what a mass really does to the bands at q:
    # √(m² + (ħvq)²) − ħvq ≈ m²/(2ħvq), i.e. a relative ⟨m²⟩/(2(ħvq)²) averaged over the window
    # (0.34 % here; measured 5.7479 ± 0.0006 vs 5.7375 eV·Å, +0.18 %)
    mass_bias = np.mean(masses**2) * np.mean(1.0 / (known * settings.q_values) ** 2) / 2.0
    assert abs(v - known) < 3 * err + mass_bias * known
    # every configuration has a disorder gap at the folded point (2|m| ~ 50 meV)
    assert result.folded_gap_ev["mean"] > 0.02 and result.folded_gap_ev["min"] > 1e-4
    assert result.n_independent == 16 and result.k_window_inv_angstrom == (0.04, 0.12)

    # the legacy chord at small k reads the gap: √(Δ² + (2ħvk)²)/(2ħk) is biased far beyond its error bar
    # (measured 6.46 ± 0.04 eV·Å, +12.5 %)
    chords = np.array([fermi_velocity(h, h_prim.cell, n_el, k_radius=0.01, method="chord").value_ev_angstrom
                       for h in configs])
    chord_mean, chord_err = chords.mean(), chords.std(ddof=1) / np.sqrt(len(chords))
    assert chord_mean - known > 10 * chord_err and chord_mean / known - 1 > 0.03


def test_ab_bilayer_gives_v0_and_gamma1_separately():
    h_prim = bilayer_pi()
    primitive = primitive_of(h_prim)
    settings = SpectralSettings(model="ab-bilayer", q_min_inv_angstrom=0.04, q_max_inv_angstrom=0.12)
    clean = repeat_hamiltonian(h_prim, N, N)
    static = configuration_spectrum(clean, primitive, len(clean), settings)
    reference = estimate(static, [static], settings)
    # the 4-band π model is the minimal model up to the cubic corrections of |f(k)|
    assert reference.values["velocity_ev_angstrom"] == pytest.approx(V_DIRAC, rel=3e-3)
    assert reference.values["gamma1_ev"] == pytest.approx(GAMMA1, rel=2e-3)
    assert reference.residual_rms_ev < 1e-3
    # a model with a 10 % larger γ1 and 5 % larger |t| moves each parameter by its own amount
    h_changed = bilayer_pi(t=1.05 * T, gamma1=1.1 * GAMMA1)
    changed_static = configuration_spectrum(repeat_hamiltonian(h_changed, N, N), primitive, len(clean), settings)
    changed = estimate(static, [changed_static], settings)
    assert changed.values["velocity_ev_angstrom"] / reference.values["velocity_ev_angstrom"] == pytest.approx(
        1.05, rel=2e-3)
    assert changed.values["gamma1_ev"] / reference.values["gamma1_ev"] == pytest.approx(1.1, rel=5e-3)
    assert changed.values["velocity_m_per_s"] == pytest.approx(
        changed.values["velocity_ev_angstrom"] * EV_ANGSTROM_TO_M_PER_S)


def test_band_edges_of_a_gapped_model():
    """A static sublattice mass m: gap 2m at K; a second (larger) mass shifts the edges by the difference."""
    h_prim = graphene_pi()
    primitive = primitive_of(h_prim)
    settings = SpectralSettings(model="band-edges")
    gapped = with_onsite(repeat_hamiltonian(h_prim, 3, 3), np.tile([0.2, -0.2], 9))
    static = configuration_spectrum(gapped, primitive, len(gapped), settings)
    result = estimate(static, [static], settings)
    assert result.values["gap_ev"] == pytest.approx(0.4, abs=2e-4)  # 2m, to the peak's grid refinement
    assert result.values["vbm_ev"] == pytest.approx(-0.2, abs=2e-4)
    wider = with_onsite(repeat_hamiltonian(h_prim, 3, 3), np.tile([0.23, -0.23], 9))
    shifted = estimate(static, [configuration_spectrum(wider, primitive, len(gapped), settings, 0.0)], settings)
    assert shifted.values["gap_ev"] - result.values["gap_ev"] == pytest.approx(0.06, abs=4e-4)


def test_static_band_edges_survive_a_split_k_k_prime_cluster():
    """K and K′ fold onto Γ̄ of a 3×3 supercell. A supercell-periodic on-site noise of 1e-4 eV (what a DFT
    engine's real-space grid leaves: GPAW AA′ hBN) splits each K/K′ pair and mixes it, so every state carries
    part of K's weight (not > ½); the static band edges are found by the weight of each near-degenerate cluster."""
    h_prim = graphene_pi()
    primitive = primitive_of(h_prim)
    settings = SpectralSettings(model="band-edges")
    noise = np.random.default_rng(2).normal(0.0, 1e-4, 18)
    static = configuration_spectrum(with_onsite(repeat_hamiltonian(h_prim, 3, 3), np.tile([0.2, -0.2], 9) + noise),
                                    primitive, 18, settings)
    weights = static.weights[0, 0][np.isfinite(static.energies[0, 0])]
    assert ((weights > 0.1) & (weights < 0.9)).sum() >= 2  # mixed: the rule "weight > ½" misses a band edge
    np.testing.assert_allclose(static_band_energies(static, settings)[0, 0], [-0.2, 0.2], atol=3e-4)
    np.testing.assert_allclose(primitive_band_energies(np.array([-1.0, -1.0 + 2e-4, 0.5, 0.5, np.nan]),
                                                       np.array([0.5, 0.5, 1.0, 0.0, 0.0])), [-0.9999, 0.5])


def test_bad_settings_and_data():
    with pytest.raises(EstimatorInputError, match="unknown model"):
        SpectralSettings(model="trilayer")
    with pytest.raises(EstimatorInputError, match="q_min < q_max"):
        SpectralSettings(q_min_inv_angstrom=0.1, q_max_inv_angstrom=0.05)
    with pytest.raises(EstimatorInputError, match="band pairs"):
        fit_dispersion(np.full((2, 3, 2), np.nan), np.array([0.04, 0.08, 0.12]), "monolayer")
