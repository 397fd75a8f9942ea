"""Eigen-solvers and band structures of a :class:`~aiida_mlepi.core.hamiltonian.HamiltonianR`.

Units: energies in eV, k in Å⁻¹ (Cartesian) unless a name says ``frac`` (fractional coordinates of
the reciprocal cell ``h.reciprocal_cell()``), lengths in Å.

Solvers (:func:`states_at`):

* ``"dense"``: ``scipy.linalg.eigh(H, S, subset_by_index=...)`` of the dense Bloch matrices (LAPACK
  ``*hevr``/``*hegvx``); it gives states *by index*, so the Fermi level follows from the electron
  count. Cost O(N³), fine up to a few thousand orbitals (576 orbitals ≈ 60 ms, 2304 ≈ 4 s, 1 thread).
* ``"sparse"``: shift-invert Lanczos ``scipy.sparse.linalg.eigsh(H, M=S, sigma=E)`` for the few
  states nearest an energy ``E``; cost ~ one sparse LU of H − E S, the path for ~10⁴ orbitals
  and more (9216 orbitals ≈ 14 s per k). It cannot count states, so it needs an energy (the Fermi level) to centre on.
* ``"auto"``: dense below ``sparse_threshold`` orbitals (default :data:`SPARSE_THRESHOLD`),
  sparse above.

:func:`states_in_window` gives every eigenpair in an energy window [e_min, e_max] (e.g. around E_F),
dense by ``subset_by_value`` or sparse by shift-invert around the window centre, growing the number of
states until the window is covered (one LU, :class:`ShiftInvert`; SuperLU, or MKL PARDISO with
nested-dissection ordering for ≥ 10⁴ orbitals when installed: :mod:`.sparse_factor`). Reusing that LU at another k as a
preconditioner does not pay (``benchmarks/window_eigensolver.py``).

:func:`eigh_subset` is the dense subset solve of the unfolding (many k per configuration): ``precision='mixed'``
solves in complex64 and refines the subset in complex128 by Rayleigh–Ritz (eigenvalues within ~1e-10 eV of a
double-precision solve, ~2–3× faster at 576 orbitals), falling back to double precision when a residual is large.
Measured (6×6 AB bilayer, the 55 k near K of the spectral estimator): Rayleigh–Ritz in the window states (E_F ± 3.5 eV,
89 states) of one anchor k = K, shifted to the atomic gauge, finds the right number of states at every k but
only to ~1e-3 eV (residuals ~0.1 eV): too coarse to replace the per-k dense solve without refinement.

:func:`to_sisl` converts the blocks to a :class:`sisl.Hamiltonian` (same physics, sisl's
supercell indexing); it is used to cross-check our Bloch sums (see ``tests/core/test_bands.py``)
and as an alternative path; the reason the observable defaults to our own Bloch sums is in
:mod:`aiida_mlepi.core.observables`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from .hamiltonian import HamiltonianR
from .sparse_factor import factorize

#: above this many orbitals ``solver="auto"`` uses sparse shift-invert instead of dense eigh
SPARSE_THRESHOLD = 4000


class BandsInputError(ValueError):
    """Bad input to a band-structure or eigen-solver routine."""


# ---------------------------------------------------------------------------- supercells
def repeat_hamiltonian(h: HamiltonianR, n1: int, n2: int, n3: int = 1) -> HamiltonianR:
    """The n1 × n2 × n3 supercell of ``h`` built by tiling its blocks (exact, no new parameters).

    Supercell atom ``i + N (c1 + n1 c2 + n1 n2 c3)`` is primitive atom ``i`` in cell (c1, c2, c3).
    A primitive block (R, i, j) from home cell c couples to cell c + R, which is
    supercell translation ⌊(c + R)/n⌋ and in-supercell cell (c + R) mod n.
    """
    reps = np.array([n1, n2, n3], dtype=int)
    if (reps < 1).any():
        raise BandsInputError(f"supercell multiples must be positive integers, got {reps.tolist()}")
    nat = len(h)
    cells = np.array([(c1, c2, c3) for c3 in range(n3) for c2 in range(n2) for c1 in range(n1)])
    ncell = len(cells)

    def cell_index(c: np.ndarray) -> np.ndarray:
        return c[..., 0] + n1 * (c[..., 1] + n2 * c[..., 2])

    positions = (h.positions[None, :, :] + (cells @ h.cell)[:, None, :]).reshape(-1, 3)
    numbers = np.tile(h.numbers, ncell)
    r_prim, i_prim, j_prim = h.edges[:, :3], h.edges[:, 3], h.edges[:, 4]
    target = cells[:, None, :] + r_prim[None, :, :]  # (ncell, E, 3)
    r_sc = np.floor_divide(target, reps)
    c_j = np.mod(target, reps)
    i_sc = i_prim[None, :] + nat * cell_index(cells)[:, None]
    j_sc = j_prim[None, :] + nat * cell_index(c_j)
    edges = np.column_stack([r_sc.reshape(-1, 3), i_sc.reshape(-1), j_sc.reshape(-1)])
    h_values = np.tile(h.h_values, ncell)
    s_values = None if h.s_values is None else np.tile(h.s_values, ncell)
    meta = dict(h.metadata)
    meta["supercell_of_primitive"] = [int(n1), int(n2), int(n3)]
    return HamiltonianR(cell=np.diag(reps.astype(float)) @ h.cell, positions=positions,
                        numbers=numbers, basis=dict(h.basis), edges=edges, h_values=h_values,
                        s_values=s_values, pbc=h.pbc, metadata=meta)


# ---------------------------------------------------------------------------- solvers
def frac_to_cart(h: HamiltonianR, k_frac: np.ndarray) -> np.ndarray:
    """Fractional k (units of the reciprocal vectors of ``h.cell``) → Cartesian, Å⁻¹."""
    return np.asarray(k_frac, dtype=float) @ h.reciprocal_cell()


def eigenvalues(h: HamiltonianR, k_cart: np.ndarray,
                subset_by_index: tuple[int, int] | None = None) -> np.ndarray:
    """All (or ``subset_by_index=(lo, hi)``, inclusive, 0-based) eigenvalues at ``k_cart``, eV."""
    hk = h.hk(k_cart).toarray()
    if h.s_values is None:
        return scipy.linalg.eigh(hk, eigvals_only=True, subset_by_index=subset_by_index)
    return scipy.linalg.eigh(hk, h.sk(k_cart).toarray(), eigvals_only=True,
                             subset_by_index=subset_by_index)


def eigh_dense(h: HamiltonianR, k_cart: np.ndarray,
               subset_by_index: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (eV) and S-orthonormal eigenvectors (columns) at ``k_cart`` by dense eigh."""
    hk = h.hk(k_cart).toarray()
    sk = None if h.s_values is None else h.sk(k_cart).toarray()
    return scipy.linalg.eigh(hk, sk, subset_by_index=subset_by_index)


def eigh_sparse(h: HamiltonianR, k_cart: np.ndarray, sigma: float,
                n_states: int, tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_states`` eigenpairs nearest ``sigma`` (eV) by shift-invert Lanczos, sorted by energy."""
    if n_states < 1 or n_states >= h.num_orbitals - 1:
        raise BandsInputError(f"n_states must be in 1..{h.num_orbitals - 2}, got {n_states}")
    hk = h.hk(k_cart).tocsc()
    sk = None if h.s_values is None else h.sk(k_cart).tocsc()
    vals, vecs = scipy.sparse.linalg.eigsh(hk, k=n_states, M=sk, sigma=sigma, which="LM", tol=tol)
    return _sorted_s_normalised(vals, vecs, sk)


def _sorted_s_normalised(vals: np.ndarray, vecs: np.ndarray,
                         sk: sp.spmatrix | None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs sorted by energy, columns normalised with S (eigsh returns M-orthonormal vectors
    already; this guards round-off)."""
    order = np.argsort(vals)
    vecs = vecs[:, order]
    norms = np.sqrt(np.real(np.einsum("in,in->n", vecs.conj(),
                                      vecs if sk is None else sk @ vecs)))
    return vals[order], vecs / norms


# ---------------------------------------------------------------------------- mixed precision
#: a window solved in single precision is widened by this (eV) so that no state near its edges is lost
MIXED_MARGIN_EV = 0.01
#: largest residual ‖Hψ − E Sψ‖ (eV) accepted from the single-precision subspace; above: double precision
MIXED_RESIDUAL_TOL_EV = 1e-4
PRECISIONS = ("double", "mixed")
#: a 'mixed' subset holding more than this fraction of all states is solved in double precision directly
MIXED_MAX_FRACTION = 0.25


def eigh_subset(hk: np.ndarray, sk: np.ndarray | None = None, *, subset_by_index: tuple[int, int] | None = None,
                subset_by_value: tuple[float, float] | None = None,
                precision: str = "mixed") -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the dense H ψ = E S ψ (eV) selected by index (inclusive, 0-based) or by energy (a, b] (eV).

    ``precision='double'``: ``scipy.linalg.eigh`` in complex128. ``'mixed'``: the subset is found by the
    single-precision LAPACK solver (``*heevr``/``*hegvx`` in complex64, ~3× faster for 576 orbitals), widened by
    :data:`MIXED_MARGIN_EV` for a window, then refined in double precision by Rayleigh–Ritz in the span V of
    those vectors: eigh(V†HV, V†SV). The Ritz values' error is ~‖r‖²/gap, ‖r‖ the float32 subspace's residual
    (~1e-5 eV for ‖H‖ ~ 20 eV): measured 2e-12 eV and 1 − |⟨ψ|ψ_ref⟩|² ~ 1e-11 on the 6×6 AB bilayer. If
    any selected pair's double-precision residual exceeds :data:`MIXED_RESIDUAL_TOL_EV` (clusters split by the
    window margin, ill-conditioned S), or if the subset holds more than :data:`MIXED_MAX_FRACTION` of the states
    (where refining costs a full solve: an untrained model's H(R) puts ~80 % of the 6×6 bilayer's states within
    E_F ± 1.3 eV), the subset is solved again in double precision. Returns (energies
    ascending, S-orthonormal eigenvectors as columns).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if subset_by_index is not None and subset_by_value is not None:
        raise ValueError("give subset_by_index or subset_by_value, not both")
    kwargs = {}
    if subset_by_index is not None:
        kwargs["subset_by_index"] = tuple(int(x) for x in subset_by_index)
    elif subset_by_value is not None:
        kwargs["subset_by_value"] = tuple(float(x) for x in subset_by_value)
    if precision == "double":
        return scipy.linalg.eigh(hk, sk, **kwargs)
    wide = dict(kwargs)
    if subset_by_value is not None:
        wide["subset_by_value"] = (kwargs["subset_by_value"][0] - MIXED_MARGIN_EV,
                                   kwargs["subset_by_value"][1] + MIXED_MARGIN_EV)
    try:
        _, v32 = scipy.linalg.eigh(hk.astype(np.complex64), None if sk is None else sk.astype(np.complex64), **wide,
                                   check_finite=False)
    except np.linalg.LinAlgError:
        # S(k) positive definite in double but not in single precision (an LCAO overlap with eigenvalues near
        # the float32 round-off of its largest; seen on a GPAW hBN supercell): the whole subset in double
        return scipy.linalg.eigh(hk, sk, **kwargs)
    if v32.shape[1] == 0:
        return np.zeros(0), np.zeros((hk.shape[0], 0), dtype=complex)
    if v32.shape[1] > MIXED_MAX_FRACTION * hk.shape[0]:
        # most of the spectrum (e.g. an untrained model's compressed bands): refinement would cost a full solve
        return scipy.linalg.eigh(hk, sk, **kwargs)
    v = v32.astype(complex)
    hv = hk @ v
    sv = v if sk is None else sk @ v
    try:
        vals, y = scipy.linalg.eigh(v.conj().T @ hv, v.conj().T @ sv)
    except np.linalg.LinAlgError:  # a (numerically) dependent float32 subspace: solve in double instead
        return scipy.linalg.eigh(hk, sk, **kwargs)
    vecs = v @ y
    residual = np.linalg.norm(hv @ y - (sv @ y) * vals, axis=0)
    if subset_by_value is not None:
        a, b = kwargs["subset_by_value"]
        keep = (vals > a) & (vals <= b)
        vals, vecs, residual = vals[keep], vecs[:, keep], residual[keep]
    if len(residual) and residual.max() > MIXED_RESIDUAL_TOL_EV:
        return scipy.linalg.eigh(hk, sk, **kwargs)
    return vals, vecs


# ---------------------------------------------------------------------------- energy windows
class ShiftInvert:
    """The eigenpairs of H(k) ψ = E S(k) ψ nearest ``sigma`` (eV), from one sparse LU of H(k) − σ S(k).

    The factorisation is done once (the dominant cost for large N) and reused by every call of
    :meth:`nearest`, e.g. while :func:`states_in_window` grows the number of states it asks for.
    """

    def __init__(self, h: HamiltonianR, k_cart: np.ndarray, sigma: float, factorization: str = "auto"):
        self.sigma = float(sigma)
        self.hk = h.hk(k_cart).tocsc()
        self.sk = None if h.s_values is None else h.sk(k_cart).tocsc()
        shifted = self.hk - self.sigma * (sp.identity(h.num_orbitals, format="csc") if self.sk is None else self.sk)
        self.lu = factorize(shifted, factorization)  #: the factorised H(k) − σ S(k) (:mod:`.sparse_factor`)
        n = h.num_orbitals
        self.solves = 0  #: linear solves with the LU so far (one per Lanczos step)
        self.op_inverse = scipy.sparse.linalg.LinearOperator((n, n), matvec=self._solve, dtype=complex)

    def _solve(self, b: np.ndarray) -> np.ndarray:
        self.solves += 1
        return self.lu.solve(b)

    @property
    def size(self) -> int:
        return self.hk.shape[0]

    def nearest(self, n_states: int, tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The ``n_states`` eigenpairs nearest σ (eV; S-orthonormal columns), sorted by energy."""
        if n_states < 1 or n_states >= self.size - 1:
            raise BandsInputError(f"n_states must be in 1..{self.size - 2}, got {n_states}")
        vals, vecs = scipy.sparse.linalg.eigsh(self.hk, k=n_states, M=self.sk, sigma=self.sigma, which="LM",
                                               OPinv=self.op_inverse, tol=tol)
        return _sorted_s_normalised(vals, vecs, self.sk)


#: states this close (eV) outside a window's ends count as inside (round-off between subset and full solves)
WINDOW_EDGE_TOLERANCE_EV = 1e-9


def states_in_window(h: HamiltonianR, k_cart: np.ndarray, e_min: float, e_max: float, solver: str = "auto",
                     sparse_threshold: int = SPARSE_THRESHOLD, n_guess: int = 16,
                     factorization: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """All eigenpairs of H(k) ψ = E S(k) ψ with e_min ≤ E ≤ e_max (eV) at ``k_cart`` (Å⁻¹).

    Returns (energies (n,) ascending, eV; eigenvectors (N_orb, n) as S-orthonormal columns), n ≥ 0.
    ``solver`` (see :func:`choose_solver`): ``"dense"``: ``scipy.linalg.eigh(subset_by_value=...)``;
    ``"sparse"``: shift-invert Lanczos around the window centre (:class:`ShiftInvert`, one LU), asking
    for ``n_guess`` states, then for more until the farthest state found lies outside the window (then
    every state inside has been found, they are the nearest to the centre). The next request is the
    larger of 2n and 1.25 n·(half width)/(distance of the farthest state found), i.e. the window's count
    at the density of states found so far. ``factorization``: how the sparse path factorises
    H − σ S (:func:`~aiida_mlepi.core.sparse_factor.factorize`: 'superlu', 'pardiso' or 'auto' = PARDISO
    from 10⁴ orbitals when ``pypardiso`` is installed, extra ``aiida-mlepi[sparse]``, else SuperLU).
    """
    e_min, e_max = float(e_min), float(e_max)
    if not (np.isfinite(e_min) and np.isfinite(e_max)) or e_max < e_min:
        raise BandsInputError(f"the energy window must be finite with e_min ≤ e_max, got [{e_min}, {e_max}] eV")
    if n_guess < 1:
        raise BandsInputError(f"n_guess must be a positive integer, got {n_guess}")
    if choose_solver(h, solver, sparse_threshold) == "dense":
        hk = h.hk(k_cart).toarray()
        sk = None if h.s_values is None else h.sk(k_cart).toarray()
        # LAPACK's interval is (a, b], and a subset solve may place a state a few ulps from where a full solve
        # does: widen by WINDOW_EDGE_TOLERANCE_EV so that both ends are included (a state at e_min was lost with
        # scipy 1.17.1)
        return scipy.linalg.eigh(hk, sk, subset_by_value=(e_min - WINDOW_EDGE_TOLERANCE_EV,
                                                          e_max + WINDOW_EDGE_TOLERANCE_EV))
    centre, half_width = 0.5 * (e_min + e_max), 0.5 * (e_max - e_min)
    solver_k = ShiftInvert(h, k_cart, centre, factorization)
    n = min(n_guess, solver_k.size - 2)
    while True:
        vals, vecs = solver_k.nearest(n)
        reach = np.abs(vals - centre).max()  # eV: every state closer than this to the centre is found
        if reach > half_width:
            inside = (vals >= e_min) & (vals <= e_max)
            return vals[inside], vecs[:, inside]
        if n == solver_k.size - 2:
            raise BandsInputError(f"the window [{e_min}, {e_max}] eV holds nearly all {solver_k.size} states: "
                                  f"use solver='dense'")
        wanted = 1.25 * n * half_width / reach if reach > 0 else 2 * n
        n = min(max(2 * n, int(np.ceil(wanted))), solver_k.size - 2)


def choose_solver(h: HamiltonianR, solver: str = "auto",
                  sparse_threshold: int = SPARSE_THRESHOLD) -> str:
    """Resolve ``solver`` ('auto', 'dense', 'sparse') for ``h``: dense iff N_orb ≤ threshold."""
    if solver not in ("auto", "dense", "sparse"):
        raise BandsInputError(f"unknown solver {solver!r}: use 'auto', 'dense' or 'sparse'")
    if solver == "auto":
        return "dense" if h.num_orbitals <= sparse_threshold else "sparse"
    return solver


# ---------------------------------------------------------------------------- band structures
@dataclass
class BandStructure:
    """Bands along a piecewise-linear path (energies eV, k Å⁻¹)."""

    k_cart: np.ndarray  #: (nk, 3) Å⁻¹
    distance: np.ndarray  #: (nk,) cumulative path length, Å⁻¹
    energies: np.ndarray  #: (nk, nbands) eV
    labels: list[str] = field(default_factory=list)  #: names of the corner points
    label_distance: np.ndarray = field(default_factory=lambda: np.zeros(0))  #: their positions
    fermi_level: float | None = None  #: eV, if known
    band_offset: int = 0  #: index of the first band stored


def hexagonal_path_frac() -> list[tuple[str, np.ndarray]]:
    """Γ–M–K–Γ of a hexagonal cell with a 120° angle between a1 and a2 (fractional k)."""
    return [("Γ", np.zeros(3)), ("M", np.array([0.5, 0.0, 0.0])),
            ("K", np.array([1.0 / 3.0, 1.0 / 3.0, 0.0])), ("Γ", np.zeros(3))]


def kpath(h: HamiltonianR, corners: list[tuple[str, np.ndarray]],
          n_points: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cartesian k (Å⁻¹), cumulative distance and corner distances of a path through ``corners``.

    ``corners`` are (label, fractional k) pairs; points are spread ∝ segment length, ~``n_points``
    in all, and every corner is on the path.
    """
    if len(corners) < 2:
        raise BandsInputError("a k path needs at least two corner points")
    pts = np.array([frac_to_cart(h, np.asarray(c, dtype=float)) for _, c in corners])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    total = seg.sum()
    if total <= 0:
        raise BandsInputError("the k path has zero length")
    ks, dist = [pts[:1]], [np.zeros(1)]
    start = 0.0
    for a, b, length in zip(pts[:-1], pts[1:], seg):
        m = max(2, int(round(n_points * length / total)))
        t = np.linspace(0.0, 1.0, m + 1)[1:]
        ks.append(a + t[:, None] * (b - a))
        dist.append(start + t * length)
        start += length
    corner_dist = np.concatenate([[0.0], np.cumsum(seg)])
    return np.vstack(ks), np.concatenate(dist), corner_dist


def band_structure(h: HamiltonianR, corners: list[tuple[str, np.ndarray]] | None = None,
                   n_points: int = 100, band_range: tuple[int, int] | None = None,
                   fermi_level: float | None = None) -> BandStructure:
    """Dense band structure of ``h`` along ``corners`` (default Γ–M–K–Γ of ``h.cell``).

    ``band_range=(lo, hi)`` (inclusive, 0-based) keeps only those bands (``subset_by_index``).
    For a supercell this is the folded band structure of the supercell's own Brillouin zone.
    """
    corners = hexagonal_path_frac() if corners is None else corners
    k_cart, dist, corner_dist = kpath(h, corners, n_points)
    energies = np.array([eigenvalues(h, k, band_range) for k in k_cart])
    return BandStructure(k_cart=k_cart, distance=dist, energies=energies,
                         labels=[c[0] for c in corners], label_distance=corner_dist,
                         fermi_level=fermi_level, band_offset=0 if band_range is None else band_range[0])


# ---------------------------------------------------------------------------- sisl
def to_sisl(h: HamiltonianR):
    """The same H(R)/S(R) as a :class:`sisl.Hamiltonian` (orthogonal if ``h.s_values`` is None).

    Mapping: our block (R, i, j) entry (a, b) goes to sisl row ``o_i + a`` and column
    ``o_j + b + isc(R) · N_orb``, with ``isc = lattice.sc_index(R)`` and ``nsc = 2 max|R| + 1``
    per direction. Both use H(k) = Σ_R e^{i k·R} H(R) in the lattice gauge; sisl's k are
    fractional (``k_cart = k_frac @ h.reciprocal_cell()``).
    """
    import sisl  # local import: sisl is only needed for this conversion

    nsc = 2 * np.abs(h.edges[:, :3]).max(axis=0) + 1 if len(h.edges) else np.ones(3, int)
    lattice = sisl.Lattice(h.cell, nsc=nsc)
    species = {z: sisl.Atom(int(z), orbitals=[-1.0] * int(n))
               for z, n in zip(h.numbers, h.orbitals_per_atom)}
    geometry = sisl.Geometry(h.positions, atoms=[species[z] for z in h.numbers], lattice=lattice)
    rows, cols, edge = h._value_index
    isc = np.asarray(lattice.sc_index(h.edges[:, :3]), dtype=np.int64)
    no = h.num_orbitals
    sc_cols = cols + isc[edge] * no
    shape = (no, no * int(np.prod(nsc)))
    h_csr = sp.csr_matrix((h.h_values, (rows, sc_cols)), shape=shape)
    s_csr = None if h.s_values is None else sp.csr_matrix((h.s_values, (rows, sc_cols)), shape=shape)
    return sisl.Hamiltonian.fromsp(geometry, h_csr, S=s_csr)
