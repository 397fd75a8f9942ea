"""Band unfolding: undisplaced supercells unfold to the primitive bands, sum rules on displaced ones, S ≠ 1."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aiida_mlepi.core.bands import eigenvalues, repeat_hamiltonian
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.structures import graphene_bilayer, hexagonal_cell, in_plane_supercell
from aiida_mlepi.core.unfolding import (PrimitiveCell, UnfoldingInputError, map_to_primitive, shared_solves,
                                        spectral_function, unfold)
from tests.core.test_bands import A, A_CC, T, graphene_pi, pair_model

GENERIC_K = np.array([[0.31, 0.17, 0.0], [-0.52, 0.93, 0.0], [1.1, -0.2, 0.0]])  # Å⁻¹, no symmetry
S_NN = 0.12  #: nearest-neighbour overlap of the non-orthogonal π model (S(k) > 0 since 3·0.12 < 1)


def graphene_pi_overlap() -> HamiltonianR:
    """Nearest-neighbour π model with a nearest-neighbour overlap: S(R) ≠ δ (non-orthogonal basis)."""

    def nn(d):
        return abs(np.linalg.norm(d[:2]) - A_CC) < 1e-6 and abs(d[2]) < 1e-6

    cell = hexagonal_cell(A, 20.0)
    pos = np.array([[0, 0, 10.0], [*(np.array([1 / 3, 2 / 3]) @ cell[:2, :2]), 10.0]])
    return pair_model(cell, pos, lambda i, j, d: (0.0 if i == j and np.allclose(d, 0) else T) if
                      (nn(d) or (i == j and np.allclose(d, 0))) else None,
                      s_hop=lambda i, j, d: 1.0 if (i == j and np.allclose(d, 0)) else S_NN)


def distance_model(cell, positions, cutoff=1.9, overlap=True) -> HamiltonianR:
    """π model of any (displaced) geometry: t(d) = T exp(−(d − a_cc)/0.35 Å), s(d) = S_NN·(same), d < cutoff."""

    def decay(d):
        return np.exp(-(np.linalg.norm(d) - A_CC) / 0.35)

    def hop(i, j, d):
        if i == j and np.allclose(d, 0):
            return 0.0
        return T * decay(d) if np.linalg.norm(d) < cutoff else None

    def s_hop(i, j, d):
        return 1.0 if (i == j and np.allclose(d, 0)) else S_NN * decay(d)

    return pair_model(cell, positions, hop, s_hop if overlap else None)


def primitive_of(h: HamiltonianR) -> PrimitiveCell:
    return PrimitiveCell(h.cell, h.positions, h.numbers)


def assert_unfolds_to_primitive(h_prim: HamiltonianR, h_sc: HamiltonianR, primitive, k_points, atol=1e-8):
    """Weight 1 on each primitive eigenvalue at k (to ``atol`` eV), 0 elsewhere, Σ W = primitive bands."""
    states = unfold(h_sc, primitive, k_points)
    assert states.n_primitive_bands == h_prim.num_orbitals
    for k, e, w in zip(k_points, states.energies, states.weights):
        prim = eigenvalues(h_prim, k)
        carrying = w > 1e-6
        assert carrying.sum() == len(prim)  # generic k: no degeneracy among the primitive bands
        np.testing.assert_allclose(np.sort(e[carrying]), prim, atol=atol)
        np.testing.assert_allclose(w[carrying], 1.0, atol=1e-10)
        assert np.abs(w[~carrying]).max() < 1e-10
        assert w.sum() == pytest.approx(h_prim.num_orbitals, abs=1e-10)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_undisplaced_supercell_unfolds_to_primitive_bands(n):
    h = graphene_pi()
    assert_unfolds_to_primitive(h, repeat_hamiltonian(h, n, n), primitive_of(h), GENERIC_K)


def test_undisplaced_sp3_bilayer_from_the_engine():
    """The reference engine's sp³ AB bilayer (16 orbitals per cell), 3×3 built by the engine itself."""
    engine = ReferenceEngine()
    prim = graphene_bilayer("AB")
    h_prim = engine.hamiltonian(prim)
    h_sc = engine.hamiltonian(in_plane_supercell(prim, 3))
    assert_unfolds_to_primitive(h_prim, h_sc, prim, GENERIC_K)
    # the sites found by clustering (bare 3×3 cell given) give the same weights
    a = unfold(h_sc, prim, GENERIC_K).weights
    b = unfold(h_sc, np.asarray(prim.cell), GENERIC_K).weights
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_non_orthogonal_undisplaced():
    h = graphene_pi_overlap()
    assert h.s_values is not None
    # S(k) really is not the identity: the eigenvalues differ from the orthogonal model's
    assert abs(eigenvalues(h, GENERIC_K[0])[0] - eigenvalues(graphene_pi(), GENERIC_K[0])[0]) > 0.1
    assert_unfolds_to_primitive(h, repeat_hamiltonian(h, 3, 3), primitive_of(h), GENERIC_K)


def _displaced_supercell(n, rng, amplitude=0.08, overlap=True):
    h = graphene_pi()
    cell = np.diag([n, n, 1.0]) @ h.cell
    ref = np.array([p + c1 * h.cell[0] + c2 * h.cell[1] for c2 in range(n) for c1 in range(n) for p in h.positions])
    disp = amplitude * rng.standard_normal(ref.shape)
    return primitive_of(h), distance_model(cell, ref + disp, overlap=overlap), ref


@pytest.mark.parametrize("overlap", [False, True])
def test_sum_rules_of_a_displaced_configuration(overlap):
    """Exact for any configuration: Σ over the N_c primitive k folding onto one supercell k of W_m = 1,
    and Σ_m W_m(k) = number of primitive bands."""
    n = 3
    primitive, h, _ = _displaced_supercell(n, np.random.default_rng(3), overlap=overlap)
    k0 = GENERIC_K[0]
    rec_sc = h.reciprocal_cell()
    ks = np.array([k0 + m1 * rec_sc[0] + m2 * rec_sc[1] for m1, m2 in itertools.product(range(n), repeat=2)])
    states = unfold(h, primitive, ks)
    # the supercell eigenvalues are the same at all k + G_sc (one shared solve: compare with a solve at the last one)
    alone = unfold(h, primitive, ks[-1:])
    np.testing.assert_allclose(states.energies, np.broadcast_to(alone.energies[0], states.energies.shape), atol=1e-9)
    np.testing.assert_allclose(states.weights.sum(axis=0), 1.0, atol=1e-10)
    np.testing.assert_allclose(states.weights.sum(axis=1), 2.0, atol=1e-10)
    # a displaced configuration spreads weight: some states carry neither 0 nor 1
    assert ((states.weights > 0.05) & (states.weights < 0.95)).any()
    if not overlap:
        assert states.weights.min() > -1e-12  # orthogonal basis: weights are |f|²/N_c ≥ 0


def test_folded_and_time_reversed_k_share_one_solve():
    """On a 3×3 supercell K and K′ fold onto Γ̄: K + q, K′ + q share a solve, K − q is its complex conjugate
    (real H(R)); on 4×4 K folds onto K̄ and K ± q are different supercell k."""
    h3 = _displaced_supercell(3, np.random.default_rng(0))[1]
    h4 = _displaced_supercell(4, np.random.default_rng(0))[1]
    rec = np.linalg.inv(graphene_pi().cell).T * 2 * np.pi
    K, Kp, q = (rec[0] + rec[1]) / 3, 2 * (rec[0] + rec[1]) / 3, np.array([0.05, 0.02, 0.0])
    ks = np.array([K + q, Kp + q, K - q, K + 2 * q, q])
    assert shared_solves(ks, h3.cell) == [(0, False), (0, False), (0, True), (1, False), (0, False)]
    assert shared_solves(ks, h4.cell) == [(0, False), (1, False), (1, True), (2, False), (3, False)]


@pytest.mark.parametrize("overlap", [False, True])
def test_shared_solves_give_the_states_of_independent_solves(overlap):
    """Unfolding many k at once (solves shared between k ≡ ±k′ mod the supercell reciprocal lattice) gives the
    energies and weights of one unfold call per k (each its own solve), H and S ≠ 1 alike."""
    primitive, h, _ = _displaced_supercell(3, np.random.default_rng(5), overlap=overlap)
    rec = np.linalg.inv(graphene_pi().cell).T * 2 * np.pi
    K, q = (rec[0] + rec[1]) / 3, np.array([0.043, 0.011, 0.0])
    ks = np.array([K + q, K - q, 2 * K + q, 2 * K - q, K + 2 * q, K - 2 * q])
    together = unfold(h, primitive, ks, energy_window=(-2.0, 2.0))
    assert len({source for source, _ in shared_solves(ks, h.cell)}) == 2
    for n, k in enumerate(ks):
        alone = unfold(h, primitive, k, energy_window=(-2.0, 2.0))
        width = alone.energies.shape[1]
        np.testing.assert_allclose(together.energies[n, :width], alone.energies[0], atol=1e-9)
        np.testing.assert_allclose(together.weights[n, :width], alone.weights[0], atol=1e-8)
    assert ((together.weights > 0.05) & (together.weights < 0.95)).any()  # a displaced configuration: weights spread


def test_weights_do_not_depend_on_atom_order():
    primitive, h, _ = _displaced_supercell(3, np.random.default_rng(5))
    perm = np.random.default_rng(11).permutation(len(h))
    inverse = np.argsort(perm)
    edges = h.edges.copy()
    edges[:, 3] = inverse[h.edges[:, 3]]
    edges[:, 4] = inverse[h.edges[:, 4]]
    hp = HamiltonianR(cell=h.cell, positions=h.positions[perm], numbers=h.numbers[perm], basis=h.basis,
                      edges=edges, h_values=h.h_values, s_values=h.s_values, pbc=h.pbc)
    a, b = unfold(h, primitive, GENERIC_K), unfold(hp, primitive, GENERIC_K)
    np.testing.assert_allclose(a.energies, b.energies, atol=1e-10)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-10)


def test_spectral_function_is_normalised():
    h = graphene_pi()
    states = unfold(repeat_hamiltonian(h, 2, 2), primitive_of(h), GENERIC_K)
    grid = np.linspace(-12.0, 12.0, 24001)
    a = spectral_function(states.energies, states.weights, grid, 0.05)
    np.testing.assert_allclose(a.sum(axis=1) * (grid[1] - grid[0]), 2.0, rtol=1e-6)
    with pytest.raises(UnfoldingInputError, match="broadening"):
        spectral_function(states.energies, states.weights, grid, 0.0)


def test_spectral_function_windowed_equals_every_point():
    """On an even grid each Gaussian is evaluated within ±8σ only: the same A(k, E) as every grid point (1e-12
    relative), for states inside, at the edges of and beyond the grid, with NaN padding; an uneven grid takes
    every point."""
    rng = np.random.default_rng(3)
    energies = rng.uniform(-1.5, 1.5, (7, 9))
    energies[2, 6:] = np.nan
    energies[4, 0], energies[5, 1] = -1.3, 1.3  # on the grid's ends
    weights = rng.uniform(0.0, 1.0, energies.shape)
    sigma = 0.01

    def every_point(grid):
        e = np.nan_to_num(energies)
        w = np.where(np.isfinite(energies), weights, 0.0)
        x = (grid[None, None, :] - e[:, :, None]) / sigma
        return np.einsum("km,kme->ke", w, np.exp(-0.5 * x * x)) / (np.sqrt(2 * np.pi) * sigma)

    even = np.linspace(-1.3, 1.3, 2601)
    uneven = np.sort(np.concatenate([even[::3], [0.00037, 0.5001]]))
    for grid in (even, uneven):
        expected = every_point(grid)
        np.testing.assert_allclose(spectral_function(energies, weights, grid, sigma), expected,
                                   atol=1e-12 * expected.max())


def test_bad_input_is_reported():
    h = graphene_pi()
    sc = repeat_hamiltonian(h, 2, 2)
    with pytest.raises(UnfoldingInputError, match="not an integer multiple"):
        unfold(sc, hexagonal_cell(2.0, 20.0), GENERIC_K)
    # an atom moved half a bond away from its site: the nearest-site rule cannot map it
    moved = HamiltonianR(cell=sc.cell, positions=sc.positions + np.r_[[[0.71, 0, 0]], np.zeros((7, 3))],
                         numbers=sc.numbers, basis=sc.basis, edges=sc.edges, h_values=sc.h_values)
    with pytest.raises(UnfoldingInputError, match="one-to-one|from the nearest"):
        map_to_primitive(moved, primitive_of(h), tol=0.5)
    with pytest.raises(UnfoldingInputError, match=r"\(nk, 3\)"):
        unfold(sc, primitive_of(h), np.zeros((2, 2)))


def test_site_map_from_the_reference_positions_survives_large_displacements():
    """Displacements of 0.75 Å (half a bond) defeat the nearest-site rule; the map of the undisplaced
    positions keeps every atom on its site, and the exact sum rules hold with it."""
    from aiida_mlepi.core.unfolding import site_map_of_reference

    n = 3
    h0 = graphene_pi()
    cell = np.diag([n, n, 1.0]) @ h0.cell
    ref = np.array([p + c1 * h0.cell[0] + c2 * h0.cell[1] for c2 in range(n) for c1 in range(n) for p in h0.positions])
    moved = ref.copy()
    moved[0] += [0.75, 0.0, 0.0]  # towards a neighbour of the other sublattice
    h = distance_model(cell, moved, overlap=False)
    primitive = primitive_of(h0)
    with pytest.raises(UnfoldingInputError):
        map_to_primitive(h, primitive, tol=0.5)
    site_map = site_map_of_reference(ref, h, primitive)
    assert site_map.site.tolist() == [0, 1] * (n * n) and site_map.n_cells == n * n
    rec_sc = h.reciprocal_cell()
    ks = np.array([GENERIC_K[0] + m1 * rec_sc[0] + m2 * rec_sc[1] for m1, m2 in itertools.product(range(n), repeat=2)])
    states = unfold(h, primitive, ks, site_map=site_map)
    np.testing.assert_allclose(states.weights.sum(axis=0), 1.0, atol=1e-10)
    np.testing.assert_allclose(states.weights.sum(axis=1), 2.0, atol=1e-10)
