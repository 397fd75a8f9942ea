"""Harmonic phonons of layered structures by finite differences, through phonopy.

The work is split so that a workflow can compute the forces of each displaced supercell as a
separate step:

1. :meth:`PhononSetup.create` asks phonopy for the symmetry-reduced displacements of the supercell;
   :meth:`PhononSetup.displaced_supercells` returns them as :class:`ase.Atoms` (layer ids and pbc
   carried over); :meth:`PhononSetup.to_dict` / :meth:`PhononSetup.from_dict` serialise the setup
   (JSON types only) between steps.
2. :meth:`PhononSetup.supercell_modes` turns the forces into force constants (phonopy, with its
   translational/permutation symmetrisation, then an exact acoustic-sum-rule projection) and
   diagonalises the dynamical matrix of the *supercell* at its Γ point. Those are all phonon modes
   commensurate with the supercell, i.e. every q = G_sc of the primitive Brillouin zone folded to Γ:
   the modes the Monte-Carlo sampling (paper Eq. 1–2) needs.

Units are phonopy's defaults for eV/Å/amu: force constants in eV/Å², frequencies in THz
(``phonopy.physical_units.get_physical_units().DefaultToTHz`` = √(eV/Å²/amu)/(2π) in THz).
Imaginary frequencies are reported as negative numbers (phonopy convention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from phonopy import Phonopy
from phonopy.phonon.band_structure import get_band_qpoints_and_path_connections
from phonopy.physical_units import get_physical_units
from phonopy.structure.atoms import PhonopyAtoms

from .layers import LAYER_ARRAY, get_layer_ids
from .units import THZ_TO_CM1

ForceFunction = Callable[[Atoms], np.ndarray]

#: phonopy's conversion √(eV/(Å²·amu)) → THz (includes the 1/2π), ≈ 15.6333
EV_ANGSTROM2_AMU_TO_THZ = float(get_physical_units().DefaultToTHz)
#: phonopy's default finite displacement (Å)
DEFAULT_DISPLACEMENT_ANGSTROM = 0.01
#: default tolerance (THz) below which a negative frequency is counted as imaginary (≈ 1 cm⁻¹)
IMAGINARY_TOLERANCE_THZ = 1.0 / THZ_TO_CM1
#: version tag of the :meth:`PhononSetup.to_dict` layout
SETUP_FORMAT_VERSION = 1

#: phonopy's primitive cell is the unit cell as given ('P'); phonopy ≥ 4 would otherwise search one ('auto') and warn
UNIT_PRIMITIVE = "P"


class PhononError(ValueError):
    """Bad input to the phonon calculation (shapes, counts, supercell matrix, …)."""


# ---------------------------------------------------------------------------------------------
# conversions between ase and phonopy structures


def _to_phonopy_atoms(atoms: Atoms) -> PhonopyAtoms:
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.array(atoms.cell[:]),
                        positions=atoms.get_positions(), masses=atoms.get_masses())


def _to_ase(patoms: PhonopyAtoms, pbc: Sequence[bool], layer_ids: np.ndarray) -> Atoms:
    atoms = Atoms(symbols=list(patoms.symbols), cell=np.array(patoms.cell), positions=np.array(patoms.positions),
                  masses=np.array(patoms.masses), pbc=pbc)
    atoms.set_array(LAYER_ARRAY, np.asarray(layer_ids, dtype=int).copy())
    return atoms


def _supercell_matrix(matrix: Sequence[int] | Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """3×3 integer supercell matrix from a 3-vector (diagonal) or a 3×3 array."""
    m = np.asarray(matrix)
    if m.shape == (3,):
        m = np.diag(m)
    if m.shape != (3, 3):
        raise PhononError(f"supercell_matrix must be 3 integers or a 3x3 matrix, got shape {m.shape}")
    if not np.allclose(m, np.round(m)):
        raise PhononError(f"supercell_matrix must be integer, got {m.tolist()}")
    m = np.round(m).astype(int)
    if round(abs(np.linalg.det(m))) < 1:
        raise PhononError(f"supercell_matrix {m.tolist()} is singular")
    return m


# ---------------------------------------------------------------------------------------------
# the result: all modes of a supercell


@dataclass
class SupercellModes:
    """All harmonic phonon modes of a supercell (its Γ point = all commensurate q of the primitive).

    ``eigenvectors[μ]`` is the real, orthonormal, mass-weighted eigenvector of mode μ as an
    (N, 3) array; the Cartesian displacement pattern of the mode is ``eigenvectors[μ] / √M``.
    """

    supercell: Atoms  #: undisplaced supercell (with ``layer_ids``)
    frequencies_thz: np.ndarray  #: (3N,) THz, ascending; imaginary as negative numbers
    eigenvectors: np.ndarray  #: (3N, N, 3) real orthonormal mass-weighted eigenvectors
    masses_amu: np.ndarray  #: (N,) amu
    force_constants: np.ndarray  #: (N, N, 3, 3) eV/Å²
    acoustic_mask: np.ndarray  #: (3N,) bool, the 3 uniform-translation (Γ acoustic) modes

    @property
    def n_atoms(self) -> int:
        return len(self.supercell)

    @property
    def frequencies_cm1(self) -> np.ndarray:
        """Frequencies in cm⁻¹ (imaginary as negative numbers)."""
        return self.frequencies_thz * THZ_TO_CM1

    def n_imaginary(self, tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> int:
        """Number of modes with frequency below ``-tol_thz`` (THz)."""
        return int(np.count_nonzero(self.frequencies_thz < -abs(tol_thz)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (names are valid identifiers) that :meth:`from_arrays` reads back."""
        sc = self.supercell
        return {
            "frequencies_thz": np.asarray(self.frequencies_thz, dtype=float),
            "eigenvectors": np.asarray(self.eigenvectors, dtype=float),
            "masses_amu": np.asarray(self.masses_amu, dtype=float),
            "force_constants": np.asarray(self.force_constants, dtype=float),
            "acoustic_mask": np.asarray(self.acoustic_mask, dtype=bool),
            "cell": np.array(sc.cell[:], dtype=float),
            "positions": sc.get_positions(),
            "numbers": sc.get_atomic_numbers().astype(int),
            "pbc": np.asarray(sc.pbc, dtype=bool),
            "layer_ids": get_layer_ids(sc).astype(int),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "SupercellModes":
        """Inverse of :meth:`to_arrays`."""
        missing = {"frequencies_thz", "eigenvectors", "masses_amu", "force_constants", "acoustic_mask",
                   "cell", "positions", "numbers", "pbc", "layer_ids"} - set(arrays)
        if missing:
            raise PhononError(f"cannot rebuild SupercellModes: arrays {sorted(missing)} are missing")
        masses = np.asarray(arrays["masses_amu"], dtype=float)
        supercell = Atoms(numbers=np.asarray(arrays["numbers"], dtype=int), positions=arrays["positions"],
                          cell=arrays["cell"], pbc=np.asarray(arrays["pbc"], dtype=bool), masses=masses)
        supercell.set_array(LAYER_ARRAY, np.asarray(arrays["layer_ids"], dtype=int))
        return cls(supercell=supercell, frequencies_thz=np.asarray(arrays["frequencies_thz"], dtype=float),
                   eigenvectors=np.asarray(arrays["eigenvectors"], dtype=float), masses_amu=masses,
                   force_constants=np.asarray(arrays["force_constants"], dtype=float),
                   acoustic_mask=np.asarray(arrays["acoustic_mask"], dtype=bool))


def enforce_acoustic_sum_rule(force_constants: np.ndarray) -> np.ndarray:
    """Force constants (N, N, 3, 3) projected so that Σ_j Φ_ij = 0 exactly, symmetry kept.

    With Φ as a 3N×3N matrix F and P = 1 − T Tᵀ the projector off the three uniform translations
    (T_α = e_α on every atom, normalised), F' = P F P satisfies F'T = 0, i.e. the acoustic sum rule
    Σ_j Φ'_ij = 0 (and, being symmetric when F is, also Σ_i Φ'_ij = 0). Force constants that already
    obey the rule are returned unchanged; otherwise the drift is spread evenly over all blocks.
    """
    fc = np.asarray(force_constants, dtype=float)
    n = fc.shape[0]
    if fc.shape != (n, n, 3, 3):
        raise PhononError(f"force constants must have shape (N, N, 3, 3), got {fc.shape}")
    f = fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    t = np.tile(np.eye(3), (n, 1)) / np.sqrt(n)  # (3N, 3) orthonormal translations
    ft = f @ t
    f = f - ft @ t.T - t @ (t.T @ f) + t @ (t.T @ ft) @ t.T
    return f.reshape(n, 3, n, 3).transpose(0, 2, 1, 3).copy()


def translation_overlap(eigenvectors: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """(3N,) weight of each mass-weighted eigenvector in the 3-D space of uniform translations."""
    m = np.sqrt(np.asarray(masses_amu, dtype=float))
    t = np.zeros((3,) + eigenvectors.shape[1:])
    for alpha in range(3):
        t[alpha, :, alpha] = m
    t /= np.linalg.norm(m)
    proj = np.einsum("mia,kia->mk", eigenvectors, t)
    return (proj**2).sum(axis=1)


#: eigenvalues of the dynamical matrix closer than this (relative to the largest |ω²|) span one degenerate subspace
DEGENERACY_TOLERANCE = 1e-9


def canonical_eigenvectors(eigvals: np.ndarray, eigvecs: np.ndarray,
                           tol: float = DEGENERACY_TOLERANCE) -> np.ndarray:
    """The eigenvectors (columns) in a basis fixed by the dynamical matrix alone, not by the LAPACK build.

    Any orthonormal basis of a degenerate subspace, and either sign of a vector, are eigenvectors; LAPACK's choice
    changes with the library version and the thread count, and with it the special-displacement configuration
    and which Monte Carlo sample a seed gives (measured: the ZG test's worst-atom MSD error went from 0.62 to 0.87
    with numpy 2.4.6 / scipy 1.17.1). Here each degenerate subspace V is rotated to the eigenvectors of VᵀPV for a
    fixed diagonal probe P with distinct entries, and every vector's largest component is made positive.
    """
    vecs = np.array(eigvecs, dtype=float, copy=True)
    n = len(eigvals)
    scale = max(float(np.abs(eigvals).max(initial=0.0)), 1e-30)
    probe = np.cos(0.7 * np.arange(n) + 0.3) + np.arange(n) / (10.0 * n)  # distinct, deterministic
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and eigvals[stop] - eigvals[stop - 1] <= tol * scale:
            stop += 1
        if stop - start > 1:
            block = vecs[:, start:stop]
            _, rotation = np.linalg.eigh(block.T @ (probe[:, None] * block))
            vecs[:, start:stop] = block @ rotation
        start = stop
    largest = np.argmax(np.abs(vecs) - 1e-12 * np.arange(n)[:, None], axis=0)  # first of equal magnitudes
    vecs *= np.where(vecs[largest, np.arange(n)] < 0, -1.0, 1.0)[None, :]
    return vecs


def modes_from_force_constants(supercell: Atoms, force_constants: np.ndarray) -> SupercellModes:
    """Diagonalise the Γ dynamical matrix D = Φ/√(M_i M_j) of the supercell (all its modes).

    ``force_constants`` are the supercell's (N, N, 3, 3) in eV/Å² (periodic images already summed,
    as phonopy's supercell force constants are).
    """
    n = len(supercell)
    fc = np.asarray(force_constants, dtype=float)
    if fc.shape != (n, n, 3, 3):
        raise PhononError(f"force constants must have shape ({n}, {n}, 3, 3), got {fc.shape}")
    masses = supercell.get_masses().astype(float)
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(masses), 3)
    dyn = fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) * np.outer(inv_sqrt_m, inv_sqrt_m)
    dyn = 0.5 * (dyn + dyn.T)
    eigvals, eigvecs = np.linalg.eigh(dyn)
    eigvecs = canonical_eigenvectors(eigvals, eigvecs)
    freqs = np.sign(eigvals) * np.sqrt(np.abs(eigvals)) * EV_ANGSTROM2_AMU_TO_THZ
    vectors = eigvecs.T.reshape(3 * n, n, 3)
    overlap = translation_overlap(vectors, masses)
    acoustic = np.zeros(3 * n, dtype=bool)
    acoustic[np.argsort(-overlap, kind="stable")[:3]] = True
    sc = supercell.copy()
    if LAYER_ARRAY not in sc.arrays:
        sc.set_array(LAYER_ARRAY, get_layer_ids(supercell))
    return SupercellModes(supercell=sc, frequencies_thz=freqs, eigenvectors=vectors, masses_amu=masses,
                          force_constants=fc, acoustic_mask=acoustic)


# ---------------------------------------------------------------------------------------------
# band structure


@dataclass
class PhononBands:
    """Phonon dispersion along a path of the primitive (unit) cell's Brillouin zone."""

    qpoints: np.ndarray  #: (n_q, 3) reduced coordinates of the unit cell's reciprocal lattice
    distances: np.ndarray  #: (n_q,) path length in phonopy's units (2π/Å without the 2π)
    frequencies_thz: np.ndarray  #: (n_q, n_bands) THz
    segment_ends: list[int]  #: index of the last q-point of every segment
    tick_distances: list[float]  #: path length of each high-symmetry point
    tick_labels: list[str]  #: names of the high-symmetry points

    @property
    def frequencies_cm1(self) -> np.ndarray:
        return self.frequencies_thz * THZ_TO_CM1


def hexagonal_path(unitcell: Atoms) -> tuple[list[np.ndarray], list[str]]:
    """Γ–M–K–Γ in reduced coordinates of ``unitcell``'s reciprocal lattice (in-plane hexagonal cell).

    K is picked as the candidate (1/3,1/3), (2/3,1/3), (1/3,2/3) at the Brillouin-zone corner,
    |K| = 4π/(3a), so both the 120° and the 60° conventions of the in-plane cell work.
    """
    cell = np.array(unitcell.cell[:])
    a1, a2 = np.linalg.norm(cell[0]), np.linalg.norm(cell[1])
    cos = np.dot(cell[0], cell[1]) / (a1 * a2)
    if abs(a1 - a2) > 1e-6 * a1 or min(abs(cos + 0.5), abs(cos - 0.5)) > 1e-6:
        raise PhononError("the Γ–M–K–Γ path needs a hexagonal in-plane cell (|a1| = |a2|, 60° or 120°)")
    recip = np.linalg.inv(cell).T  # rows b_i / 2π
    target = 2.0 / (3.0 * a1)  # |K| / 2π
    candidates = [np.array(c) for c in ([1 / 3, 1 / 3, 0], [2 / 3, 1 / 3, 0], [1 / 3, 2 / 3, 0])]
    k_point = min(candidates, key=lambda c: abs(np.linalg.norm(c @ recip) - target))
    gamma, m_point = np.zeros(3), np.array([0.5, 0.0, 0.0])
    return [gamma, m_point, k_point, gamma], ["Γ", "M", "K", "Γ"]


def band_structure(unitcell: Atoms, supercell_matrix: Sequence[int] | np.ndarray, force_constants: np.ndarray,
                   path: Sequence[np.ndarray] | None = None, labels: Sequence[str] | None = None,
                   npoints: int = 51) -> PhononBands:
    """Phonon bands (phonopy band-structure API) from the supercell force constants (eV/Å²).

    The default path is Γ–M–K–Γ (:func:`hexagonal_path`); ``npoints`` q-points per segment.
    """
    if path is None:
        path, labels = hexagonal_path(unitcell)
    labels = list(labels) if labels is not None else [""] * len(path)
    if len(labels) != len(path):
        raise PhononError("give one label per point of the band path")
    phonon = Phonopy(_to_phonopy_atoms(unitcell), supercell_matrix=_supercell_matrix(supercell_matrix),
                     primitive_matrix=UNIT_PRIMITIVE)
    n_sc = len(phonon.supercell)
    fc = np.asarray(force_constants, dtype=float)
    if fc.shape != (n_sc, n_sc, 3, 3):
        raise PhononError(f"force constants must have shape ({n_sc}, {n_sc}, 3, 3), got {fc.shape}")
    phonon.force_constants = fc
    qpoints, connections = get_band_qpoints_and_path_connections([[list(p) for p in path]], npoints=npoints)
    phonon.run_band_structure(qpoints, path_connections=connections, labels=labels)
    bands = phonon.get_band_structure_dict()
    segment_ends, ticks = [], [float(bands["distances"][0][0])]
    total = 0
    for seg in bands["distances"]:
        total += len(seg)
        segment_ends.append(total - 1)
        ticks.append(float(seg[-1]))
    return PhononBands(qpoints=np.concatenate(bands["qpoints"]), distances=np.concatenate(bands["distances"]),
                       frequencies_thz=np.concatenate(bands["frequencies"]), segment_ends=segment_ends,
                       tick_distances=ticks, tick_labels=labels)


# ---------------------------------------------------------------------------------------------
# the finite-displacement setup


@dataclass
class PhononSetup:
    """Symmetry-reduced finite displacements of a supercell (by phonopy) and their bookkeeping.

    ``dataset`` is phonopy's type-1 displacement dataset (``{"natom", "first_atoms": [{"number",
    "displacement"}]}``, displacements in Å); it fixes the order of :meth:`displaced_supercells` and of
    the forces :meth:`supercell_modes` expects.
    """

    unitcell: Atoms
    supercell_matrix: np.ndarray  #: (3, 3) int
    displacement_angstrom: float
    dataset: dict
    symprec: float = 1e-5
    _phonopy: Phonopy | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, unitcell: Atoms, supercell_matrix: Sequence[int] | np.ndarray = (6, 6, 1),
               displacement_angstrom: float = DEFAULT_DISPLACEMENT_ANGSTROM, symprec: float = 1e-5) -> "PhononSetup":
        """Ask phonopy for the displacements (plus-minus pairs where phonopy decides: ``'auto'``)."""
        if not displacement_angstrom > 0:
            raise PhononError(f"displacement_angstrom must be positive, got {displacement_angstrom}")
        if len(unitcell) == 0:
            raise PhononError("cannot compute phonons of an empty structure")
        unit = unitcell.copy()
        ids = get_layer_ids(unitcell).astype(int)
        if LAYER_ARRAY in unit.arrays:
            del unit.arrays[LAYER_ARRAY]
        unit.set_array(LAYER_ARRAY, ids)
        setup = cls(unitcell=unit, supercell_matrix=_supercell_matrix(supercell_matrix),
                    displacement_angstrom=float(displacement_angstrom), dataset={}, symprec=float(symprec))
        phonon = setup.phonopy
        phonon.generate_displacements(distance=setup.displacement_angstrom, is_plusminus="auto")
        setup.dataset = _plain_dataset(phonon.dataset)
        return setup

    @property
    def phonopy(self) -> Phonopy:
        """The phonopy object (built lazily; holds the displacement dataset)."""
        if self._phonopy is None:
            phonon = Phonopy(_to_phonopy_atoms(self.unitcell), supercell_matrix=self.supercell_matrix,
                             primitive_matrix=UNIT_PRIMITIVE, symprec=self.symprec)
            if self.dataset:
                phonon.dataset = _numpy_dataset(self.dataset)
            self._phonopy = phonon
        return self._phonopy

    @property
    def n_displacements(self) -> int:
        return len(self.dataset.get("first_atoms", []))

    def _supercell_layer_ids(self) -> np.ndarray:
        sc = self.phonopy.supercell
        unit_ids = get_layer_ids(self.unitcell)
        unit_index = np.array([sc.u2u_map[s] for s in sc.s2u_map], dtype=int)
        return unit_ids[unit_index]

    @property
    def supercell(self) -> Atoms:
        """The undisplaced supercell (phonopy's atom order) with layer ids and pbc of the unit cell."""
        return _to_ase(self.phonopy.supercell, self.unitcell.pbc, self._supercell_layer_ids())

    def displaced_supercells(self) -> list[Atoms]:
        """One supercell per displacement of :attr:`dataset`, in its order."""
        ids = self._supercell_layer_ids()
        return [_to_ase(s, self.unitcell.pbc, ids) for s in self.phonopy.supercells_with_displacements]

    def to_dict(self) -> dict:
        """JSON-serialisable description (plain lists/floats/ints/strings); see :meth:`from_dict`."""
        u = self.unitcell
        return {
            "format_version": SETUP_FORMAT_VERSION,
            "unitcell": {
                "symbols": u.get_chemical_symbols(),
                "cell": np.array(u.cell[:]).tolist(),
                "positions": u.get_positions().tolist(),
                "masses": u.get_masses().tolist(),
                "pbc": [bool(p) for p in u.pbc],
                "layer_ids": [int(i) for i in get_layer_ids(u)],
            },
            "supercell_matrix": self.supercell_matrix.tolist(),
            "displacement_angstrom": self.displacement_angstrom,
            "symprec": self.symprec,
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PhononSetup":
        """Inverse of :meth:`to_dict`."""
        try:
            version = int(data["format_version"])
            cell = data["unitcell"]
            unit = Atoms(symbols=cell["symbols"], cell=cell["cell"], positions=cell["positions"],
                         masses=cell["masses"], pbc=cell["pbc"])
            unit.set_array(LAYER_ARRAY, np.asarray(cell["layer_ids"], dtype=int))
            setup = cls(unitcell=unit, supercell_matrix=_supercell_matrix(data["supercell_matrix"]),
                        displacement_angstrom=float(data["displacement_angstrom"]),
                        dataset=_plain_dataset(data["dataset"]), symprec=float(data["symprec"]))
        except KeyError as exc:
            raise PhononError(f"not a PhononSetup dictionary: key {exc} is missing") from exc
        if version != SETUP_FORMAT_VERSION:
            raise PhononError(f"PhononSetup format version {version} is not supported ({SETUP_FORMAT_VERSION} is)")
        return setup

    def force_constants(self, forces: Sequence[np.ndarray], residual: np.ndarray | None = None) -> np.ndarray:
        """Supercell force constants (N, N, 3, 3) in eV/Å² from the forces (eV/Å) of every displacement.

        ``residual``: the forces (eV/Å) of the undisplaced supercell, subtracted from every displaced one
        (the residual-force correction: a geometry that is not a stationary point of the force model — a
        catalogue structure not relaxed with it, or LCAO egg-box forces on a real-space grid — otherwise puts
        F₀/u, tens of eV/Å² at u = 0.01 Å, into the force constants of forward displacements).
        phonopy fits them (``produce_force_constants``), symmetrises them (translational and
        permutation symmetry, ``symmetrize_force_constants``, which leaves a small drift), then
        :func:`enforce_acoustic_sum_rule` makes Σ_j Φ_ij = 0 exact.
        """
        n_sc = len(self.phonopy.supercell)
        if len(forces) != self.n_displacements:
            raise PhononError(f"expected forces for {self.n_displacements} displaced supercells, got {len(forces)}")
        arrays = [np.asarray(f, dtype=float) for f in forces]
        if residual is not None:
            residual = np.asarray(residual, dtype=float)
            if residual.shape != (n_sc, 3) or not np.all(np.isfinite(residual)):
                raise PhononError(f"residual forces must be finite with shape ({n_sc}, 3), got {residual.shape}")
            arrays = [f - residual if f.shape == residual.shape else f for f in arrays]
        for k, f in enumerate(arrays):
            if f.shape != (n_sc, 3):
                raise PhononError(f"forces of displacement {k} have shape {f.shape}, expected ({n_sc}, 3)")
            if not np.all(np.isfinite(f)):
                raise PhononError(f"forces of displacement {k} contain NaN or infinity")
        phonon = Phonopy(_to_phonopy_atoms(self.unitcell), supercell_matrix=self.supercell_matrix,
                         primitive_matrix=UNIT_PRIMITIVE, symprec=self.symprec)
        phonon.dataset = _numpy_dataset(self.dataset)
        phonon.forces = np.array(arrays)
        phonon.produce_force_constants()
        phonon.symmetrize_force_constants(show_drift=False)
        return enforce_acoustic_sum_rule(phonon.force_constants)

    def supercell_modes(self, forces: Sequence[np.ndarray], residual: np.ndarray | None = None) -> SupercellModes:
        """All modes of the supercell from the forces (eV/Å) of :meth:`displaced_supercells` (``residual``: the
        undisplaced supercell's forces, subtracted; see :meth:`force_constants`)."""
        return modes_from_force_constants(self.supercell, self.force_constants(forces, residual))

    def band_structure(self, force_constants: np.ndarray, npoints: int = 51) -> PhononBands:
        """Γ–M–K–Γ bands of the unit cell from this setup's supercell force constants."""
        return band_structure(self.unitcell, self.supercell_matrix, force_constants, npoints=npoints)


def _plain_dataset(dataset: dict) -> dict:
    """phonopy type-1 dataset with JSON types only."""
    if "first_atoms" not in dataset:
        raise PhononError("only phonopy's type-1 displacement dataset (key 'first_atoms') is supported")
    return {
        "natom": int(dataset["natom"]),
        "first_atoms": [{"number": int(d["number"]),
                         "displacement": [float(x) for x in np.asarray(d["displacement"]).ravel()]}
                        for d in dataset["first_atoms"]],
    }


def _numpy_dataset(dataset: dict) -> dict:
    return {
        "natom": int(dataset["natom"]),
        "first_atoms": [{"number": int(d["number"]), "displacement": np.array(d["displacement"], dtype=float)}
                        for d in dataset["first_atoms"]],
    }


def compute_supercell_modes(unitcell: Atoms, supercell_matrix: Sequence[int] | np.ndarray,
                            force_fn: ForceFunction,
                            displacement_angstrom: float = DEFAULT_DISPLACEMENT_ANGSTROM,
                            subtract_residual: bool = False) -> SupercellModes:
    """Convenience: displacements, forces by ``force_fn`` (Atoms → (N, 3) eV/Å), all supercell modes
    (``subtract_residual``: one more force call, the undisplaced supercell's, subtracted)."""
    setup = PhononSetup.create(unitcell, supercell_matrix=supercell_matrix,
                               displacement_angstrom=displacement_angstrom)
    forces = [np.asarray(force_fn(atoms), dtype=float) for atoms in setup.displaced_supercells()]
    residual = np.asarray(force_fn(setup.supercell), dtype=float) if subtract_residual else None
    return setup.supercell_modes(forces, residual)
