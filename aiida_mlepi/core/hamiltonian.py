"""Real-space Hamiltonian H(R) and overlap S(R) in a localized basis, stored as atom-pair blocks.

Layout (the DeepH convention, 0-based here):

* ``edges[e] = (Rx, Ry, Rz, i, j)``: the block couples orbitals of atom ``i`` in the home cell with
  orbitals of atom ``j`` in the cell translated by ``R = Rx a1 + Ry a2 + Rz a3``.
* ``H_e[a, b] = <i a, 0 | H | j b, R>`` in eV (flattened row-major into ``h_values``, block ``e``
  at ``h_values[block_offsets[e]:block_offsets[e + 1]]``); ``S_e`` likewise (dimensionless).
  ``s_values=None`` means an orthogonal basis: S(R) = δ_R0 δ_ij 1.
* Both (i, j, R) and (j, i, −R) are stored; hermiticity means H_ij(R) = H_ji(−R)ᵀ.
* Orbitals of an atom are ordered by ``basis[Z]`` (a tuple of angular momenta l, e.g. ``(0, 1)``
  for C s + p), each shell in OpenMX order: s; px, py, pz; d3z²−r², dx²−y², dxy, dxz, dyz.

Bloch sums use the lattice gauge H(k) = Σ_R e^{i k·R} H(R) (k in Å⁻¹, Cartesian).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

ENERGY_UNIT = "eV"
LENGTH_UNIT = "Angstrom"
#: orbital order of each shell, by angular momentum l (OpenMX / DeepH legacy convention)
ORBITAL_ORDER = {
    0: ("s",),
    1: ("px", "py", "pz"),
    2: ("d3z2-r2", "dx2-y2", "dxy", "dxz", "dyz"),
}


def shell_size(l: int) -> int:
    return 2 * l + 1


@dataclass
class HamiltonianR:
    """Block-sparse real-space Hamiltonian (eV) and overlap of a periodic structure (Å)."""

    cell: np.ndarray  #: (3, 3) Å, rows are lattice vectors
    positions: np.ndarray  #: (N, 3) Å, Cartesian
    numbers: np.ndarray  #: (N,) atomic numbers
    basis: dict[int, tuple[int, ...]]  #: Z -> angular momenta of its shells
    edges: np.ndarray  #: (E, 5) int: Rx, Ry, Rz, i, j (0-based)
    h_values: np.ndarray  #: flattened blocks of H, eV
    s_values: np.ndarray | None = None  #: flattened blocks of S, or None (orthogonal basis)
    pbc: tuple[bool, bool, bool] = (True, True, True)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cell = np.asarray(self.cell, dtype=float).reshape(3, 3)
        self.positions = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        self.numbers = np.asarray(self.numbers, dtype=int)
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 5)
        self.h_values = np.asarray(self.h_values, dtype=float)
        self.basis = {int(z): tuple(int(l) for l in ls) for z, ls in self.basis.items()}
        missing = set(self.numbers.tolist()) - set(self.basis)
        if missing:
            raise ValueError(f"no basis given for atomic numbers {sorted(missing)}")
        if len(self.edges) and (self.edges[:, 3:].min() < 0 or self.edges[:, 3:].max() >= len(self)):
            raise ValueError("edge atom index out of range")
        if self.h_values.size != self.block_offsets[-1]:
            raise ValueError(
                f"h_values has {self.h_values.size} entries, the blocks need {self.block_offsets[-1]}"
            )
        if self.s_values is not None:
            self.s_values = np.asarray(self.s_values, dtype=float)
            if self.s_values.shape != self.h_values.shape:
                raise ValueError("s_values must have the shape of h_values")

    # ------------------------------------------------------------------ orbital bookkeeping
    def __len__(self) -> int:
        return len(self.numbers)

    @cached_property
    def orbitals_per_atom(self) -> np.ndarray:
        """(N,) number of orbitals of each atom."""
        per_z = {z: sum(shell_size(l) for l in ls) for z, ls in self.basis.items()}
        return np.array([per_z[int(z)] for z in self.numbers], dtype=np.int64)

    @cached_property
    def orbital_offsets(self) -> np.ndarray:
        """(N + 1,) index of each atom's first orbital in the full matrix."""
        return np.concatenate([[0], np.cumsum(self.orbitals_per_atom)])

    @property
    def num_orbitals(self) -> int:
        return int(self.orbital_offsets[-1])

    @cached_property
    def block_shapes(self) -> np.ndarray:
        """(E, 2) shape of each block."""
        no = self.orbitals_per_atom
        return np.column_stack([no[self.edges[:, 3]], no[self.edges[:, 4]]])

    @cached_property
    def block_offsets(self) -> np.ndarray:
        """(E + 1,) start of each block in ``h_values``."""
        sizes = self.block_shapes[:, 0] * self.block_shapes[:, 1]
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @cached_property
    def _value_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every entry of ``h_values``: (row orbital, column orbital, edge)."""
        shapes = self.block_shapes
        sizes = shapes[:, 0] * shapes[:, 1]
        edge = np.repeat(np.arange(len(self.edges)), sizes)
        local = np.arange(sizes.sum()) - self.block_offsets[:-1][edge]
        ncol = shapes[edge, 1]
        rows = self.orbital_offsets[self.edges[edge, 3]] + local // ncol
        cols = self.orbital_offsets[self.edges[edge, 4]] + local % ncol
        return rows, cols, edge

    def block(self, e: int, which: str = "H") -> np.ndarray:
        """Block ``e`` of H (eV) or S as a 2-D array."""
        values = self.h_values if which == "H" else self.s_values
        if values is None:
            raise ValueError("orthogonal basis: S blocks are not stored")
        a, b = self.block_shapes[e]
        return values[self.block_offsets[e]:self.block_offsets[e + 1]].reshape(a, b)

    @property
    def lattice_vectors(self) -> np.ndarray:
        """(E, 3) Cartesian lattice translation R·cell of each edge, Å."""
        return self.edges[:, :3] @ self.cell

    @property
    def bond_vectors(self) -> np.ndarray:
        """(E, 3) r_j + R − r_i of each edge, Å."""
        return self.positions[self.edges[:, 4]] + self.lattice_vectors - self.positions[self.edges[:, 3]]

    # ------------------------------------------------------------------ Bloch sums
    def _bloch(self, values: np.ndarray, k_cart: np.ndarray, derivative: int | None) -> sp.csr_matrix:
        rows, cols, edge = self._value_index
        phase = np.exp(1j * (self.lattice_vectors @ np.asarray(k_cart, dtype=float)))
        factor = phase if derivative is None else 1j * self.lattice_vectors[:, derivative] * phase
        n = self.num_orbitals
        return sp.csr_matrix((values * factor[edge], (rows, cols)), shape=(n, n))

    @cached_property
    def _dense_index(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(flat index row·N_orb + column, edge) of every entry of ``h_values``, and whether the flat indices are
        unique (no (i, j) pair repeated with another R, true for supercells larger than twice the cutoff)."""
        rows, cols, edge = self._value_index
        flat = rows * self.num_orbitals + cols
        return flat, edge, len(np.unique(flat)) == len(flat)

    def hk_dense(self, k_cart: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """H(k) (eV; or the Bloch sum of ``values``, e.g. ``s_values``) as a dense complex array.

        (N_orb, N_orb) for one k (3,), (nk, N_orb, N_orb) for (nk, 3) Å⁻¹. The same matrix as
        ``hk(k).toarray()`` (lattice gauge), scattered straight into the dense array (no sparse matrix is
        assembled: ~5× faster for a 576-orbital supercell); entries of one (i, j) from several R are summed.
        """
        ks = np.asarray(k_cart, dtype=float)
        single = ks.ndim == 1
        ks = np.atleast_2d(ks)
        values = self.h_values if values is None else values
        flat, edge, unique = self._dense_index
        phases = np.exp(1j * (ks @ self.lattice_vectors.T))  # (nk, E)
        n = self.num_orbitals
        out = np.zeros((len(ks), n * n), dtype=complex)
        for m in range(len(ks)):
            data = values * phases[m, edge]
            if unique:
                out[m, flat] = data
            else:
                out[m] = np.bincount(flat, data.real, n * n) + 1j * np.bincount(flat, data.imag, n * n)
        out = out.reshape(len(ks), n, n)
        return out[0] if single else out

    def hk(self, k_cart: np.ndarray) -> sp.csr_matrix:
        """H(k) (eV) as a sparse complex matrix; ``k_cart`` in Å⁻¹ (Cartesian)."""
        return self._bloch(self.h_values, k_cart, None)

    def sk(self, k_cart: np.ndarray) -> sp.csr_matrix:
        """S(k) as a sparse complex matrix (identity for an orthogonal basis)."""
        if self.s_values is None:
            return sp.identity(self.num_orbitals, dtype=complex, format="csr")
        return self._bloch(self.s_values, k_cart, None)

    def dhk(self, k_cart: np.ndarray, direction: int) -> sp.csr_matrix:
        """∂H(k)/∂k_direction (eV·Å) as a sparse complex matrix."""
        return self._bloch(self.h_values, k_cart, direction)

    def dsk(self, k_cart: np.ndarray, direction: int) -> sp.csr_matrix:
        """∂S(k)/∂k_direction (Å); zero for an orthogonal basis."""
        if self.s_values is None:
            return sp.csr_matrix((self.num_orbitals, self.num_orbitals), dtype=complex)
        return self._bloch(self.s_values, k_cart, direction)

    # ------------------------------------------------------------------ checks
    def reciprocal_cell(self) -> np.ndarray:
        """Reciprocal lattice vectors (rows) including the 2π, Å⁻¹."""
        return 2.0 * np.pi * np.linalg.inv(self.cell).T

    def hermiticity_error(self) -> float:
        """max |H_ij(R) − H_ji(−R)ᵀ| over all stored pairs (eV); inf if a partner block is missing."""
        key = {tuple(e): n for n, e in enumerate(self.edges.tolist())}
        worst = 0.0
        for n, (rx, ry, rz, i, j) in enumerate(self.edges.tolist()):
            m = key.get((-rx, -ry, -rz, j, i))
            if m is None:
                return float("inf")
            worst = max(worst, float(np.abs(self.block(n) - self.block(m).T).max()))
        return worst
