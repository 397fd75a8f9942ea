"""Real Wigner-D matrices in OpenMX orbital order, Kabsch, and rotation of H(R) blocks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.wigner import (
    L_MAX,
    RotationError,
    kabsch_rotation,
    orbital_rotation,
    real_harmonics,
    rotate_blocks,
    sphere_quadrature,
    wigner_d,
)
from tests.conftest import shared_fixture

LS = list(range(L_MAX + 1))


def _rotations(n: int, seed: int) -> np.ndarray:
    return Rotation.random(n, random_state=seed).as_matrix()


def _unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("l", LS)
def test_harmonics_orthonormal_on_sphere(l):
    pts, w = sphere_quadrature(2 * l)
    assert w.sum() == pytest.approx(4 * np.pi, rel=1e-14)
    y = real_harmonics(l, pts)
    gram = (y * w[:, None]).T @ y
    assert np.abs(gram - np.eye(2 * l + 1)).max() < 1e-13


@pytest.mark.parametrize("l", LS)
def test_wigner_d_orthogonal_and_homomorphism(l):
    r1, r2, r3 = _rotations(3, seed=l)
    for m in (r1, r2, -r3):  # -r3: improper rotation
        d = wigner_d(l, m)
        assert np.abs(d @ d.T - np.eye(2 * l + 1)).max() < 1e-13
    assert np.abs(wigner_d(l, r1 @ r2) - wigner_d(l, r1) @ wigner_d(l, r2)).max() < 1e-13
    assert np.abs(wigner_d(l, r1.T) - wigner_d(l, r1).T).max() < 1e-13
    assert np.abs(wigner_d(l, np.eye(3)) - np.eye(2 * l + 1)).max() < 1e-14
    # inversion: parity (-1)^l
    assert np.abs(wigner_d(l, -np.eye(3)) - (-1) ** l * np.eye(2 * l + 1)).max() < 1e-14


@pytest.mark.parametrize("l", LS)
def test_wigner_d_rotates_harmonic_values(l):
    """Y(M r) = D(M) Y(r): the defining property, checked at random points."""
    (m,) = _rotations(1, seed=10 + l)
    r = _unit_vectors(20, seed=l)
    lhs = real_harmonics(l, r @ m.T)
    rhs = real_harmonics(l, r) @ wigner_d(l, m).T
    assert np.abs(lhs - rhs).max() < 1e-13


def test_p_block_rotates_like_the_vector():
    (m,) = _rotations(1, seed=5)
    assert np.abs(wigner_d(1, m) - m).max() < 1e-14
    # a p "orbital pointing along v" (block v vᵀ) rotates into (Mv)(Mv)ᵀ
    v = np.array([0.3, -1.2, 0.7])
    d = wigner_d(1, m)
    assert np.abs(d @ np.outer(v, v) @ d.T - np.outer(m @ v, m @ v)).max() < 1e-14


def test_d_shell_quarter_turn_about_z():
    """Rz(90°): x -> y, y -> -x. OpenMX d order: z², x²-y², xy, xz, yz."""
    m = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    expected = np.zeros((5, 5))
    expected[0, 0] = 1.0  # d3z²−r² unchanged
    expected[1, 1] = -1.0  # x²−y² -> y²−x²
    expected[2, 2] = -1.0  # xy -> −xy
    expected[4, 3] = 1.0  # xz -> yz
    expected[3, 4] = -1.0  # yz -> −xz
    assert np.abs(wigner_d(2, m) - expected).max() < 1e-14


def test_agrees_with_e3nn_up_to_fixed_change_of_basis():
    """e3nn's D (built from its own J matrices) equals Q D Qᵀ with Q fixed by the harmonics."""
    torch = pytest.importorskip("torch")
    # e3nn 0.4.4 loads its constants with torch.load, which needs `slice` allowed on torch >= 2.6
    torch.serialization.add_safe_globals([slice])
    o3 = pytest.importorskip("e3nn.o3")
    pts, w = sphere_quadrature(2 * L_MAX)
    rotations = _rotations(3, seed=99)
    for l in LS:
        y_e3nn = o3.spherical_harmonics(l, torch.tensor(pts), normalize=True, normalization="integral")
        q = (y_e3nn.numpy() * w[:, None]).T @ real_harmonics(l, pts)  # Y_e3nn = Q Y_ours
        assert np.abs(q @ q.T - np.eye(2 * l + 1)).max() < 1e-12
        for m in rotations:
            d_e3nn = o3.Irrep(l, (-1) ** l).D_from_matrix(torch.tensor(m)).numpy()
            assert np.abs(d_e3nn - q @ wigner_d(l, m) @ q.T).max() < 1e-12
    # for l = 1 e3nn 0.4.4 uses (x, y, z), i.e. the OpenMX p order itself
    y1 = o3.spherical_harmonics(1, torch.tensor(pts), normalize=True, normalization="integral").numpy()
    assert np.abs(y1 - real_harmonics(1, pts)).max() < 1e-12


def test_orbital_rotation_block_diagonal():
    (m,) = _rotations(1, seed=7)
    big = orbital_rotation((0, 1, 2), m)
    assert big.shape == (9, 9)
    assert big[0, 0] == pytest.approx(1.0)
    assert np.abs(big[1:4, 1:4] - m).max() < 1e-14
    assert np.abs(big[4:, 4:] - wigner_d(2, m)).max() < 1e-14
    assert np.abs(big[:4, 4:]).max() == 0.0


def test_bad_input_raises():
    with pytest.raises(RotationError, match="not orthogonal"):
        wigner_d(1, np.diag([1.0, 2.0, 1.0]))
    with pytest.raises(RotationError, match="3x3"):
        wigner_d(1, np.eye(2))
    with pytest.raises(RotationError, match="l=4"):
        wigner_d(4, np.eye(3))
    assert issubclass(RotationError, ValueError)
    with pytest.raises(ValueError, match="at least 3"):
        kabsch_rotation(np.zeros((2, 3)), np.zeros((2, 3)))


def test_kabsch_recovers_rotation():
    (m,) = _rotations(1, seed=3)
    src = np.random.default_rng(0).normal(size=(6, 3))
    dst = src @ m.T + np.array([1.0, -2.0, 0.5])
    got = kabsch_rotation(src, dst)
    assert np.abs(got - m).max() < 1e-13
    assert np.linalg.det(got) == pytest.approx(1.0)


def _random_hamiltonian(seed: int) -> HamiltonianR:
    """Hermitian random H/S on a small periodic cell with shells up to l = 3."""
    rng = np.random.default_rng(seed)
    basis = {6: (0, 1), 42: (0, 2, 3)}
    numbers = np.array([6, 42])
    n_orb = {6: 4, 42: 13}
    edges, hv, sv = [], [], []
    pairs = [(0, 0, 0, 0, 0), (0, 0, 0, 1, 1), (0, 0, 0, 0, 1), (1, 0, 0, 0, 1), (0, 1, 0, 1, 0)]
    for rx, ry, rz, i, j in pairs:
        a, b = n_orb[numbers[i]], n_orb[numbers[j]]
        h, s = rng.normal(size=(a, b)), 0.05 * rng.normal(size=(a, b))
        if (rx, ry, rz, i) == (0, 0, 0, j):
            h, s = h + h.T, s + s.T + np.eye(a)
            edges.append((rx, ry, rz, i, j)), hv.append(h.ravel()), sv.append(s.ravel())
        else:
            edges += [(rx, ry, rz, i, j), (-rx, -ry, -rz, j, i)]
            hv += [h.ravel(), h.T.ravel()]
            sv += [s.ravel(), s.T.ravel()]
    return HamiltonianR(
        cell=np.diag([4.0, 5.0, 6.0]) + 0.3 * rng.normal(size=(3, 3)),
        positions=rng.normal(size=(2, 3)),
        numbers=numbers,
        basis=basis,
        edges=np.array(edges),
        h_values=np.concatenate(hv),
        s_values=np.concatenate(sv),
    )


def _bands(h: HamiltonianR, k_cart: np.ndarray) -> np.ndarray:
    from scipy.linalg import eigh

    return eigh(h.hk(k_cart).toarray(), h.sk(k_cart).toarray(), eigvals_only=True)


def test_rotate_blocks_invariants():
    h = _random_hamiltonian(seed=1)
    (m,) = _rotations(1, seed=11)
    rot = rotate_blocks(h, m)
    assert rot.hermiticity_error() < 1e-12
    assert np.abs(rot.positions - h.positions @ m.T).max() < 1e-14
    assert np.abs(rot.bond_vectors - h.bond_vectors @ m.T).max() < 1e-13
    # bands are invariant: spectrum of H'(M k) equals that of H(k)
    k = np.array([0.31, -0.12, 0.4])
    assert np.abs(_bands(rot, m @ k) - _bands(h, k)).max() < 1e-10
    # rotating back (and by an improper rotation and back) is the identity
    back = rotate_blocks(rot, m.T)
    assert np.abs(back.h_values - h.h_values).max() < 1e-12
    assert np.abs(back.s_values - h.s_values).max() < 1e-12
    inv = rotate_blocks(rotate_blocks(h, -m), -m.T)
    assert np.abs(inv.h_values - h.h_values).max() < 1e-12
    # a non-trivial rotation does change the blocks
    assert np.abs(rot.h_values - h.h_values).max() > 0.1


def test_rotate_mote2_bands_invariant():
    from aiida_mlepi.core.io import read_deeph_legacy

    h = read_deeph_legacy(shared_fixture("deeph", "legacy", "MoTe2"))
    (m,) = _rotations(1, seed=21)
    rot = rotate_blocks(h, m)
    k = 0.37 * h.reciprocal_cell()[0] + 0.11 * h.reciprocal_cell()[1]
    assert np.abs(_bands(rot, m @ k) - _bands(h, k)).max() < 1e-9
    assert rot.hermiticity_error() < 1e-7
