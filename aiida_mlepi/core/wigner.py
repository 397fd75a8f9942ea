"""Rotation matrices of real atomic orbitals (real-spherical-harmonic Wigner-D), OpenMX order.

Orbital order per shell (OpenMX / DeepH legacy, see :data:`aiida_mlepi.core.hamiltonian.ORBITAL_ORDER`):

* l = 0: s
* l = 1: px, py, pz
* l = 2: d3z²−r², dx²−y², dxy, dxz, dyz
* l = 3: f5z³−3zr², f5xz²−xr², f5yz²−yr², fz(x²−y²), fxyz, fx³−3xy², f3yx²−y³
  (OpenMX manual, "Orbital ordering"; m = 0, +1, −1, +2, −2, +3, −3. Not present in the
  test fixtures, so only checked for orthogonality/homomorphism, not against DFT data.)

Every orbital is a real solid harmonic with a positive coefficient (no Condon–Shortley phase),
normalised on the unit sphere (standard real-spherical-harmonic constants).

Convention. A rotation (or improper rotation) ``rotation`` = M (3×3, acts on Cartesian column
vectors, r' = M r) maps an orbital φ to (O_M φ)(r) = φ(M⁻¹ r), and
``O_M φ_a = Σ_b φ_b D_ba(M)``. Then D(M₁M₂) = D(M₁) D(M₂), D^{l=1}(M) = M in (px, py, pz)
order, and parity (−1)^l is included automatically for det M = −1. When a structure is rotated,
r_i' = M r_i, its Hamiltonian blocks become H'_ij(R) = D_i H_ij(R) D_jᵀ (:func:`rotate_blocks`).

D is obtained by projecting the rotated harmonics on the unrotated ones with a product
Gauss–Legendre × uniform-φ quadrature that is exact for polynomials of degree ≤ 2·l_max.
"""

from __future__ import annotations

import numpy as np

from aiida_mlepi.core.hamiltonian import HamiltonianR

#: highest angular momentum with a defined OpenMX orbital order here
L_MAX = 3

#: ``SH_ORDER_FROM_OPENMX[l][k]`` is the OpenMX index of the k-th real harmonic in m = −l..l order
#: (the DeepH-dock "updated" layout, e3nn-style real SH without Condon–Shortley phase):
#: l = 1 (py, pz, px); l = 2 (dxy, dyz, d3z²−r², dxz, dx²−y²); l = 3 (m = −3..3).
SH_ORDER_FROM_OPENMX: dict[int, tuple[int, ...]] = {
    0: (0,),
    1: (1, 2, 0),
    2: (2, 4, 0, 3, 1),
    3: (6, 4, 2, 0, 1, 3, 5),
}

_ORTHOGONALITY_TOL = 1e-6


class RotationError(ValueError):
    """The given matrix is not a (proper or improper) rotation, or l is unsupported."""


def _check_l(l: int) -> None:
    if not 0 <= int(l) <= L_MAX:
        raise RotationError(f"angular momentum l={l} is not supported (0 <= l <= {L_MAX})")


def check_rotation(rotation: np.ndarray) -> np.ndarray:
    """Return ``rotation`` as a float (3, 3) array; raise :class:`RotationError` unless MᵀM = 1."""
    m = np.asarray(rotation, dtype=float)
    if m.shape != (3, 3):
        raise RotationError(f"a rotation must be a 3x3 matrix, got shape {m.shape}")
    err = float(np.abs(m.T @ m - np.eye(3)).max())
    if err > _ORTHOGONALITY_TOL:
        raise RotationError(f"matrix is not orthogonal (max |MᵀM − 1| = {err:.2e})")
    return m


def real_harmonics(l: int, xyz: np.ndarray) -> np.ndarray:
    """Real spherical harmonics of degree ``l`` in OpenMX order at points ``xyz`` (..., 3).

    The points are used as given (unit vectors give the normalised harmonics Y_lm(r̂); other
    lengths give the solid harmonics r^l Y_lm). Returns (..., 2l + 1).
    """
    _check_l(l)
    xyz = np.asarray(xyz, dtype=float)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    r2 = x * x + y * y + z * z
    pi = np.pi
    if l == 0:
        cols = [np.full_like(x, 0.5 / np.sqrt(pi))]
    elif l == 1:
        c = np.sqrt(3.0 / (4.0 * pi))
        cols = [c * x, c * y, c * z]
    elif l == 2:
        c = 0.5 * np.sqrt(15.0 / pi)
        cols = [
            0.25 * np.sqrt(5.0 / pi) * (3.0 * z * z - r2),
            0.5 * c * (x * x - y * y),
            c * x * y,
            c * x * z,
            c * y * z,
        ]
    else:  # l == 3
        c1 = 0.25 * np.sqrt(21.0 / (2.0 * pi))
        c2 = 0.25 * np.sqrt(105.0 / pi)
        c3 = 0.25 * np.sqrt(35.0 / (2.0 * pi))
        cols = [
            0.25 * np.sqrt(7.0 / pi) * z * (5.0 * z * z - 3.0 * r2),
            c1 * x * (5.0 * z * z - r2),
            c1 * y * (5.0 * z * z - r2),
            c2 * z * (x * x - y * y),
            2.0 * c2 * x * y * z,
            c3 * x * (x * x - 3.0 * y * y),
            c3 * y * (3.0 * x * x - y * y),
        ]
    return np.stack(cols, axis=-1)


def sphere_quadrature(degree: int = 2 * L_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (K, 3) and weights (K,) integrating polynomials of ``degree`` exactly on S².

    Weights sum to 4π.
    """
    n_theta = degree // 2 + 1
    n_phi = degree + 1
    mu, w_mu = np.polynomial.legendre.leggauss(n_theta)
    phi = 2.0 * np.pi * np.arange(n_phi) / n_phi
    sin_t = np.sqrt(1.0 - mu * mu)
    pts = np.stack(
        [
            np.outer(sin_t, np.cos(phi)),
            np.outer(sin_t, np.sin(phi)),
            np.outer(mu, np.ones_like(phi)),
        ],
        axis=-1,
    ).reshape(-1, 3)
    weights = np.outer(w_mu, np.full(n_phi, 2.0 * np.pi / n_phi)).ravel()
    return pts, weights


def wigner_d(l: int, rotation: np.ndarray) -> np.ndarray:
    """Real Wigner-D matrix (2l+1, 2l+1) of ``rotation`` for shell ``l`` in OpenMX order.

    ``O_M φ_a = Σ_b φ_b D_ba``; orthogonal; D(M₁M₂) = D(M₁)D(M₂); for l = 1, D = M.
    """
    _check_l(l)
    m = check_rotation(rotation)
    pts, w = sphere_quadrature(2 * l)
    y_ref = real_harmonics(l, pts)  # (K, 2l+1): Y_b(r_k)
    y_rot = real_harmonics(l, pts @ m)  # Y_a(Mᵀ r_k) = Y_a(M⁻¹ r_k)
    return (y_ref * w[:, None]).T @ y_rot


def orbital_rotation(shells: tuple[int, ...], rotation: np.ndarray) -> np.ndarray:
    """Block-diagonal rotation of an atom's orbitals, shells ``shells`` (tuple of l), OpenMX order."""
    blocks = [wigner_d(l, rotation) for l in shells]
    n = sum(b.shape[0] for b in blocks)
    out = np.zeros((n, n))
    start = 0
    for b in blocks:
        k = b.shape[0]
        out[start:start + k, start:start + k] = b
        start += k
    return out


def _rotate_values(h: HamiltonianR, values: np.ndarray, mats: dict[int, np.ndarray]) -> np.ndarray:
    """Apply H'_e = D_{Z_i} H_e D_{Z_j}ᵀ to every flattened block in ``values``."""
    out = np.empty_like(values)
    zi = h.numbers[h.edges[:, 3]]
    zj = h.numbers[h.edges[:, 4]]
    pairs = np.unique(np.column_stack([zi, zj]), axis=0) if len(h.edges) else np.empty((0, 2), int)
    for a, b in pairs.tolist():
        sel = np.nonzero((zi == a) & (zj == b))[0]
        da, db = mats[a], mats[b]
        size = da.shape[0] * db.shape[0]
        idx = h.block_offsets[sel][:, None] + np.arange(size)[None, :]
        blocks = values[idx].reshape(len(sel), da.shape[0], db.shape[0])
        out[idx] = np.einsum("ij,ejk,lk->eil", da, blocks, db).reshape(len(sel), size)
    return out


def rotate_blocks(h: HamiltonianR, rotation: np.ndarray) -> HamiltonianR:
    """Rigidly rotate a structure and its H/S blocks: r' = M r, cell rows rotated, H' = D H Dᵀ.

    ``rotation`` M acts on Cartesian column vectors (improper rotations allowed). Positions and
    cell are in Å, blocks keep their units (eV for H). The rotation is about the origin; the
    blocks do not depend on the rotation centre.
    """
    m = check_rotation(rotation)
    mats = {z: orbital_rotation(shells, m) for z, shells in h.basis.items()}
    h_values = _rotate_values(h, h.h_values, mats)
    s_values = None if h.s_values is None else _rotate_values(h, h.s_values, mats)
    return HamiltonianR(
        cell=h.cell @ m.T,
        positions=h.positions @ m.T,
        numbers=h.numbers.copy(),
        basis=dict(h.basis),
        edges=h.edges.copy(),
        h_values=h_values,
        s_values=s_values,
        pbc=h.pbc,
        metadata=dict(h.metadata),
    )


def kabsch_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Proper rotation M (det +1) minimising Σ |M (s_k − s̄) − (t_k − t̄)|² (Kabsch algorithm).

    ``source``, ``target``: (N, 3) positions (Å) of the same atoms in the same order.
    """
    s = np.asarray(source, dtype=float)
    t = np.asarray(target, dtype=float)
    if s.shape != t.shape or s.ndim != 2 or s.shape[1] != 3:
        raise ValueError(f"source and target must both be (N, 3) arrays, got {s.shape} and {t.shape}")
    if len(s) < 3:
        raise ValueError("at least 3 points are needed to determine a rotation")
    s = s - s.mean(axis=0)
    t = t - t.mean(axis=0)
    u, _, vt = np.linalg.svd(t.T @ s)  # cross-covariance Σ t sᵀ = U Σ Vᵀ
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt
