"""Löwdin orthogonalisation of an LCAO H(R), S(R): the orthogonal-basis H(R) HedgeNet-Electron learns.

HedgeNet-Electron predicts H(R) blocks in an orthogonal basis (S = 1). An LCAO engine (GPAW) gives H(R)
and S(R) ≠ 1. Its symmetric (Löwdin) orthogonalisation (P.-O. Löwdin, J. Chem. Phys. 18, 365 (1950))

    H̃(k) = S(k)^{-1/2} H(k) S(k)^{-1/2},        H̃(R) = (1/N_k) Σ_k e^{-ik·R} H̃(k)

keeps the spectrum (H̃ψ̃ = Eψ̃ ⇔ Hψ = ESψ, ψ = S^{-1/2}ψ̃) and gives the orthonormal orbitals closest to the
atomic ones in the least-squares sense. They sit on the atoms and carry the atoms' angular momenta, so
H̃(R) transforms under rotations and permutations of the atoms exactly as H(R) does: the same equivariant
network learns it. Lattice gauge as :mod:`.hamiltonian`: H(k) = Σ_R e^{ik·R} H(R), k in Å⁻¹.

Two approximations, both measured and reported by :func:`lowdin_orthogonalise`:

* **aliasing**: on an N₁×N₂ mesh the transform gives Σ_L H̃(R + N·L); the mesh supercell is chosen
  ≥ ``mesh_length_angstrom`` (default 40 Å) so the images are far beyond the kept blocks;
* **truncation**: H̃(R) decays with distance but has a longer range than H(R) (the tails of S^{-1/2});
  only blocks within the network's block cutoffs are kept (intra- and inter-layer, Å). The band error
  of the truncated H̃ against the generalized problem H ψ = E S ψ, at k-points off the mesh, is the
  report's ``band_error_ev`` (max and RMS over the bands in an energy window, eV).

Units: eV, Å. No AiiDA here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms

from .hamiltonian import HamiltonianR
from .layers import get_layer_ids
from .neighbours import labelled_edges

#: default length (Å) of the k-mesh supercell of the Fourier transform back to R (aliasing images ≥ this far)
DEFAULT_MESH_LENGTH_ANGSTROM = 40.0
#: S(k) with an eigenvalue below this is (numerically) linearly dependent: refused
MIN_OVERLAP_EIGENVALUE = 1e-6


class OrthogonalisationError(ValueError):
    """The H(R), S(R) cannot be orthogonalised (no overlap, or a linearly dependent basis)."""


@dataclass(frozen=True)
class OrthogonalisationReport:
    """What the transform did (energies eV, lengths Å)."""

    mesh: tuple[int, int, int]  #: k mesh of the transform
    cutoff_intra_angstrom: float
    cutoff_inter_angstrom: float
    num_blocks: int  #: blocks kept (on-site included)
    min_overlap_eigenvalue: float  #: smallest eigenvalue of S(k) on the mesh (conditioning of the basis)
    max_imaginary_ev: float  #: largest imaginary part of a back-transformed entry (0 up to round-off)
    band_error_max_ev: float  #: max |E(H̃ truncated) − E(H, S)| over the checked k-points and window bands
    band_error_rms_ev: float
    energy_window_ev: tuple[float, float] | None  #: bands compared: those of (H, S) inside it (None: all)

    def as_dict(self) -> dict:
        return asdict(self)


def kmesh_for_length(h: HamiltonianR, length_angstrom: float) -> tuple[int, int, int]:
    """Smallest Γ-centred mesh whose supercell is ≥ ``length_angstrom`` along each periodic direction that
    H(R) couples (a direction with only R = 0 gets 1)."""
    mesh = []
    for axis in range(3):
        periodic = h.pbc[axis] and bool(np.any(h.edges[:, axis] != 0))
        mesh.append(int(np.ceil(length_angstrom / np.linalg.norm(h.cell[axis]))) if periodic else 1)
    return tuple(mesh)


def mesh_kpoints(h: HamiltonianR, mesh: tuple[int, int, int]) -> np.ndarray:
    """(N_k, 3) Cartesian k (Å⁻¹) of the Γ-centred ``mesh``."""
    grids = np.meshgrid(*[np.arange(n) / n for n in mesh], indexing="ij")
    frac = np.column_stack([g.ravel() for g in grids])
    return frac @ h.reciprocal_cell()


def kept_edges(h: HamiltonianR, cutoff_intra: float, cutoff_inter: float,
               layer_ids: np.ndarray | None = None) -> np.ndarray:
    """(E, 5) edges (Rx, Ry, Rz, i, j): on-site blocks, then every pair within its relation's cutoff (Å)."""
    atoms = Atoms(numbers=h.numbers, positions=h.positions, cell=h.cell, pbc=h.pbc)
    layers = get_layer_ids(atoms) if layer_ids is None else np.asarray(layer_ids)
    pairs = labelled_edges(atoms, cutoff_intra, cutoff_inter, layer_ids=layers)
    n = len(h)
    onsite = np.column_stack([np.zeros((n, 3), dtype=np.int64), np.arange(n), np.arange(n)])
    return np.vstack([onsite, np.column_stack([pairs.shifts, pairs.i, pairs.j]).astype(np.int64)])


def _inverse_sqrt(s: np.ndarray) -> tuple[np.ndarray, float]:
    """S^{-1/2} of a Hermitian positive-definite stack (nk, n, n), and the smallest eigenvalue."""
    w, v = np.linalg.eigh(s)
    smallest = float(w.min())
    if smallest < MIN_OVERLAP_EIGENVALUE:
        raise OrthogonalisationError(
            f"S(k) has an eigenvalue {smallest:.2e} < {MIN_OVERLAP_EIGENVALUE:g}: either the S(R) are not exact (a "
            "negative eigenvalue: the engine's k mesh was too coarse for the basis range of this geometry, use a "
            "denser one) or the basis is linearly dependent (use a smaller basis, e.g. sz or szp instead of dzp)")
    return (v * w[:, None, :] ** -0.5) @ np.conj(np.swapaxes(v, 1, 2)), smallest


def _generalised_eigenvalues(h: HamiltonianR, ks: np.ndarray) -> np.ndarray:
    hk = h.hk_dense(ks)
    if h.s_values is None:
        return np.linalg.eigvalsh(hk)
    x, _ = _inverse_sqrt(h.hk_dense(ks, h.s_values))
    return np.linalg.eigvalsh(x @ hk @ x)


#: most k-points per periodic direction of the report's check mesh
MAX_CHECK_KPOINTS_PER_DIRECTION = 15


def check_kpoints(h: HamiltonianR, mesh: tuple[int, int, int]) -> np.ndarray:
    """k-points (Å⁻¹) of the report's check: a Γ-centred mesh one point coarser than the transform mesh along
    each periodic direction (at most 15), so that almost every point lies off the transform mesh, where
    aliasing and truncation both show (a sparse subset underestimated the error by 3–6× on GPAW hBN)."""
    sizes = [min(n - 1, MAX_CHECK_KPOINTS_PER_DIRECTION) if n > 2 else n for n in mesh]
    grids = np.meshgrid(*[np.arange(n) / n for n in sizes], indexing="ij")
    return np.column_stack([g.ravel() for g in grids]) @ h.reciprocal_cell()


def band_error(full: HamiltonianR, truncated: HamiltonianR, ks: np.ndarray,
               window_ev: tuple[float, float] | None = None) -> tuple[float, float]:
    """(max, RMS) |ΔE| (eV) of the bands of ``full`` (H, S) inside ``window_ev`` (None: all) at ``ks`` against
    ``truncated``."""
    exact = _generalised_eigenvalues(full, ks)
    approx = _generalised_eigenvalues(truncated, ks)
    lo, hi = (-np.inf, np.inf) if window_ev is None else window_ev
    inside = (exact >= lo) & (exact <= hi)
    if not inside.any():
        return 0.0, 0.0
    diff = np.abs(exact - approx)[inside]
    return float(diff.max()), float(np.sqrt(np.mean(diff ** 2)))


def lowdin_orthogonalise(h: HamiltonianR, cutoff_intra: float, cutoff_inter: float, *,
                         mesh_length_angstrom: float = DEFAULT_MESH_LENGTH_ANGSTROM,
                         window_ev: tuple[float, float] | None = None,
                         layer_ids: np.ndarray | None = None) -> tuple[HamiltonianR, OrthogonalisationReport]:
    """The Löwdin-orthogonal H̃(R) (eV, ``s_values=None``) of ``h`` on the blocks within the cutoffs (Å).

    ``window_ev``: bands compared in the report (default: ±5 eV around ``h.metadata['fermi_level_ev']``,
    or all bands without a Fermi level). ``layer_ids``: the layers of the intra/inter split (default: from
    z gaps, as the network). The metadata of ``h`` is kept, with the transform recorded under
    ``'orthogonalisation'``.
    """
    if h.s_values is None:
        raise OrthogonalisationError("H(R) is already in an orthogonal basis (no S(R))")
    if cutoff_intra <= 0 or cutoff_inter <= 0:
        raise OrthogonalisationError(f"cutoffs must be positive (Å), got {cutoff_intra}, {cutoff_inter}")
    mesh = kmesh_for_length(h, mesh_length_angstrom)
    ks = mesh_kpoints(h, mesh)
    x, smallest = _inverse_sqrt(h.hk_dense(ks, h.s_values))
    h_tilde_k = x @ h.hk_dense(ks) @ x  # (nk, n, n)

    edges = kept_edges(h, cutoff_intra, cutoff_inter, layer_ids)
    out = HamiltonianR(cell=h.cell, positions=h.positions, numbers=h.numbers, basis=h.basis, edges=edges,
                       h_values=np.zeros(int(_block_sizes(h, edges).sum())), s_values=None, pbc=h.pbc)
    rows, cols, edge = out._value_index
    phases = np.exp(-1j * (ks @ out.lattice_vectors.T))  # (nk, E)
    values = np.einsum("kv,kv->v", h_tilde_k[:, rows, cols], phases[:, edge]) / len(ks)
    out.h_values = np.ascontiguousarray(values.real)
    max_imag = float(np.abs(values.imag).max(initial=0.0))

    if window_ev is None:
        fermi = h.metadata.get("fermi_level_ev")
        window_ev = None if fermi is None else (float(fermi) - 5.0, float(fermi) + 5.0)
    err_max, err_rms = band_error(h, out, check_kpoints(h, mesh), window_ev)
    report = OrthogonalisationReport(
        mesh=tuple(int(n) for n in mesh), cutoff_intra_angstrom=float(cutoff_intra),
        cutoff_inter_angstrom=float(cutoff_inter), num_blocks=int(len(edges)), min_overlap_eigenvalue=smallest,
        max_imaginary_ev=max_imag, band_error_max_ev=err_max, band_error_rms_ev=err_rms,
        energy_window_ev=None if window_ev is None else (float(window_ev[0]), float(window_ev[1])))
    out.metadata = {**h.metadata, "orthogonalisation": {"method": "lowdin", **report.as_dict()}}
    return out, report


def _block_sizes(h: HamiltonianR, edges: np.ndarray) -> np.ndarray:
    no = h.orbitals_per_atom
    return no[edges[:, 3]] * no[edges[:, 4]]
