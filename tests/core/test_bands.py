"""Bands from HamiltonianR: analytic π-graphene models, supercell tiling, solvers, sisl cross-check.

The analytic models (also used by ``test_observables.py``) put one orbital per C; the basis entry
``{6: (0,)}`` is an s shell whose slot stands for the pz orbital.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aiida_mlepi.core.bands import (BandsInputError, band_structure, choose_solver, eigenvalues,
                                    eigh_dense, eigh_sparse, frac_to_cart, repeat_hamiltonian,
                                    to_sisl)
from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.structures import hexagonal_cell

A = 2.46  #: Å, graphene lattice constant
A_CC = A / np.sqrt(3.0)  #: Å, C–C bond
T = -2.7  #: eV, nearest-neighbour π hopping γ0 (Castro Neto et al., RMP 81, 109 (2009))
GAMMA1 = 0.4  #: eV, AB dimer interlayer hopping (McCann & Koshino, RPP 76, 056503 (2013))
D = 3.35  #: Å, interlayer distance


def pair_model(cell: np.ndarray, positions: np.ndarray, hop, s_hop=None) -> HamiltonianR:
    """One-orbital model: block (R, i, j) = hop(i, j, d) for d = r_j + R − r_i (None: no bond)."""
    edges, hv, sv = [], [], []
    for rx, ry in itertools.product(range(-2, 3), repeat=2):
        for i, j in itertools.product(range(len(positions)), repeat=2):
            d = positions[j] + rx * cell[0] + ry * cell[1] - positions[i]
            t = hop(i, j, d)
            if t is not None:
                edges.append((rx, ry, 0, i, j))
                hv.append(t)
                sv.append(s_hop(i, j, d) if s_hop else 0.0)
    return HamiltonianR(cell=cell, positions=positions, numbers=np.full(len(positions), 6),
                        basis={6: (0,)}, edges=np.array(edges), h_values=np.array(hv),
                        s_values=np.array(sv) if s_hop else None, pbc=(True, True, False))


def _nn(d: np.ndarray) -> bool:
    return abs(np.linalg.norm(d[:2]) - A_CC) < 1e-6 and abs(d[2]) < 1e-6


def graphene_pi(t: float = T) -> HamiltonianR:
    """Nearest-neighbour π model of monolayer graphene (A at 0, B at (1/3, 2/3))."""
    cell = hexagonal_cell(A, 20.0)
    pos = np.array([[0, 0, 10.0], [*(np.array([1 / 3, 2 / 3]) @ cell[:2, :2]), 10.0]])
    return pair_model(cell, pos, lambda i, j, d: t if _nn(d) else None)


def bilayer_pi(t: float = T, gamma1: float = GAMMA1) -> HamiltonianR:
    """4-band AB bilayer: γ0 in each layer, γ1 between top A (atom 2) and bottom B (atom 1)."""
    cell = hexagonal_cell(A, 20.0 + D)
    frac = np.array([[0, 0], [1 / 3, 2 / 3], [1 / 3, 2 / 3], [2 / 3, 1 / 3]])
    z = np.array([10.0, 10.0, 10.0 + D, 10.0 + D])
    pos = np.column_stack([frac @ cell[:2, :2], z])
    layer = [0, 0, 1, 1]

    def hop(i, j, d):
        if layer[i] == layer[j]:
            return t if _nn(d) else None
        if {i, j} == {1, 2} and np.linalg.norm(d[:2]) < 1e-6:
            return gamma1
        return None

    return pair_model(cell, pos, hop)


def structure_factor(k_cart: np.ndarray) -> complex:
    """f(k) = Σ_δ e^{ik·δ} over the three A→B bond vectors."""
    deltas = [A_CC * np.array([np.cos(a), np.sin(a), 0.0]) for a in np.pi / 2 + 2 * np.pi * np.arange(3) / 3]
    return complex(sum(np.exp(1j * np.dot(k_cart, dl)) for dl in deltas))


K_FRAC = np.array([1 / 3, 1 / 3, 0.0])
RNG_K = np.random.default_rng(7).uniform(-0.5, 0.5, size=(4, 3)) * [1, 1, 0]


def test_monolayer_bands_are_plus_minus_t_f():
    h = graphene_pi()
    assert h.hermiticity_error() == 0.0
    for kf in [K_FRAC, np.zeros(3), *RNG_K]:
        k = frac_to_cart(h, kf)
        e = eigenvalues(h, k)
        f = abs(structure_factor(k))
        np.testing.assert_allclose(e, [-abs(T) * f, abs(T) * f], atol=1e-12)
    # Dirac point at K (|K| = 4π/3a), bandwidth ±3|t| at Γ
    assert np.isclose(np.linalg.norm(frac_to_cart(h, K_FRAC)), 4 * np.pi / (3 * A))
    np.testing.assert_allclose(eigenvalues(h, frac_to_cart(h, K_FRAC)), [0, 0], atol=1e-12)
    np.testing.assert_allclose(eigenvalues(h, np.zeros(3)), [-3 * abs(T), 3 * abs(T)])


def test_bilayer_bands_analytic():
    h = bilayer_pi()
    for kf in [K_FRAC, *RNG_K]:
        k = frac_to_cart(h, kf)
        phi = abs(T * structure_factor(k))
        low = np.sqrt(GAMMA1**2 / 4 + phi**2) - GAMMA1 / 2
        high = np.sqrt(GAMMA1**2 / 4 + phi**2) + GAMMA1 / 2
        np.testing.assert_allclose(eigenvalues(h, k), [-high, -low, low, high], atol=1e-12)


@pytest.mark.parametrize("n1,n2", [(3, 3), (2, 3)])
def test_supercell_tiling_folds_primitive_bands(n1, n2):
    prim = bilayer_pi()
    sc = repeat_hamiltonian(prim, n1, n2)
    assert len(sc) == 4 * n1 * n2 and sc.hermiticity_error() == 0.0
    for ksc_frac in [np.zeros(3), np.array([0.21, -0.37, 0.0])]:
        k = frac_to_cart(sc, ksc_frac)
        # the primitive k that fold onto k: k + G_sc, G_sc = (m1/n1, m2/n2) primitive reciprocal
        folded = np.concatenate([
            eigenvalues(prim, k + frac_to_cart(prim, np.array([m1 / n1, m2 / n2, 0])))
            for m1 in range(n1) for m2 in range(n2)])
        np.testing.assert_allclose(eigenvalues(sc, k), np.sort(folded), atol=1e-11)


def test_sisl_matches_our_bloch_sums():
    pytest.importorskip("sisl")
    sc = repeat_hamiltonian(bilayer_pi(), 3, 2)
    # a non-orthogonal variant: S = 1 + 0.1 on nearest-neighbour bonds (generalised eigenproblem)
    nonorth = pair_model(graphene_pi().cell, graphene_pi().positions,
                         lambda i, j, d: T if _nn(d) else (0.0 if np.linalg.norm(d) < 1e-9 else None),
                         s_hop=lambda i, j, d: 0.1 if _nn(d) else 1.0)
    nonorth = repeat_hamiltonian(nonorth, 2, 2)
    for h in (sc, nonorth):
        sh = to_sisl(h)
        assert sh.no == h.num_orbitals
        for kf in [np.zeros(3), np.array([1 / 3, 1 / 3, 0]), np.array([0.13, 0.41, 0])]:
            ours = eigenvalues(h, frac_to_cart(h, kf))
            np.testing.assert_allclose(sh.eigh(k=kf), ours, atol=1e-10)
    # overlap enters: the non-orthogonal Γ states are ε = 3t/(1 + 0.3) and 3|t|/(1 − 0.3)
    e_gamma = eigenvalues(nonorth, np.zeros(3))
    assert np.isclose(e_gamma.min(), 3 * T / 1.3) and np.isclose(e_gamma.max(), -3 * T / 0.7)


def test_sparse_shift_invert_matches_dense():
    h = repeat_hamiltonian(bilayer_pi(), 6, 6)  # 144 orbitals, K folds to Γ
    k = np.array([0.03, 0.01, 0.0])
    dense_all = eigenvalues(h, k)
    vals, vecs = eigh_sparse(h, k, sigma=0.0, n_states=8)
    np.testing.assert_allclose(vals, np.sort(dense_all[np.argsort(np.abs(dense_all))[:8]]), atol=1e-10)
    # eigenvectors satisfy H v = ε v
    hk = h.hk(k)
    assert np.abs(hk @ vecs - vecs * vals).max() < 1e-9
    dvals, _ = eigh_dense(h, k, (70, 73))
    np.testing.assert_allclose(dvals, dense_all[70:74], atol=1e-12)
    assert choose_solver(h, "auto", sparse_threshold=100) == "sparse"
    assert choose_solver(h, "auto") == "dense"
    with pytest.raises(BandsInputError):
        choose_solver(h, "magic")
    with pytest.raises(BandsInputError):
        repeat_hamiltonian(h, 0, 1)


def test_band_structure_path_and_plot(tmp_path):
    from aiida_mlepi.core.plotting import plot_bands

    h = graphene_pi()
    bs = band_structure(h, n_points=60, fermi_level=0.0)
    # Γ–M–K–Γ lengths: |ΓM| = 2π/(√3 a), |MK| = 2π/(3a), |KΓ| = 4π/(3a)
    expected = np.cumsum([0, 2 * np.pi / (np.sqrt(3) * A), 2 * np.pi / (3 * A), 4 * np.pi / (3 * A)])
    np.testing.assert_allclose(bs.label_distance, expected)
    assert bs.labels == ["Γ", "M", "K", "Γ"]
    i_k = int(np.argmin(np.abs(bs.distance - expected[2])))
    np.testing.assert_allclose(bs.energies[i_k], [0, 0], atol=1e-12)  # Dirac point on the path
    np.testing.assert_allclose(bs.energies[0], [-3 * abs(T), 3 * abs(T)])
    # at M: ±|t|
    i_m = int(np.argmin(np.abs(bs.distance - expected[1])))
    np.testing.assert_allclose(bs.energies[i_m], [-abs(T), abs(T)], atol=1e-12)
    path = plot_bands(bs, tmp_path / "bands.png", reference=bs, title="graphene π")
    assert path.exists() and path.stat().st_size > 5000
