"""Löwdin orthogonalisation of a non-orthogonal H(R), S(R) (core.orthogonalisation): the orthogonal H̃(R) that
HedgeNet-Electron learns from an LCAO engine. Checked against an analytic two-band model with overlap, for
convergence with the kept range, for S = 1, and for equivariance under permutations and rotations of the atoms."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.orthogonalisation import OrthogonalisationError, lowdin_orthogonalise
from aiida_mlepi.core.structures import graphene_bilayer
from aiida_mlepi.core.wigner import rotate_blocks

A, T, S = 2.46, -2.7, 0.12  # Å, eV, overlap of nearest neighbours (a π-band model with overlap)
NEIGHBOURS = [(0, 0, 0), (-1, 0, 0), (0, -1, 0)]


def _pi_model(s: float = S) -> HamiltonianR:
    """Graphene p_z with nearest-neighbour hopping T and overlap s: E±(k) = ±T|f| / (1 ± s|f|) (Saito, Dresselhaus &
    Dresselhaus, Physical Properties of Carbon Nanotubes (1998), Eq. 2.26), f(k) = Σ_R e^{ik·R} over the 3 bonds."""
    cell = np.array([[A, 0, 0], [A / 2, A * 3 ** 0.5 / 2, 0], [0, 0, 20.0]])
    positions = np.array([[0, 0, 10.0], (cell[0] + cell[1]) / 3 + [0, 0, 10.0]])
    edges, h, o = [(0, 0, 0, 0, 0), (0, 0, 0, 1, 1)], [0.0, 0.0], [1.0, 1.0]
    for r in NEIGHBOURS:
        edges += [(*r, 0, 1), (-r[0], -r[1], 0, 1, 0)]
        h += [T, T]
        o += [s, s]
    return HamiltonianR(cell=cell, positions=positions, numbers=[6, 6], basis={6: (0,)}, edges=edges, h_values=h,
                        s_values=o, pbc=(True, True, False))


def _analytic_bands(model: HamiltonianR, k: np.ndarray, s: float = S) -> np.ndarray:
    f = abs(sum(np.exp(1j * k @ (np.array(r) @ model.cell)) for r in NEIGHBOURS))
    return np.sort([T * f / (1 + s * f), -T * f / (1 - s * f)])


def _random_k(model: HamiltonianR, n: int = 24, seed: int = 0) -> np.ndarray:
    frac = np.random.default_rng(seed).random((n, 3)) * [1, 1, 0]
    return frac @ model.reciprocal_cell()


def test_pi_model_with_overlap_converges_to_the_analytic_bands():
    """The truncated H̃ reproduces E±(k) at random k off the transform mesh; the error falls with the kept range
    (measured 1.77, 0.26, 0.024, 8e-5 eV at 1.5, 2.6, 4.5, 8 Å), and the report's error tracks the analytic one."""
    model = _pi_model()
    errors = []
    for cutoff in (1.5, 2.6, 4.5, 8.0):
        h_tilde, report = lowdin_orthogonalise(model, cutoff, cutoff)
        assert h_tilde.s_values is None and h_tilde.hermiticity_error() < 1e-12
        assert report.max_imaginary_ev < 1e-12 and report.mesh == (17, 17, 1)  # 17 × 2.46 Å ≥ 40 Å
        err = max(np.abs(np.linalg.eigvalsh(h_tilde.hk_dense(k)) - _analytic_bands(model, k)).max()
                  for k in _random_k(model))
        errors.append(err)
        assert report.band_error_max_ev >= 0.5 * err  # the report sees the truncation (its k are the worst ones)
    assert errors == sorted(errors, reverse=True)
    assert errors[0] > 1.0 and errors[-1] < 1e-3
    # the on-site block of the Löwdin orbitals is no longer zero (it picks up −T·s·3 from S^{-1/2} H S^{-1/2})
    assert lowdin_orthogonalise(model, 8.0, 8.0)[0].block(0)[0, 0] == pytest.approx(-3 * T * S, rel=0.1)


def test_identity_overlap_gives_the_hamiltonian_back():
    """S(R) = δ stored explicitly: H̃(R) = H(R) on every kept block (1e-12 eV)."""
    model = _pi_model(s=0.0)
    h_tilde, report = lowdin_orthogonalise(model, 1.5, 1.5)
    assert report.band_error_max_ev < 1e-12 and report.min_overlap_eigenvalue == pytest.approx(1.0)
    original = {tuple(e): model.block(n) for n, e in enumerate(model.edges.tolist())}
    for n, e in enumerate(h_tilde.edges.tolist()):
        np.testing.assert_allclose(h_tilde.block(n), original[tuple(e)], atol=1e-12)


def test_refuses_orthogonal_input_and_a_singular_overlap():
    h_orthogonal = ReferenceEngine().hamiltonian(graphene_bilayer("AB"))
    with pytest.raises(OrthogonalisationError, match="already in an orthogonal basis"):
        lowdin_orthogonalise(h_orthogonal, 2.6, 6.0)
    with pytest.raises(OrthogonalisationError, match="linearly dependent"):
        lowdin_orthogonalise(_pi_model(s=1.0 / 3.0), 2.6, 2.6)  # 1 − 3s = 0 at Γ: S(Γ) is singular


def _sp3_bilayer_with_overlap(seed: int = 3) -> HamiltonianR:
    """A displaced AB bilayer (2×2, 16 atoms, sp³) of the reference engine with an overlap S = 1 + c·H_off-site:
    S then rotates like H (Slater–Koster blocks), so rotations and permutations can be tested on real blocks."""
    atoms = graphene_bilayer("AB").repeat((2, 2, 1))
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    h = ReferenceEngine().hamiltonian(atoms)
    onsite = (h.edges[:, 3] == h.edges[:, 4]) & ~h.edges[:, :3].any(axis=1)
    s_values = 0.03 * h.h_values  # 1/eV × eV: dimensionless
    for e in np.flatnonzero(onsite):
        a, b = h.block_offsets[e], h.block_offsets[e + 1]
        s_values[a:b] = np.eye(h.block_shapes[e][0]).ravel()
    h.s_values = s_values
    return h


def _blocks(h: HamiltonianR) -> dict:
    return {tuple(e): h.block(n) for n, e in enumerate(h.edges.tolist())}


def test_permutation_of_atoms_permutes_the_blocks():
    """Relabelling the atoms relabels the blocks of H̃: H̃'_kl(R) = H̃_{p(k) p(l)}(R) (1e-10 eV)."""
    h = _sp3_bilayer_with_overlap()
    perm = np.random.default_rng(5).permutation(len(h))
    inverse = np.argsort(perm)
    edges = h.edges.copy()
    edges[:, 3], edges[:, 4] = inverse[h.edges[:, 3]], inverse[h.edges[:, 4]]  # atom k of the permuted = perm[k]
    permuted = HamiltonianR(cell=h.cell, positions=h.positions[perm], numbers=h.numbers[perm], basis=h.basis,
                            edges=edges, h_values=h.h_values, s_values=h.s_values, pbc=h.pbc)
    a, _ = lowdin_orthogonalise(h, 2.6, 6.0)
    b, _ = lowdin_orthogonalise(permuted, 2.6, 6.0)
    blocks = _blocks(a)
    mapped = {(rx, ry, rz, int(perm[k]), int(perm[l])): block for (rx, ry, rz, k, l), block in _blocks(b).items()}
    assert set(mapped) == set(blocks) and len(blocks) > 16 * 10
    assert max(np.abs(mapped[key] - blocks[key]).max() for key in blocks) < 1e-10
    assert max(np.abs(block).max() for key, block in blocks.items() if key[3] != key[4]) > 1.0  # not trivial


def test_rotation_commutes_with_orthogonalisation():
    """Rotating the structure (and its H, S blocks by the Wigner matrices) then orthogonalising equals
    orthogonalising then rotating (1e-9 eV): the Löwdin orbitals rotate like atomic orbitals."""
    h = _sp3_bilayer_with_overlap()
    angle = np.deg2rad(37.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    a, _ = lowdin_orthogonalise(rotate_blocks(h, rotation), 2.6, 6.0)
    b = rotate_blocks(lowdin_orthogonalise(h, 2.6, 6.0)[0], rotation)
    blocks_a, blocks_b = _blocks(a), _blocks(b)
    assert set(blocks_a) == set(blocks_b)
    assert max(np.abs(blocks_a[key] - blocks_b[key]).max() for key in blocks_a) < 1e-9
