"""Band unfolding of supercell states onto the primitive Brillouin zone, for a localized basis.

Units: energies eV, k Å⁻¹ (Cartesian), lengths Å. Weights are dimensionless.

Definition (Popescu & Zunger, PRL 104, 236403 (2010), PRB 85, 085201 (2012); for atom-centred,
non-orthogonal bases Lee, Yeh, Cheng, Chen & Hsu, J. Phys.: Condens. Matter 25, 345501 (2013))
----------------------------------------------------------------------------------------------------
Every atom ``i`` of the supercell is assigned a primitive site ``s(i)`` and a primitive lattice
vector ``t_i`` with ``r_i ≈ τ_s + t_i`` (:class:`SiteMap`; a displaced atom keeps the site it was
displaced from). A supercell eigenstate at primitive wavevector ``k`` (the supercell H(k) is
periodic in the supercell reciprocal lattice, so it is diagonalised at ``k`` itself) has lattice-gauge
coefficients ``c_{iμ}`` (H(k) = Σ_R e^{ik·R} H(R), :mod:`aiida_mlepi.core.hamiltonian`). Its
projection onto the primitive Bloch sums at ``k`` is

    f_{sμ}(k) = Σ_{i ∈ s} e^{−i k·t_i} c_{iμ},        g_{sμ}(k) = the same sum of (S(k) c)_{iμ},

and the spectral weight (``N_c`` primitive cells in the supercell)

    W(k) = Re Σ_{sμ} f*_{sμ} g_{sμ} / N_c.

For an orthogonal basis g = f and W = ‖f‖²/N_c ≥ 0. In general W is ⟨ψ|P_k|ψ⟩ with P_k the
projector (1/N_c) Σ_t e^{ik·t} T_t built from the primitive translations T_t of the site map, which
commute with S for an undisplaced supercell (exact projector, W ∈ [0, 1]); for a displaced one W
is the Mulliken-type weight of Lee et al. Two sum rules hold *exactly* for any configuration:
Σ over the N_c primitive k that fold onto one supercell k of W_m = 1 (each state), and
Σ_m W_m(k) over all supercell states = number of primitive orbitals (bands) at every k.

The configuration-averaged spectral function is

    A(k, E) = (1/N_cfg) Σ_cfg Σ_m W_m(k) g_σ(E − E_m),    g_σ a normalised Gaussian of width σ (eV),

so ∫A dE over all energies equals the number of primitive bands (:func:`spectral_function`).

Why our own code and not a library: ``easyunfold`` and ``banduppy`` unfold plane-wave
wavefunctions read from VASP/QE/… files; sisl's unfolding works from its own ``Hamiltonian``
objects without a map of displaced atoms to primitive sites and without the non-orthogonal
(Mulliken) weight; here the states come from our block-sparse H(R)/S(R) in memory and the whole
computation is one sparse projection per k (a few lines of numpy).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .bands import eigh_subset
from .hamiltonian import HamiltonianR

#: default Gaussian broadening of the spectral function, eV
DEFAULT_BROADENING_EV = 0.01
#: a state's Gaussian is evaluated within this many σ of it on evenly spaced grids (:func:`spectral_function`)
GAUSSIAN_REACH_SIGMA = 8.0
#: an atom further than this from every primitive site (Å) is an error of the site map
DEFAULT_SITE_TOLERANCE = 0.8


class UnfoldingInputError(ValueError):
    """Bad input to the unfolding (cells that do not match, a site map that is not one-to-one, …)."""


@dataclass(frozen=True)
class PrimitiveCell:
    """The primitive cell the supercell is unfolded onto: lattice (rows, Å), sites (Å), numbers."""

    cell: np.ndarray  #: (3, 3) Å
    positions: np.ndarray  #: (n_sites, 3) Å, Cartesian
    numbers: np.ndarray  #: (n_sites,) atomic numbers

    @classmethod
    def from_any(cls, primitive, hamiltonian: HamiltonianR | None = None) -> "PrimitiveCell":
        """From an :class:`ase.Atoms`, a :class:`PrimitiveCell`, or a 3×3 cell (sites then found by
        clustering the supercell atoms of ``hamiltonian`` modulo the primitive lattice)."""
        if isinstance(primitive, cls):
            return primitive
        if hasattr(primitive, "get_positions") and hasattr(primitive, "cell"):
            return cls(np.asarray(primitive.cell, dtype=float).reshape(3, 3),
                       np.asarray(primitive.get_positions(), dtype=float),
                       np.asarray(primitive.numbers, dtype=int))
        cell = np.asarray(primitive, dtype=float)
        if cell.shape != (3, 3):
            raise UnfoldingInputError(f"primitive_cell must be ase.Atoms or a 3×3 cell (Å), got shape {cell.shape}")
        if hamiltonian is None:
            raise UnfoldingInputError("a bare 3×3 primitive cell needs the supercell to find the sites")
        return _sites_by_clustering(cell, hamiltonian)


@dataclass(frozen=True)
class SiteMap:
    """Supercell atom → primitive site ``site[i]`` and primitive lattice vector ``translation[i]`` (Å)."""

    site: np.ndarray  #: (N,) int, index into the primitive sites
    translation: np.ndarray  #: (N, 3) Å, r_i ≈ τ_site + translation (a primitive lattice vector)
    n_cells: int  #: primitive cells in the supercell
    max_deviation: float  #: Å, largest |r_i − τ_s − t_i|: the displacement from the site


def _reduce_to_lattice(d: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For vectors d (…, 3): the lattice vector of ``cell`` nearest each (in-plane search) and |residual|."""
    inv = np.linalg.inv(cell)
    base = np.round(d @ inv)
    best_t, best_r = None, None
    for s1, s2 in itertools.product((-1, 0, 1), repeat=2):
        n = base + np.array([s1, s2, 0.0])
        t = n @ cell
        r = np.linalg.norm(d - t, axis=-1)
        if best_r is None:
            best_t, best_r = t, r
        else:
            better = r < best_r
            best_t = np.where(better[..., None], t, best_t)
            best_r = np.where(better, r, best_r)
    return best_t, best_r


def _sites_by_clustering(cell: np.ndarray, h: HamiltonianR, tol: float = DEFAULT_SITE_TOLERANCE) -> PrimitiveCell:
    sites: list[list[np.ndarray]] = []
    numbers: list[int] = []
    for r, z in zip(h.positions, h.numbers):
        for s, members in enumerate(sites):
            if numbers[s] != z:
                continue
            t, dist = _reduce_to_lattice(r - members[0], cell)
            if dist < tol:
                members.append(r - t)
                break
        else:
            sites.append([r])
            numbers.append(int(z))
    positions = np.array([np.mean(m, axis=0) for m in sites])
    return PrimitiveCell(cell, positions, np.asarray(numbers))


def map_to_primitive(h: HamiltonianR, primitive: PrimitiveCell,
                     tol: float = DEFAULT_SITE_TOLERANCE) -> SiteMap:
    """Nearest primitive site of every supercell atom (exact for undisplaced and thermally displaced cells).

    Raises :class:`UnfoldingInputError` if the supercell is not an integer multiple of the primitive
    cell in plane, if an atom is further than ``tol`` Å from every site of its element, or if the map
    is not N_c-to-one (every site must receive exactly N_c atoms).
    """
    prim_cell = np.asarray(primitive.cell, dtype=float)
    mult = h.cell[:2, :2] @ np.linalg.inv(prim_cell[:2, :2])
    if np.abs(mult - np.round(mult)).max() > 1e-6:
        raise UnfoldingInputError(f"the supercell is not an integer multiple of the primitive cell in plane: {mult}")
    n_cells = int(round(abs(np.linalg.det(np.round(mult)))))
    n_sites = len(primitive.numbers)
    if n_cells * n_sites != len(h):
        raise UnfoldingInputError(
            f"{len(h)} supercell atoms ≠ {n_cells} cells × {n_sites} primitive sites")
    d = h.positions[:, None, :] - np.asarray(primitive.positions)[None, :, :]  # (N, n_sites, 3)
    t, dist = _reduce_to_lattice(d, prim_cell)
    dist = np.where(h.numbers[:, None] == np.asarray(primitive.numbers)[None, :], dist, np.inf)
    site = np.argmin(dist, axis=1)
    rows = np.arange(len(h))
    deviation = dist[rows, site]
    if not np.all(deviation < tol):
        bad = int(np.argmax(deviation))
        raise UnfoldingInputError(
            f"atom {bad} is {deviation[bad]:.3f} Å from the nearest primitive site of its element "
            f"(tolerance {tol} Å): the structure is not a (displaced) supercell of this primitive cell")
    counts = np.bincount(site, minlength=n_sites)
    if np.any(counts != n_cells):
        raise UnfoldingInputError(
            f"the site map is not one-to-one: sites receive {counts.tolist()} atoms, expected {n_cells} each "
            "(displacements too large for the nearest-site rule; pass site_map explicitly)")
    return SiteMap(site=site, translation=t[rows, site], n_cells=n_cells, max_deviation=float(deviation.max()))


def site_map_of_reference(reference_positions: np.ndarray, h: HamiltonianR, primitive: PrimitiveCell,
                          tol: float = DEFAULT_SITE_TOLERANCE) -> SiteMap:
    """Site map from the *undisplaced* positions (Å) of the same atoms: exact for any displacement size."""
    ref = HamiltonianR(cell=h.cell, positions=reference_positions, numbers=h.numbers, basis=h.basis,
                       edges=np.zeros((0, 5), int), h_values=np.zeros(0))
    return map_to_primitive(ref, primitive, tol)


@dataclass
class UnfoldedStates:
    """Supercell eigenstates at primitive k-points with their primitive spectral weights.

    ``energies[k, m]`` (eV) and ``weights[k, m]``; entries beyond the states found at a k are NaN
    (energy) and 0 (weight) when an energy window gives different counts per k.
    """

    k_cart: np.ndarray  #: (nk, 3) Å⁻¹, primitive wavevectors
    energies: np.ndarray  #: (nk, n_states) eV
    weights: np.ndarray  #: (nk, n_states)
    n_primitive_bands: int  #: orbitals of the primitive cell = Σ of the weights over all states
    n_cells: int

    def spectral_function(self, energy_grid_ev: np.ndarray,
                          broadening_ev: float = DEFAULT_BROADENING_EV) -> np.ndarray:
        """A(k, E) on ``energy_grid_ev`` (nk, nE), Gaussian broadening σ = ``broadening_ev`` (eV⁻¹)."""
        return spectral_function(self.energies, self.weights, energy_grid_ev, broadening_ev)


def spectral_function(energies: np.ndarray, weights: np.ndarray, energy_grid_ev: np.ndarray,
                      broadening_ev: float = DEFAULT_BROADENING_EV) -> np.ndarray:
    """Σ_m W_m g_σ(E − E_m) for each k: (nk, nE) in eV⁻¹ (g_σ a unit-area Gaussian of width σ, eV).

    On an evenly spaced grid each Gaussian is evaluated only within ±:data:`GAUSSIAN_REACH_SIGMA` σ of its
    state (the rest of its area is < 1e-15): for the estimator's 1 meV grid over ±1.3 eV and σ = 10 meV, 161 of
    the 2601 points per state (the thermal average evaluates A(k, E) of every configuration).
    """
    if not broadening_ev > 0:
        raise UnfoldingInputError(f"the broadening must be positive (eV), got {broadening_ev}")
    e = np.asarray(energies, dtype=float)
    w = np.where(np.isfinite(e), np.asarray(weights, dtype=float), 0.0)
    e = np.where(np.isfinite(e), e, 0.0)
    grid = np.asarray(energy_grid_ev, dtype=float)
    norm = 1.0 / (np.sqrt(2.0 * np.pi) * broadening_ev)
    step = grid[1] - grid[0] if grid.size > 2 else 0.0
    reach = int(np.ceil(GAUSSIAN_REACH_SIGMA * broadening_ev / step)) if step > 0 else grid.size
    if step <= 0 or 2 * reach + 2 >= grid.size or np.abs(np.diff(grid) - step).max() > 1e-9 * abs(step):
        x = (grid[None, None, :] - e[:, :, None]) / broadening_ev
        return np.einsum("km,kme->ke", w, np.exp(-0.5 * x * x) * norm)
    n_k, n_e = e.shape[0], grid.size
    index = np.floor((e - grid[0]) / step).astype(np.int64)[:, :, None] + np.arange(-reach, reach + 2)
    inside = (index >= 0) & (index < n_e)
    index = np.clip(index, 0, n_e - 1)  # points off the grid: any index, their value is zeroed below
    x = (grid[index] - e[:, :, None]) / broadening_ev
    values = np.where(inside, np.exp(-0.5 * x * x) * norm, 0.0) * w[:, :, None]
    flat = (np.arange(n_k)[:, None, None] * n_e + index).ravel()
    return np.bincount(flat, weights=values.ravel(), minlength=n_k * n_e).reshape(n_k, n_e)


def projection_matrix(h: HamiltonianR, primitive: PrimitiveCell, site_map: SiteMap) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparse (n_prim_orb × n_orb) site-sum pattern and, per supercell orbital, its t_i (Å).

    Row of supercell orbital (i, μ) = primitive orbital (s(i), μ); the k-dependent phase e^{−ik·t_i}
    multiplies column-wise (:func:`unfold`).
    """
    prim_orbitals = np.array([sum(2 * l + 1 for l in h.basis[int(z)]) for z in primitive.numbers])
    prim_offsets = np.concatenate([[0], np.cumsum(prim_orbitals)])
    no = h.orbitals_per_atom
    atom_of_orbital = np.repeat(np.arange(len(h)), no)
    local = np.arange(h.num_orbitals) - h.orbital_offsets[atom_of_orbital]
    rows = prim_offsets[site_map.site[atom_of_orbital]] + local
    pattern = sp.csr_matrix((np.ones(h.num_orbitals), (rows, np.arange(h.num_orbitals))),
                            shape=(int(prim_offsets[-1]), h.num_orbitals))
    return pattern, site_map.translation[atom_of_orbital]


def shared_solves(k_cart: np.ndarray, supercell: np.ndarray, decimals: int = 8) -> list[tuple[int, bool]]:
    """For each k (Å⁻¹): (index among the distinct eigen-solves, whether it is the complex conjugate of that solve).

    In the lattice gauge H(k) = Σ_R e^{ik·R} H(R) is periodic in the supercell reciprocal lattice, and H(R), S(R)
    are real, so H(−k) = H(k)*: primitive k-points that fold onto the same supercell k, or onto minus it, share
    one diagonalisation (eigenvalues equal, eigenvectors equal or conjugated); only the unfolding phases differ.
    For the 6×6 bilayer K and K′ fold onto Γ̄, so K + q and K − q (the ± directions of the Fermi-velocity fit and
    the two halves of the heat-map line) need one solve per pair. Solve ``n`` is the first k of its class.
    """
    frac = np.asarray(k_cart, dtype=float) @ np.asarray(supercell, dtype=float).T / (2 * np.pi)
    scale = 10 ** decimals

    def key(f: np.ndarray) -> tuple:
        return tuple(np.mod(np.round(f * scale).astype(np.int64), scale).tolist())

    seen: dict[tuple, int] = {}
    out = []
    for f in frac:
        plus, minus = key(f), key(-f)
        if plus in seen:
            out.append((seen[plus], False))
        elif minus in seen:
            out.append((seen[minus], True))
        else:
            seen[plus] = len(seen)
            out.append((seen[plus], False))
    return out


def unfold(hamiltonian: HamiltonianR, primitive_cell, k_primitive_cart: np.ndarray,
           site_map: SiteMap | None = None, *, state_range: tuple[int, int] | None = None,
           energy_window: tuple[float, float] | None = None,
           site_tolerance: float = DEFAULT_SITE_TOLERANCE, precision: str = "mixed") -> UnfoldedStates:
    """Energies and primitive spectral weights of the supercell states at primitive k (definition above).

    ``primitive_cell``: :class:`ase.Atoms` of the primitive cell (sites and lattice), a
    :class:`PrimitiveCell`, or a 3×3 cell (Å; the sites are then found by clustering the supercell's
    atoms). ``k_primitive_cart``: one k (3,) or an array (nk, 3), Cartesian Å⁻¹. ``site_map``
    defaults to the nearest primitive site of each atom (:func:`map_to_primitive`). Select the states
    by ``state_range=(lo, hi)`` (0-based, inclusive, in energy order) or ``energy_window=(E_min, E_max)``
    (eV); default: all states. Dense generalised eigh per k (:func:`~aiida_mlepi.core.bands.eigh_subset`:
    ``precision='mixed'`` solves in complex64 and refines the subset in complex128 by Rayleigh–Ritz, eigenvalues
    within ~1e-10 eV of ``'double'``); the dense H(k) is scattered directly (``HamiltonianR.hk_dense``).
    """
    h = hamiltonian
    primitive = PrimitiveCell.from_any(primitive_cell, h)
    site_map = map_to_primitive(h, primitive, site_tolerance) if site_map is None else site_map
    if len(site_map.site) != len(h):
        raise UnfoldingInputError(f"site_map has {len(site_map.site)} atoms, the Hamiltonian {len(h)}")
    if state_range is not None and energy_window is not None:
        raise UnfoldingInputError("give state_range or energy_window, not both")
    ks = np.atleast_2d(np.asarray(k_primitive_cart, dtype=float))
    if ks.shape[1] != 3:
        raise UnfoldingInputError(f"k_primitive_cart must be (3,) or (nk, 3) Å⁻¹, got shape {ks.shape}")
    pattern, t_orb = projection_matrix(h, primitive, site_map)
    n_prim = pattern.shape[0]
    results_e, results_w = [], []
    solves: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    for k, (source, conjugate) in zip(ks, shared_solves(ks, h.cell)):
        if source == len(solves):  # a supercell k not seen before (up to sign): solve
            hk = h.hk_dense(k)
            sk = None if h.s_values is None else h.hk_dense(k, h.s_values)
            vals, vecs = eigh_subset(hk, sk, subset_by_index=state_range, subset_by_value=energy_window,
                                     precision=precision)
            solves.append((vals, vecs, sk))
        vals, vecs, sk = solves[source]
        if conjugate:  # k ≡ −k' (mod the supercell reciprocal lattice): H(k) = H(k')*, S(k) = S(k')*
            vecs, sk = vecs.conj(), None if sk is None else sk.conj()
        phase = np.exp(-1j * (t_orb @ k))[:, None]
        f = pattern @ (phase * vecs)
        g = f if sk is None else pattern @ (phase * (sk @ vecs))
        w = np.real(np.einsum("pm,pm->m", f.conj(), g)) / site_map.n_cells
        results_e.append(vals)
        results_w.append(w)
    width = max(len(e) for e in results_e) if results_e else 0
    energies = np.full((len(ks), width), np.nan)
    weights = np.zeros((len(ks), width))
    for n, (e, w) in enumerate(zip(results_e, results_w)):
        energies[n, :len(e)] = e
        weights[n, :len(w)] = w
    return UnfoldedStates(k_cart=ks, energies=energies, weights=weights, n_primitive_bands=n_prim,
                          n_cells=site_map.n_cells)
