"""Fermi velocity of (multi-layer) graphene from a supercell :class:`HamiltonianR`.

Units: energies eV, k Å⁻¹ (Cartesian), velocities in eV·Å (= dE/dk) and m/s (÷ħ).

Definition used throughout the package (paper Fig. 4: ⟨v_F⟩ of bilayer graphene vs T)
--------------------------------------------------------------------------------------
1. **Valleys.** The primitive cell (``primitive_cell``, 3×3 Å, rows a1 a2 a3, hexagonal in plane)
   has two inequivalent Brillouin-zone corners K and K' = −K. They are found generally: of the
   eight classes (m1 b1 + m2 b2)/3 mod G, the corner classes are those whose shortest
   representatives come in threes (the three equivalent corners of the hexagon).
2. **Folding.** In an n1×n2 supercell (cell ``h.cell``) a primitive k appears at
   k_sc = k − G_sc, the image nearest Γ of the supercell reciprocal lattice. K and K' fold onto
   the same point when k_K − k_K' is a supercell reciprocal vector; for n1 = n2 = n that happens
   iff n % 3 == 0, and then both fold to Γ. g = number of valleys folded onto a point (2 or 1).
3. **Fermi level.** With ``n_electrons`` (4 per C for sp³, 1 per C for π-only, spin-degenerate
   bands) N_occ = n_electrons/2 states are filled; at each folded point E_F is the midpoint of
   states N_occ−1 and N_occ (0-based), i.e. the Dirac/charge-neutrality point; E_F is their mean.
4. **Chord velocity** (``method="chord"``, default). AB bilayer bands are parabolic at K, so the
   slope there is 0 and useless. Instead
   v_F = [ε̄_c(k_r) − ε̄_v(k_r)] / (2 ħ k_r)
   at distance ``k_radius`` (default 0.05 Å⁻¹) from each folded point along ``n_directions``
   (default 6) in-plane directions, averaged (± pairs cancel trigonal warping, which is odd in
   the direction). ε̄_c / ε̄_v are the means of the g lowest conduction / g highest valence states
   (g valleys per point): averaging inside the group makes the number insensitive to how the
   valleys' states are ordered, to degeneracies and to band crossings near E_F. For monolayer
   graphene it tends to the Dirac velocity 3|t|a_cc/(2ħ) as k_r → 0; for the AB bilayer with
   γ1 only it is [√(γ1²/4 + (ħvk_r)²) − γ1/2]/(ħ k_r), the chord of the low-energy band.
5. **Hellmann–Feynman** (``method="hellmann-feynman"``): the group velocities
   dε_n/dk = ⟨n|∂H/∂k − ε_n ∂S/∂k|n⟩ along each direction at the same k points, with
   degenerate subspaces diagonalised (states within ``degeneracy_tol`` are rotated to diagonalise
   the velocity operator and ordered by velocity, i.e. by band index just beyond k); then
   v = (v̄_c − v̄_v)/2. It equals the chord velocity for a linear cone (monolayer) and gives the
   local slope otherwise.

Solver and library choice
-------------------------
Dense ``scipy.linalg.eigh(H, S, subset_by_index=…)`` of the states around E_F for
N_orb ≤ ``sparse_threshold`` (default 4000); sparse shift-invert ``eigsh(sigma=E_F)`` above it.
The sparse path cannot count electrons: pass ``fermi_level`` (e.g. the Dirac point of the
primitive cell, which folding leaves unchanged), otherwise one dense solve per folded point
fixes E_F by the electron count (minutes at 10⁴ orbitals).

Measured (1 thread, 2-core shared box, sp³ reference engine, AB bilayer, one k 0.05 Å⁻¹ off Γ)::

    =============  ===============================  =========================  ======================
    N_orb          ours: dense eigh subset / eigsh   sisl: eigh (all) / eigsh   H(k) assembly ours/sisl
    =============  ===============================  =========================  ======================
    576 (6×6)      57 ms / 40 ms                     55 ms / no convergence (*)    1.8 / 8.3 ms
    2304 (12×12)   3.8 s / 1.5 s                     3.6 s / –                  7.8 / 33 ms
    9216 (24×24)   (dense: minutes) / 14 s           – / 15 s (scipy on sisl Hk) 46 / 128 ms
    =============  ===============================  =========================  ======================

(*) ``sisl.Hamiltonian.eigsh(sigma=E_F)`` raised ArpackNoConvergence at 576 orbitals; scipy's
shift-invert on sisl's ``Hk`` matrix works and costs the same as on ours. Whole observable
(6 directions): 576 orbitals 0.42 s dense / 0.27 s sparse; 9216 orbitals 76 s sparse; all give
v_F = 3.052934412e5 m/s (k_r = 0.05 Å⁻¹), the primitive-cell value.
sisl (:func:`~aiida_mlepi.core.bands.to_sisl`) reproduces our eigenvalues to 1e−14, but it is
no faster (the eigensolver dominates), its k-matrix assembly is 3–4× slower, it needs a
geometry/supercell-index conversion per structure (0.5 s), and it has no ∂H/∂k for the
Hellmann–Feynman path. The observable therefore uses our own Bloch sums
(``HamiltonianR.hk``/``sk``/``dhk``, CSR) by default; sisl is kept as the independent cross-check.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .bands import SPARSE_THRESHOLD, choose_solver, eigh_dense, eigh_sparse
from .hamiltonian import HamiltonianR
from .units import EV_ANGSTROM_TO_M_PER_S

DEFAULT_K_RADIUS = 0.05  #: Å⁻¹, distance from the folded K at which the chord is taken
DEFAULT_DIRECTIONS = 6  #: in-plane directions averaged over


class ObservableInputError(ValueError):
    """Bad input to an observable (cell, electron count, parameters)."""


@dataclass(frozen=True)
class FoldedValley:
    """A point of the supercell Brillouin zone onto which primitive valleys fold."""

    k_cart: np.ndarray  #: Å⁻¹, the image nearest Γ
    k_frac: np.ndarray  #: fractional coordinates in the supercell reciprocal basis
    valleys: tuple[str, ...]  #: names of the primitive valleys folded here ('K', "K'")

    @property
    def multiplicity(self) -> int:
        return len(self.valleys)


@dataclass
class FermiVelocity:
    """Result of :func:`fermi_velocity` (see the module docstring for the definition)."""

    value_m_per_s: float  #: m/s
    value_ev_angstrom: float  #: ħ v_F in eV·Å
    k_radius: float  #: Å⁻¹
    directions: np.ndarray  #: (n_dir, 3) unit vectors
    fermi_level_ev: float  #: eV
    method: str  #: 'chord' or 'hellmann-feynman'
    per_direction: np.ndarray  #: (n_points, n_dir) velocity along each direction, m/s
    folded_points: list[FoldedValley] = field(default_factory=list)
    solver: str = "dense"


# ---------------------------------------------------------------------------- valleys and folding
def _reciprocal(cell: np.ndarray) -> np.ndarray:
    return 2.0 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float).reshape(3, 3)).T


def valley_points(primitive_cell: np.ndarray, tol: float = 1e-8) -> dict[str, np.ndarray]:
    """Cartesian K and K' (Å⁻¹) of a cell hexagonal in the a1–a2 plane (nearest-Γ images).

    Raises :class:`ObservableInputError` if the in-plane lattice is not hexagonal.
    """
    b = _reciprocal(primitive_cell)[:2]
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=2)))
    corners = []
    for m in itertools.product(range(3), repeat=2):
        if m == (0, 0):
            continue
        reps = (np.asarray(m) / 3.0 + shifts) @ b
        norms = np.linalg.norm(reps, axis=1)
        close = np.flatnonzero(norms < norms.min() * (1 + tol) + tol)
        if len(close) == 3:
            corners.append(reps[close[np.lexsort(reps[close].T[::-1])[-1]]])
    if len(corners) != 2:
        raise ObservableInputError(
            "primitive_cell is not hexagonal in the a1-a2 plane: the K/K' valleys are undefined")
    k = max(corners, key=lambda v: (round(v[0], 9), round(v[1], 9)))
    return {"K": k, "K'": -k}


def fold(k_cart: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k − G of the reciprocal lattice of ``cell`` nearest Γ: (Cartesian Å⁻¹, fractional)."""
    rec = _reciprocal(cell)
    frac = np.asarray(k_cart, dtype=float) @ np.linalg.inv(rec)
    frac = frac - np.round(frac)
    best = None
    for n in itertools.product((-1, 0, 1), repeat=3):
        f = frac + np.asarray(n)
        cart = f @ rec
        if best is None or np.linalg.norm(cart) < np.linalg.norm(best[0]) - 1e-12:
            best = (cart, f)
    return best


def folded_valleys(primitive_cell: np.ndarray, supercell_cell: np.ndarray,
                   tol: float = 1e-6) -> list[FoldedValley]:
    """Where K and K' of ``primitive_cell`` fold in the Brillouin zone of ``supercell_cell``.

    The supercell must be an integer combination of the primitive vectors in plane
    (raises :class:`ObservableInputError` otherwise). Returns one :class:`FoldedValley` per
    distinct point (one with both valleys if they coincide, e.g. Γ for n×n with n % 3 == 0).
    """
    prim = np.asarray(primitive_cell, dtype=float).reshape(3, 3)
    sc = np.asarray(supercell_cell, dtype=float).reshape(3, 3)
    mult = sc[:2, :2] @ np.linalg.inv(prim[:2, :2])
    if np.abs(mult - np.round(mult)).max() > 1e-6:
        raise ObservableInputError(
            f"the supercell is not an integer multiple of the primitive cell in plane: {mult}")
    points: list[FoldedValley] = []
    for name, k in valley_points(prim).items():
        cart, frac = fold(k, sc)
        for i, p in enumerate(points):
            diff = frac - p.k_frac
            if np.abs(diff - np.round(diff)).max() < tol:
                points[i] = FoldedValley(p.k_cart, p.k_frac, p.valleys + (name,))
                break
        else:
            points.append(FoldedValley(cart, frac, (name,)))
    return points


def in_plane_directions(n: int = DEFAULT_DIRECTIONS, angle_offset: float = 0.0) -> np.ndarray:
    """(n, 3) unit vectors at angles offset + 2π m/n in the xy plane (radians)."""
    if n < 1:
        raise ObservableInputError("the number of directions must be at least 1")
    ang = angle_offset + 2.0 * np.pi * np.arange(n) / n
    return np.column_stack([np.cos(ang), np.sin(ang), np.zeros(n)])


# ---------------------------------------------------------------------------- states near E_F
def _occupied_count(n_electrons: int, n_orbitals: int) -> int:
    if n_electrons <= 0 or n_electrons % 2:
        raise ObservableInputError(
            f"n_electrons must be a positive even number (spin-degenerate bands), got {n_electrons}")
    n_occ = n_electrons // 2
    if n_occ >= n_orbitals:
        raise ObservableInputError(
            f"{n_electrons} electrons fill all {n_orbitals} orbitals: no conduction band")
    return n_occ


def _group_states(h: HamiltonianR, k: np.ndarray, n_occ: int, g: int, solver: str,
                  fermi_level: float, margin: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Eigenpairs around E_F with the index (within them) of the first conduction state."""
    if solver == "dense":
        lo = max(0, n_occ - g - margin)
        hi = min(h.num_orbitals - 1, n_occ + g - 1 + margin)
        vals, vecs = eigh_dense(h, k, (lo, hi))
        return vals, vecs, n_occ - lo
    n_states = 2 * (g + margin)
    vals, vecs = eigh_sparse(h, k, fermi_level, n_states)
    first_c = int(np.searchsorted(vals, fermi_level))
    if first_c < g or n_states - first_c < g:
        raise ObservableInputError(
            f"shift-invert around E_F = {fermi_level:.4f} eV found {first_c} valence and "
            f"{n_states - first_c} conduction states; need {g} of each (check fermi_level)")
    return vals, vecs, first_c


def _velocities(h: HamiltonianR, k: np.ndarray, direction: np.ndarray, vals: np.ndarray,
                vecs: np.ndarray, degeneracy_tol: float) -> np.ndarray:
    """dε/dk along ``direction`` (eV·Å) of the given states, degenerate subspaces diagonalised."""
    dh = sum(direction[a] * h.dhk(k, a) for a in range(3) if direction[a] != 0.0)
    ds = None
    if h.s_values is not None:
        ds = sum(direction[a] * h.dsk(k, a) for a in range(3) if direction[a] != 0.0)
    out = np.empty(len(vals))
    start = 0
    while start < len(vals):
        stop = start + 1
        while stop < len(vals) and vals[stop] - vals[start] < degeneracy_tol:
            stop += 1
        e = vals[start:stop].mean()
        v = vecs[:, start:stop]
        op = dh @ v if ds is None else dh @ v - e * (ds @ v)
        block = v.conj().T @ op
        out[start:stop] = np.linalg.eigvalsh(0.5 * (block + block.conj().T))
        start = stop
    return out


def fermi_velocity(h: HamiltonianR, primitive_cell: np.ndarray, n_electrons: int, *,
                   k_radius: float = DEFAULT_K_RADIUS, n_directions: int = DEFAULT_DIRECTIONS,
                   angle_offset: float = 0.0, method: str = "chord", solver: str = "auto",
                   sparse_threshold: int = SPARSE_THRESHOLD, fermi_level: float | None = None,
                   degeneracy_tol: float = 1e-6) -> FermiVelocity:
    """Fermi velocity of the (super)cell Hamiltonian ``h`` (definition: module docstring).

    ``primitive_cell`` (3×3 Å) defines the valleys, ``n_electrons`` the filling (4 per C for the
    sp³ basis, 1 per C for π-only). ``fermi_level`` (eV) is only needed by the sparse solver
    (computed by one dense solve at the folded point if omitted).
    """
    if method not in ("chord", "hellmann-feynman"):
        raise ObservableInputError(f"unknown method {method!r}: use 'chord' or 'hellmann-feynman'")
    if not k_radius > 0:
        raise ObservableInputError(f"k_radius must be positive (Å⁻¹), got {k_radius}")
    solver = choose_solver(h, solver, sparse_threshold)
    n_occ = _occupied_count(n_electrons, h.num_orbitals)
    points = folded_valleys(primitive_cell, h.cell)
    dirs = in_plane_directions(n_directions, angle_offset)
    margin = 2 if method == "hellmann-feynman" else 0

    for p in points:
        if n_occ < p.multiplicity or n_occ + p.multiplicity > h.num_orbitals:
            raise ObservableInputError("too few states around E_F for the folded valleys")
    if fermi_level is None:  # electron count at the folded points (one dense solve each)
        ef_points = []
        for p in points:
            vals, _, first_c = _group_states(h, p.k_cart, n_occ, p.multiplicity, "dense", 0.0, 0)
            ef_points.append(0.5 * (vals[first_c - 1] + vals[first_c]))
        e_f = float(np.mean(ef_points))
    else:
        e_f = float(fermi_level)

    per_direction = np.empty((len(points), len(dirs)))
    for ip, p in enumerate(points):
        g = p.multiplicity
        for idir, d in enumerate(dirs):
            k = p.k_cart + k_radius * d
            vals, vecs, first_c = _group_states(h, k, n_occ, g, solver, e_f, margin)
            if method == "chord":
                ec = vals[first_c:first_c + g].mean()
                ev = vals[first_c - g:first_c].mean()
                per_direction[ip, idir] = (ec - ev) / (2.0 * k_radius)
            else:
                # within a degenerate subspace velocities come ascending = band order beyond k
                vel = _velocities(h, k, d, vals, vecs, degeneracy_tol)
                per_direction[ip, idir] = 0.5 * (vel[first_c:first_c + g].mean()
                                                 - vel[first_c - g:first_c].mean())
    value = float(per_direction.mean())
    return FermiVelocity(value_m_per_s=value * EV_ANGSTROM_TO_M_PER_S, value_ev_angstrom=value,
                         k_radius=float(k_radius), directions=dirs, fermi_level_ev=e_f,
                         method=method, per_direction=per_direction * EV_ANGSTROM_TO_M_PER_S,
                         folded_points=points, solver=solver)
