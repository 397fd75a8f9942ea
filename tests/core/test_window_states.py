"""Eigenpairs in an energy window (:func:`states_in_window`) against full dense ``scipy.linalg.eigh``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from aiida_mlepi.core.bands import BandsInputError, ShiftInvert, eigh_subset, repeat_hamiltonian, states_in_window
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell
from tests.core.test_unfolding import graphene_pi_overlap

K = np.array([0.137, 0.052, 0.0])  #: Å⁻¹, generic


@pytest.fixture(scope="module")
def engine_bilayer():
    """Reference-engine (sp³, orthogonal) 4×4 AB bilayer, atoms displaced 0.03 Å (no symmetry): 256 orbitals."""
    atoms = in_plane_supercell(graphene_bilayer("AB"), 4)
    atoms.positions += np.random.default_rng(5).normal(0.0, 0.03, atoms.positions.shape)
    return ReferenceEngine().hamiltonian(atoms)


def _full(h, k):
    hk = h.hk(k).toarray()
    sk = None if h.s_values is None else h.sk(k).toarray()
    return hk, sk, scipy.linalg.eigh(hk, sk, eigvals_only=True)


def _check_window(h, k, e_min, e_max, solver, n_guess=2):
    hk, sk, full = _full(h, k)
    expected = full[(full >= e_min) & (full <= e_max)]
    energies, vectors = states_in_window(h, k, e_min, e_max, solver=solver, n_guess=n_guess)
    assert energies.shape == expected.shape and vectors.shape == (h.num_orbitals, len(expected))
    assert np.abs(energies - expected).max() < 1e-8
    s = np.eye(h.num_orbitals) if sk is None else sk
    assert np.abs(vectors.conj().T @ s @ vectors - np.eye(len(energies))).max() < 1e-10  # S-orthonormal
    assert np.abs(hk @ vectors - s @ vectors * energies).max() < 1e-8  # H ψ = E S ψ
    return expected


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_window_of_engine_bilayer_near_fermi_level(engine_bilayer, solver):
    """Orthogonal basis: the states within E_F ± 1.5 eV, E_F between the 2N-th and (2N+1)-th state at K."""
    h = engine_bilayer
    full = _full(h, K)[2]
    n_occ = 2 * len(h)  # 4 valence electrons per C, spin-degenerate
    fermi = 0.5 * (full[n_occ - 1] + full[n_occ])
    expected = _check_window(h, K, fermi - 1.5, fermi + 1.5, solver)
    assert len(expected) >= 6  # > n_guess = 2: the sparse path had to ask for more states


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_window_non_orthogonal_pi_model(solver):
    """S ≠ 1 (nearest-neighbour overlap 0.12), 5×5 tiling (50 orbitals), an asymmetric window."""
    h = repeat_hamiltonian(graphene_pi_overlap(), 5, 5)
    assert h.s_values is not None
    expected = _check_window(h, K, -3.0, 2.0, solver)
    assert len(expected) >= 8 and expected.min() < 0.0 < expected.max()  # valence and conduction states


def test_window_edge_cases():
    h = repeat_hamiltonian(graphene_pi_overlap(), 4, 4)  # 32 orbitals
    full = _full(h, K)[2]
    gap_lo, gap_hi = full[10], full[11]
    for solver in ("dense", "sparse"):
        # a window inside a gap between two states holds none
        energies, vectors = states_in_window(h, K, gap_lo + 1e-3, gap_hi - 1e-3, solver=solver)
        assert energies.shape == (0,) and vectors.shape == (32, 0)
    # 'auto' is dense for small N; both ends of the window are included
    energies, _ = states_in_window(h, K, full[3], full[6], solver="auto")
    np.testing.assert_allclose(energies, full[3:7], atol=1e-12)
    # the shift-invert LU is reused: nearest states to σ, consistent with the full spectrum
    solver = ShiftInvert(h, K, sigma=0.5 * (gap_lo + gap_hi))
    np.testing.assert_allclose(solver.nearest(2)[0], full[10:12], atol=1e-10)
    np.testing.assert_allclose(solver.nearest(6)[0][2:4], full[10:12], atol=1e-10)
    with pytest.raises(BandsInputError):
        states_in_window(h, K, 1.0, -1.0)
    with pytest.raises(BandsInputError):
        states_in_window(h, K, -np.inf, 0.0)
    with pytest.raises(BandsInputError):
        states_in_window(h, K, full.min() - 1.0, full.max() + 1.0, solver="sparse")  # every state


# ---------------------------------------------------------------------------- dense Bloch sums, mixed precision
def test_dense_bloch_sum_matches_sparse_assembly(engine_bilayer):
    """``hk_dense`` = ``hk().toarray()`` for one and many k, with (primitive π model: the same (i, j) at several R,
    summed) and without repeated pairs (4×4 supercell), and for S(k) of a non-orthogonal basis."""
    ks = np.array([K, [1.1, -0.4, 0.0], [0.0, 0.0, 0.0]])
    pi = graphene_pi_overlap()
    tiled = repeat_hamiltonian(pi, 3, 3)
    assert not pi._dense_index[2] and tiled._dense_index[2]  # both scatter paths (repeated pairs or not)
    for h in (pi, tiled, engine_bilayer):
        dense = h.hk_dense(ks)
        assert dense.shape == (3, h.num_orbitals, h.num_orbitals)
        for k, hk in zip(ks, dense):
            assert np.abs(hk - h.hk(k).toarray()).max() < 1e-12
        np.testing.assert_allclose(h.hk_dense(ks[1]), dense[1], atol=0)
    np.testing.assert_allclose(pi.hk_dense(K, pi.s_values), pi.sk(K).toarray(), atol=1e-14)


@pytest.mark.parametrize("basis", ["orthogonal", "overlap"])
def test_mixed_precision_subset_matches_double(engine_bilayer, basis):
    """complex64 solve + complex128 Rayleigh–Ritz: the states near E_F (E_F ± 3 eV) to 1e-9 eV, by energy and by index, the
    eigenvectors (up to phase) to 1 − |⟨ψ|ψ_ref⟩|² < 1e-8; float32 alone is ~1e-6 eV off (so the refinement acts)."""
    h = engine_bilayer if basis == "orthogonal" else repeat_hamiltonian(graphene_pi_overlap(), 6, 6)
    hk, sk, full = _full(h, K)
    n_occ = h.num_orbitals // 2
    fermi = 0.5 * (full[n_occ - 1] + full[n_occ])
    window = (fermi - 3.0, fermi + 3.0)
    ref_e, ref_v = eigh_subset(hk, sk, subset_by_value=window, precision="double")
    energies, vectors = eigh_subset(hk, sk, subset_by_value=window, precision="mixed")
    assert len(ref_e) >= 6 and energies.shape == ref_e.shape
    assert np.abs(energies - ref_e).max() < 1e-9
    s = np.eye(h.num_orbitals) if sk is None else sk
    overlap = np.abs(np.einsum("im,im->m", ref_v.conj(), s @ vectors)) ** 2
    assert (1.0 - overlap).max() < 1e-8
    single = scipy.linalg.eigvalsh(hk.astype(np.complex64), None if sk is None else sk.astype(np.complex64))
    assert np.abs(np.sort(single)[n_occ - 2:n_occ + 2] - full[n_occ - 2:n_occ + 2]).max() > 1e-8
    by_index, _ = eigh_subset(hk, sk, subset_by_index=(n_occ - 3, n_occ + 2))
    np.testing.assert_allclose(by_index, full[n_occ - 3:n_occ + 3], atol=1e-9)
    with pytest.raises(ValueError, match="precision"):
        eigh_subset(hk, sk, subset_by_index=(0, 1), precision="half")


def test_unfolded_weights_mixed_precision_match_double(engine_bilayer):
    """The unfolded spectrum (energies, primitive weights) of the displaced 4×4 AB bilayer near K: 'mixed' = 'double'
    to 1e-9 eV and 1e-7 in weight; the weights obey the per-k sum rule in both (Σ_m W_m = 16 primitive bands)."""
    from aiida_mlepi.core.unfolding import unfold

    primitive = graphene_bilayer("AB")
    k_points = np.array([[1.70, 0.0, 0.0], [1.66, 0.08, 0.0], [1.55, -0.1, 0.0]])
    window = (-1.5, 1.5)
    double = unfold(engine_bilayer, primitive, k_points, energy_window=window, precision="double")
    mixed = unfold(engine_bilayer, primitive, k_points, energy_window=window, precision="mixed")
    assert np.isfinite(double.energies).sum() >= 6
    np.testing.assert_array_equal(np.isfinite(mixed.energies), np.isfinite(double.energies))
    assert np.nanmax(np.abs(mixed.energies - double.energies)) < 1e-9
    assert np.abs(mixed.weights - double.weights).max() < 1e-7
    everything = unfold(engine_bilayer, primitive, k_points[:1])  # all states, mixed by default
    np.testing.assert_allclose(everything.weights.sum(axis=1), 16.0, atol=1e-8)


def test_mixed_precision_large_subset_is_double(engine_bilayer):
    """A window holding most states (> MIXED_MAX_FRACTION) is solved in double precision: bit-identical results."""
    hk, sk, full = _full(engine_bilayer, K)
    window = (full[20] - 1e-6, full[-20])
    double = eigh_subset(hk, sk, subset_by_value=window, precision="double")
    mixed = eigh_subset(hk, sk, subset_by_value=window, precision="mixed")
    assert len(double[0]) > 0.25 * len(full)
    np.testing.assert_array_equal(mixed[0], double[0])
