"""Twisted bilayer graphene and general stacking of two 2D lattices into one supercell.

Conventions (shared with :mod:`aiida_mlepi.core.structures`): rows of a cell are lattice
vectors in Å, the layers lie normal to z, ``pbc = (True, True, False)``, and the per-atom array
``layer_ids`` numbers the layers from the bottom (0) up.

Commensurate twisted bilayer graphene
-------------------------------------
Lopes dos Santos, Peres & Castro Neto, PRB 86, 155449 (2012), Sec. II; Shallcross, Sharma,
Kandelaki & Pankratov, PRB 81, 165105 (2010). With the 60° basis b1 = a(1, 0),
b2 = a(1/2, √3/2), the bottom-layer vector m b1 + (m+r) b2 coincides with the top-layer vector
(m+r) b1 + m b2 rotated by θ, where (m, r coprime, m ≥ 1, r ≥ 1)

    cos θ = (3m² + 3mr + r²/2) / (3m² + 3mr + r²).

The commensurate (moiré) cell holds N_cells = (3m² + 3mr + r²)/gcd(r, 3) primitive cells per
layer, so N_atoms = 4 (3m² + 3mr + r²)/gcd(r, 3) (checked against a brute-force sublattice
search in the tests). Supercell vectors (60° basis):
3 ∤ r: t1 = m b1 + (m+r) b2,  t2 = -(m+r) b1 + (2m+r) b2;
3 | r: t1 = (m + r/3) b1 + (r/3) b2,  t2 = -(r/3) b1 + (m + 2r/3) b2.
Here they are written in the 120° basis a1 = b1, a2 = b2 - b1 of
:func:`~aiida_mlepi.core.structures.hexagonal_cell` and t2 is replaced by t2 - t1 (120° cell).
Examples: (m, r) = (1, 1) → θ = 21.787°, 28 atoms; (31, 1) → θ = 1.0501°, 11908 atoms.

General stacking
----------------
:func:`find_supercell_match` enumerates every sublattice of the bottom lattice (Hermite normal
forms, increasing index), reduces its basis (Lagrange–Gauss), takes the nearest top-lattice
vectors as the top supercell, and measures the deformation that maps the top supercell onto the
bottom one. The top layer is then strained onto the common cell by :func:`stack_layers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np
from ase import Atoms

from .layers import LAYER_ARRAY, get_layer_ids, set_layer_ids
from .structures import (DEFAULT_VACUUM, GRAPHENE_INTERLAYER_DISTANCE, GRAPHENE_LATTICE_CONSTANT,
                         hexagonal_cell)

__all__ = [
    "StackingError", "CommensurateTwist", "commensurate_twist", "find_commensurate_twist",
    "twisted_bilayer_graphene", "SupercellMatch", "find_supercell_match", "stack_layers",
    "lattice_points_in_supercell",
]

#: primitive 120° graphene cell in units of the lattice constant (rows a1, a2)
_HEX_UNIT = np.array([[1.0, 0.0], [-0.5, 0.5 * np.sqrt(3.0)]])
#: fractional in-plane positions of the two graphene sublattices (A, B)
_GRAPHENE_BASIS = np.array([[0.0, 0.0], [1.0 / 3.0, 2.0 / 3.0]])


class StackingError(ValueError):
    """The requested twisted or stacked structure cannot be built."""


def _rotation(theta_rad: float) -> np.ndarray:
    c, s = np.cos(theta_rad), np.sin(theta_rad)
    return np.array([[c, -s], [s, c]])


def lattice_points_in_supercell(matrix: np.ndarray) -> np.ndarray:
    """Integer lattice points n (rows, primitive coordinates) inside the supercell ``matrix``.

    ``matrix`` (2×2 integer, rows = supercell vectors in primitive coordinates) defines the cell;
    the returned |det| points have supercell-fractional coordinates n·matrix⁻¹ in [0, 1)²,
    decided in exact integer arithmetic.
    """
    s = np.asarray(matrix)
    if s.shape != (2, 2) or not np.array_equal(s, np.rint(s)):
        raise StackingError(f"supercell matrix must be a 2x2 integer matrix, got {matrix!r}")
    s = s.astype(np.int64)
    det = int(s[0, 0] * s[1, 1] - s[0, 1] * s[1, 0])
    if det == 0:
        raise StackingError("supercell matrix is singular")
    corners = np.array([[0, 0], s[0], s[1], s[0] + s[1]])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    g0, g1 = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    n = np.column_stack([g0.ravel(), g1.ravel()])
    adj = np.array([[s[1, 1], -s[0, 1]], [-s[1, 0], s[0, 0]]], dtype=np.int64)
    k = n @ adj  # = det · fractional coordinates, exactly
    if det > 0:
        inside = ((k >= 0) & (k < det)).all(axis=1)
    else:
        inside = ((k <= 0) & (k > det)).all(axis=1)
    points = n[inside]
    if len(points) != abs(det):  # pragma: no cover - guaranteed by the lattice theory
        raise StackingError("internal error: wrong number of lattice points in the supercell")
    return points


def _tile_layer(cell2d: np.ndarray, frac_basis: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """In-plane Cartesian positions (Å) of a layer tiled over the supercell ``matrix``.

    Returns an array (n_cells, n_basis, 2) so that per-atom data can be tiled alongside.
    """
    points = lattice_points_in_supercell(matrix)
    origins = points @ cell2d
    basis = frac_basis @ cell2d
    return origins[:, None, :] + basis[None, :, :]


# --------------------------------------------------------------------------------------------
# commensurate twisted bilayer graphene
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommensurateTwist:
    """One commensurate twisted-bilayer-graphene cell (Lopes dos Santos et al. 2012)."""

    m: int
    r: int
    theta_deg: float  #: twist angle of the top layer, counter-clockwise, degrees
    n_cells: int  #: primitive cells per layer in the moiré cell
    #: rows = moiré vectors in the bottom layer's 120° primitive basis (a1 = a(1,0), a2 = a(-1/2,√3/2))
    bottom_matrix: np.ndarray

    @property
    def n_atoms(self) -> int:
        """Number of carbon atoms of the bilayer moiré cell (2 layers × 2 sublattices)."""
        return 4 * self.n_cells

    def supercell_vectors(self, a: float = GRAPHENE_LATTICE_CONSTANT) -> np.ndarray:
        """Moiré vectors (2×2, rows, Å) in the frame of the unrotated bottom layer."""
        return self.bottom_matrix @ (a * _HEX_UNIT)

    def moire_length(self, a: float = GRAPHENE_LATTICE_CONSTANT) -> float:
        """Moiré lattice constant |t1| (Å); equals a / (2 sin(θ/2)) when 3 ∤ r."""
        return float(np.linalg.norm(self.supercell_vectors(a)[0]))


def commensurate_twist(m: int, r: int = 1) -> CommensurateTwist:
    """Angle and moiré supercell of the commensurate twisted bilayer (m, r) (see module doc)."""
    if int(m) != m or int(r) != r or m < 1 or r < 1:
        raise StackingError(f"m and r must be positive integers, got m={m!r}, r={r!r}")
    m, r = int(m), int(r)
    g = gcd(m, r)
    if g != 1:
        raise StackingError(f"(m, r) = ({m}, {r}) share the factor {g}; use ({m // g}, {r // g}) "
                            f"which has the same angle and a {g}²-times smaller cell")
    big = 3 * m * m + 3 * m * r + r * r
    cos_theta = (3 * m * m + 3 * m * r + 0.5 * r * r) / big
    theta = float(np.degrees(np.arccos(np.clip(cos_theta, -1.0, 1.0))))
    if r % 3:
        matrix = np.array([[2 * m + r, m + r], [-(m + r), m]], dtype=np.int64)
        n_cells = big
    else:
        p = r // 3
        matrix = np.array([[m + 2 * p, p], [-p, m + p]], dtype=np.int64)
        n_cells = big // 3
    return CommensurateTwist(m=m, r=r, theta_deg=theta, n_cells=n_cells, bottom_matrix=matrix)


def find_commensurate_twist(theta_deg: float, tol_deg: float = 0.05,
                            max_atoms: int = 20000) -> CommensurateTwist:
    """Smallest commensurate TBG cell whose angle is within ``tol_deg`` of ``theta_deg``.

    Ties in the atom count are broken by the smaller angle error. Raises :class:`StackingError`
    if no cell with at most ``max_atoms`` atoms is close enough.
    """
    if not 0.0 < theta_deg < 60.0:
        raise StackingError(f"twist angle must lie in (0°, 60°), got {theta_deg}°")
    if tol_deg <= 0 or max_atoms < 4:
        raise StackingError("tol_deg must be positive and max_atoms at least 4")
    # N_atoms ≥ 4(3m²+3mr+r²)/3  ⇒  bounds on m and r
    limit = 3 * max_atoms / 4.0
    m_max = int(np.sqrt(limit / 3.0)) + 1
    r_max = int(np.sqrt(limit)) + 1
    mm, rr = np.meshgrid(np.arange(1, m_max + 1), np.arange(1, r_max + 1), indexing="ij")
    mm, rr = mm.ravel(), rr.ravel()
    coprime = np.gcd(mm, rr) == 1
    mm, rr = mm[coprime], rr[coprime]
    big = 3 * mm * mm + 3 * mm * rr + rr * rr
    n_atoms = np.where(rr % 3 == 0, 4 * big // 3, 4 * big)
    theta = np.degrees(np.arccos(np.clip((big - 0.5 * rr * rr) / big, -1.0, 1.0)))
    err = np.abs(theta - theta_deg)
    ok = (n_atoms <= max_atoms) & (err <= tol_deg)
    if not ok.any():
        raise StackingError(f"no commensurate twisted bilayer with ≤ {max_atoms} atoms lies within "
                            f"{tol_deg}° of {theta_deg}°; raise max_atoms or tol_deg")
    idx = np.flatnonzero(ok)
    best = idx[np.lexsort((err[idx], n_atoms[idx]))[0]]
    return commensurate_twist(int(mm[best]), int(rr[best]))


def twisted_bilayer_graphene(theta_deg: float | None = None, m: int | None = None, r: int = 1,
                             a: float = GRAPHENE_LATTICE_CONSTANT,
                             interlayer_distance: float = GRAPHENE_INTERLAYER_DISTANCE,
                             vacuum: float = DEFAULT_VACUUM, *, tol_deg: float = 0.05,
                             max_atoms: int = 20000) -> Atoms:
    """Commensurate twisted bilayer graphene (layer ids 0 = bottom, 1 = top), pbc (T, T, F).

    Give either ``theta_deg`` (the smallest commensurate cell within ``tol_deg`` is used) or the
    integers ``m`` (and ``r``). The top layer is the bottom layer rotated by θ counter-clockwise
    about an atom (AA site at the origin) and shifted up by ``interlayer_distance`` (Å); the whole
    structure is then rotated so that the first moiré vector lies along x (120° hexagonal cell).
    ``atoms.info`` records ``twist_angle_deg``, ``twist_m``, ``twist_r``.
    """
    if (theta_deg is None) == (m is None):
        raise StackingError("give exactly one of theta_deg or m")
    if a <= 0 or interlayer_distance <= 0 or vacuum < 0:
        raise StackingError("a and interlayer_distance must be positive, vacuum non-negative (Å)")
    twist = (find_commensurate_twist(theta_deg, tol_deg, max_atoms) if theta_deg is not None
             else commensurate_twist(m, r))
    cell_b = a * _HEX_UNIT
    rot = _rotation(np.radians(twist.theta_deg))
    cell_t = cell_b @ rot.T
    moire = twist.bottom_matrix @ cell_b
    top_matrix_f = moire @ np.linalg.inv(cell_t)
    top_matrix = np.rint(top_matrix_f).astype(np.int64)
    if np.abs(top_matrix_f - top_matrix).max() > 1e-6:  # pragma: no cover - guaranteed by theory
        raise StackingError("internal error: top layer not commensurate with the moiré cell")
    xy_bottom = _tile_layer(cell_b, _GRAPHENE_BASIS, twist.bottom_matrix).reshape(-1, 2)
    xy_top = _tile_layer(cell_t, _GRAPHENE_BASIS, top_matrix).reshape(-1, 2)
    # rotate the frame so that t1 ∥ x; t2 - t1 is then the second vector of hexagonal_cell
    phi = np.arctan2(moire[0, 1], moire[0, 0])
    frame = _rotation(-phi)
    xy = np.vstack([xy_bottom, xy_top]) @ frame.T
    length = float(np.linalg.norm(moire[0]))
    c = vacuum + interlayer_distance
    cell = hexagonal_cell(length, c)
    z0 = 0.5 * (c - interlayer_distance)
    n_b, n_t = len(xy_bottom), len(xy_top)
    z = np.concatenate([np.full(n_b, z0), np.full(n_t, z0 + interlayer_distance)])
    atoms = Atoms(symbols=np.full(n_b + n_t, "C"), positions=np.column_stack([xy, z]), cell=cell,
                  pbc=(True, True, False))
    atoms.wrap(eps=1e-9)
    set_layer_ids(atoms, np.concatenate([np.zeros(n_b, int), np.ones(n_t, int)]))
    atoms.info.update(twist_angle_deg=twist.theta_deg, twist_m=twist.m, twist_r=twist.r)
    return atoms


# --------------------------------------------------------------------------------------------
# general two-lattice stacking
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupercellMatch:
    """A common supercell of two 2D lattices: ``bottom_matrix @ A_bottom ≈ top_matrix @ A_top``.

    ``deformation`` G (2×2, acting on column vectors) maps the top supercell exactly onto the
    bottom one: t_bottom = G t_top. Its polar decomposition G = R U gives the strain
    ``strain = U - 1`` (Biot strain of the top layer, dimensionless) and the residual rotation.
    """

    bottom_matrix: np.ndarray  #: (2, 2) int, rows = supercell vectors in bottom primitive coords
    top_matrix: np.ndarray  #: (2, 2) int, same cell in (rotated) top primitive coords
    deformation: np.ndarray  #: (2, 2) G
    strain: np.ndarray  #: (2, 2) symmetric U - 1
    max_strain: float  #: largest |principal strain|
    rotation_deg: float  #: residual rotation angle of R (degrees, counter-clockwise)
    twist_deg: float  #: rigid rotation applied to the top lattice before matching (degrees)

    @property
    def n_bottom_cells(self) -> int:
        return int(round(abs(np.linalg.det(self.bottom_matrix))))

    @property
    def n_top_cells(self) -> int:
        return int(round(abs(np.linalg.det(self.top_matrix))))


def _hnf_matrices(d_lo: int, d_hi: int) -> np.ndarray:
    """All 2×2 Hermite normal forms [[a, b], [0, d]] (0 ≤ b < d) with index a·d in [d_lo, d_hi)."""
    out = []
    for index in range(d_lo, d_hi):
        for a in range(1, index + 1):
            if index % a:
                continue
            d = index // a
            b = np.arange(d)
            block = np.zeros((d, 2, 2), dtype=np.int64)
            block[:, 0, 0], block[:, 0, 1], block[:, 1, 1] = a, b, d
            out.append(block)
    return np.concatenate(out) if out else np.zeros((0, 2, 2), dtype=np.int64)


def _gauss_reduce(mats: np.ndarray, cell: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Lagrange–Gauss-reduce the supercell bases ``mats @ cell`` (vectorised), returning new mats."""
    mats = mats.copy()
    active = np.arange(len(mats))
    for _ in range(max_iter):
        if len(active) == 0:
            break
        sub = mats[active]
        vec = sub @ cell  # (K, 2, 2)
        n0 = np.einsum("ki,ki->k", vec[:, 0], vec[:, 0])
        n1 = np.einsum("ki,ki->k", vec[:, 1], vec[:, 1])
        swap = n1 < n0
        sub[swap] = sub[swap][:, ::-1]
        vec[swap] = vec[swap][:, ::-1]
        n0 = np.where(swap, n1, n0)
        mu = np.rint(np.einsum("ki,ki->k", vec[:, 0], vec[:, 1]) / n0).astype(np.int64)
        sub[:, 1] -= mu[:, None] * sub[:, 0]
        mats[active] = sub
        active = active[(mu != 0) | swap]
    # right-handed: det > 0 (flip the second vector if needed)
    det = mats[:, 0, 0] * mats[:, 1, 1] - mats[:, 0, 1] * mats[:, 1, 0]
    mats[det < 0, 1] *= -1
    return mats


def _in_plane_cell(atoms: Atoms, name: str) -> np.ndarray:
    """2×2 in-plane cell (Å) after checking that ``atoms`` is a z-normal 2D slab."""
    if not (atoms.pbc[0] and atoms.pbc[1]):
        raise StackingError(f"{name}: the structure must be periodic along a1 and a2")
    cell = np.asarray(atoms.cell)
    if np.abs(cell[:2, 2]).max() > 1e-8 or np.abs(cell[2, :2]).max() > 1e-8 or cell[2, 2] <= 0:
        raise StackingError(f"{name}: a1, a2 must lie in the xy plane and a3 along +z")
    area = np.linalg.det(cell[:2, :2])
    if abs(area) < 1e-8:
        raise StackingError(f"{name}: the in-plane cell is degenerate")
    return cell[:2, :2].copy()


def find_supercell_match(bottom_cell: np.ndarray, top_cell: np.ndarray, *, max_strain: float = 0.02,
                         max_cells: int = 500, twist_deg: float = 0.0,
                         max_rotation_deg: float = 0.01, atoms_per_cell: tuple[int, int] = (1, 1)
                         ) -> SupercellMatch:
    """Smallest common supercell of two in-plane lattices (rows, Å).

    The top lattice is first rotated by ``twist_deg``; a match is accepted when the top supercell
    can be mapped onto the bottom one with principal strains ≤ ``max_strain`` and a residual
    rotation ≤ ``max_rotation_deg``. Sublattices of the bottom lattice with up to ``max_cells``
    primitive cells are searched; the match with the fewest atoms (``atoms_per_cell`` weights),
    then the smallest strain, is returned.
    """
    a1 = np.asarray(bottom_cell, dtype=float)
    a2 = np.asarray(top_cell, dtype=float) @ _rotation(np.radians(twist_deg)).T
    if a1.shape != (2, 2) or a2.shape != (2, 2):
        raise StackingError("cells must be 2x2 (in-plane rows, Å)")
    if not 0 < max_strain < 0.5 or max_cells < 1 or max_rotation_deg < 0:
        raise StackingError("need 0 < max_strain < 0.5, max_cells ≥ 1, max_rotation_deg ≥ 0")
    area1, area2 = abs(np.linalg.det(a1)), abs(np.linalg.det(a2))
    if area1 < 1e-8 or area2 < 1e-8:
        raise StackingError("degenerate in-plane cell")
    n1, n2 = atoms_per_cell
    inv2 = np.linalg.inv(a2)
    best: tuple | None = None
    chunk = 16
    for d_lo in range(1, max_cells + 1, chunk):
        d_hi = min(d_lo + chunk, max_cells + 1)
        if best is not None:
            fewest_top = d_lo * area1 / area2 / (1 + max_strain) ** 2
            if d_lo * n1 + fewest_top * n2 > best[0]:
                break
        m1 = _gauss_reduce(_hnf_matrices(d_lo, d_hi), a1)
        t1 = m1 @ a1
        m2 = np.rint(t1 @ inv2).astype(np.int64)
        det2 = m2[:, 0, 0] * m2[:, 1, 1] - m2[:, 0, 1] * m2[:, 1, 0]
        det1 = np.rint(np.linalg.det(t1) / np.linalg.det(a1)).astype(np.int64)
        valid = det2 * np.sign(np.linalg.det(a2)) * np.sign(np.linalg.det(a1)) > 0
        if not valid.any():
            continue
        m1, m2, t1, det1, det2 = m1[valid], m2[valid], t1[valid], det1[valid], det2[valid]
        t2 = m2 @ a2
        # rows: t1 = t2 @ F  →  column form G = Fᵀ maps top onto bottom vectors
        f = np.linalg.solve(t2, t1)
        g = np.transpose(f, (0, 2, 1))
        w, sig, vt = np.linalg.svd(g)
        strain_max = np.abs(sig - 1.0).max(axis=1)
        rmat = w @ vt
        rot_deg = np.degrees(np.arctan2(rmat[:, 1, 0], rmat[:, 0, 0]))
        ok = (strain_max <= max_strain) & (np.abs(rot_deg) <= max_rotation_deg)
        if not ok.any():
            continue
        n_atoms = np.abs(det1) * n1 + np.abs(det2) * n2
        idx = np.flatnonzero(ok)
        k = idx[np.lexsort((np.abs(rot_deg[idx]), strain_max[idx], n_atoms[idx]))[0]]
        if best is None or (n_atoms[k], strain_max[k]) < best[:2]:
            u = vt[k].T @ np.diag(sig[k]) @ vt[k]
            best = (int(n_atoms[k]), float(strain_max[k]), SupercellMatch(
                bottom_matrix=m1[k], top_matrix=m2[k], deformation=g[k], strain=u - np.eye(2),
                max_strain=float(strain_max[k]), rotation_deg=float(rot_deg[k]),
                twist_deg=float(twist_deg)))
    if best is None:
        raise StackingError(f"no common supercell with ≤ {max_cells} bottom cells, strain ≤ "
                            f"{max_strain} and residual rotation ≤ {max_rotation_deg}°; "
                            "raise max_atoms / max_strain or change the twist")
    return best[2]


def stack_layers(bottom: Atoms, top: Atoms, interlayer_distance: float, max_strain: float = 0.02,
                 max_atoms: int = 1000, *, twist_deg: float = 0.0, max_rotation_deg: float = 0.01,
                 vacuum: float = DEFAULT_VACUUM,
                 top_shift: tuple[float, float] = (0.0, 0.0)) -> Atoms:
    """Stack ``top`` on ``bottom`` (both z-normal 2D slabs) in one common supercell.

    The top slab is rotated by ``twist_deg`` about z, a common supercell is found with
    :func:`find_supercell_match` (at most ``max_atoms`` atoms in total), and the top slab is
    strained (homogeneously, in plane) onto it; the bottom slab is not deformed. ``top_shift``
    translates the top slab by that fraction of its (rotated) primitive vectors before the strain
    sets the registry: e.g. ``twist_deg=180, top_shift=(2/3, 1/3)`` on two hBN or 1H-MoS2
    layers (second species at (1/3, 2/3)) gives AA′ / 2H stacking. The lowest top
    atom is placed ``interlayer_distance`` (Å) above the highest bottom atom; ``vacuum`` Å of
    vacuum separate the periodic images along z. Bottom layers keep their ``layer_ids``; the top
    layers are numbered after them. ``atoms.info`` records the match: ``stacking_bottom_matrix``,
    ``stacking_top_matrix``, ``stacking_top_strain`` (2×2 Biot strain of the top slab),
    ``stacking_max_strain``, ``stacking_rotation_deg`` (residual) and ``stacking_twist_deg``.
    """
    if interlayer_distance <= 0 or vacuum < 0:
        raise StackingError("interlayer_distance must be positive and vacuum non-negative (Å)")
    cell_b = _in_plane_cell(bottom, "bottom")
    cell_t = _in_plane_cell(top, "top")
    nat_b, nat_t = len(bottom), len(top)
    if nat_b == 0 or nat_t == 0:
        raise StackingError("both slabs need at least one atom")
    match = find_supercell_match(cell_b, cell_t, max_strain=max_strain,
                                 max_cells=max(1, max_atoms // nat_b), twist_deg=twist_deg,
                                 max_rotation_deg=max_rotation_deg,
                                 atoms_per_cell=(nat_b, nat_t))
    if match.n_bottom_cells * nat_b + match.n_top_cells * nat_t > max_atoms:
        raise StackingError(f"the smallest common supercell has more than {max_atoms} atoms")
    rot = _rotation(np.radians(twist_deg))
    cell_t_rot = cell_t @ rot.T
    frac_b = bottom.get_scaled_positions(wrap=False)
    shift = np.asarray(top_shift, dtype=float)
    if shift.shape != (2,) or not np.isfinite(shift).all():
        raise StackingError(f"top_shift must be two finite fractions, got {top_shift!r}")
    frac_t = top.get_scaled_positions(wrap=False)
    frac_t[:, :2] += shift
    xy_b = _tile_layer(cell_b, frac_b[:, :2], match.bottom_matrix)  # (cells, nat_b, 2)
    xy_t = _tile_layer(cell_t_rot, frac_t[:, :2], match.top_matrix)
    xy_t = xy_t @ match.deformation.T  # strain (and residual rotation) onto the common cell
    zb = bottom.positions[:, 2]
    zt = top.positions[:, 2]
    zb_rel = zb - zb.min()
    zt_rel = zt - zt.min() + (zb.max() - zb.min()) + interlayer_distance
    thickness = zt_rel.max()
    z0 = 0.5 * vacuum
    ncell_b, ncell_t = xy_b.shape[0], xy_t.shape[0]
    pos_b = np.concatenate([xy_b, np.broadcast_to(z0 + zb_rel, (ncell_b, nat_b))[..., None]], -1)
    pos_t = np.concatenate([xy_t, np.broadcast_to(z0 + zt_rel, (ncell_t, nat_t))[..., None]], -1)
    ids_b = get_layer_ids(bottom)
    ids_b = np.unique(ids_b, return_inverse=True)[1]
    ids_t = np.unique(get_layer_ids(top), return_inverse=True)[1] + ids_b.max() + 1
    numbers = np.concatenate([np.tile(bottom.numbers, ncell_b), np.tile(top.numbers, ncell_t)])
    cell = np.zeros((3, 3))
    cell[:2, :2] = match.bottom_matrix @ cell_b
    cell[2, 2] = thickness + vacuum
    atoms = Atoms(numbers=numbers, positions=np.vstack([pos_b.reshape(-1, 3), pos_t.reshape(-1, 3)]),
                  cell=cell, pbc=(True, True, False))
    masses = np.concatenate([np.tile(bottom.get_masses(), ncell_b), np.tile(top.get_masses(), ncell_t)])
    atoms.set_masses(masses)
    atoms.wrap(eps=1e-9)
    if LAYER_ARRAY in atoms.arrays:  # pragma: no cover - fresh Atoms has none
        del atoms.arrays[LAYER_ARRAY]
    set_layer_ids(atoms, np.concatenate([np.tile(ids_b, ncell_b), np.tile(ids_t, ncell_t)]))
    atoms.info.update(
        stacking_bottom_matrix=match.bottom_matrix.tolist(),
        stacking_top_matrix=match.top_matrix.tolist(),
        stacking_top_strain=match.strain.tolist(),
        stacking_max_strain=match.max_strain,
        stacking_rotation_deg=match.rotation_deg,
        stacking_twist_deg=float(twist_deg),
        stacking_top_shift=shift.tolist(),
    )
    return atoms
