"""GPAW in LCAO mode as a free DFT engine: total energy (eV), forces (eV/Å) and H(R), S(R) (eV).

GPAW is an optional dependency (extra ``gpaw``); importing this module does not import it.

Settings (:class:`GpawLcaoSettings`): ``mode='lcao'`` always; basis ``dzp`` by default (for C:
2s, 2p single-zeta + 2s, 2p split-valence + a d polarization function; 13 orbitals per atom),
PBE, real-space grid spacing ``grid_spacing_angstrom``, Fermi–Dirac smearing. The structure's
``pbc`` is passed on (bilayers: periodic in-plane, open along z, so no z k-points and no z images).
The energy is the force-consistent (Mermin free) energy, so forces = −∂E/∂x. Spin-paired, no
spin–orbit coupling. Optional: Pulay mixing (``mixer_*``, GPAW's defaults otherwise; the restart
ladder of :mod:`.scf_ladder` lowers β), PAW setups per element (``setups``, e.g. the
6-electron Mo), and DFT-D3 dispersion (``dispersion``), added to energy and forces after the SCF.

H(R), S(R) (:func:`lcao_hamiltonian`)
------------------------------------
GPAW gives H(k), S(k) on the irreducible k-points of the Γ-centred mesh (the calculation runs with
``point_group=False`` so the IBZ is only halved by time reversal: H(−k) = H(k)*). The project's
lattice gauge is H(k) = Σ_R e^{i k·R} H(R) with H_ij(R) = ⟨i, 0|H|j, R⟩; GPAW's LCAO Bloch sums
carry the opposite phase, H_GPAW(k) = Σ_R e^{−i k·R} ⟨i, 0|H|j, R⟩ (= our H(−k)). So we rebuild the
full mesh and transform with H(R) = (1/N_k) Σ_k e^{+i k·R} H_GPAW(k). (Measured on the AB unit cell,
8×8 k: with this sign all 12 in-plane 1.42 Å bond blocks have |H|max 9.4–9.7 eV and nothing beyond
5 Å exceeds 0.04 eV; with the other sign the 8 bonds that cross the cell boundary get 0.5–0.9 eV and
blocks 5–9 Å apart 2.9 eV. Eigenvalues cannot tell the two apart: on the mesh, and for a
centrosymmetric cell everywhere, both give the same spectrum.)

*Which R*. The discrete transform only determines H(R) modulo the mesh supercell (N1 a1, N2 a2).
PAW-LCAO matrix elements vanish exactly beyond a finite range: ⟨φ_μ|φ_ν⟩ and ⟨φ_μ|v|φ_ν⟩ need the
two basis functions to overlap (r_c(i) + r_c(j)), and the PAW corrections Σ_a ⟨φ_μ|p̃_a⟩ ΔO_a ⟨p̃_a|φ_ν⟩
need both to reach one projector sphere, so the range is r_c(i) + r_c(j) + 2 r_p (r_c the largest
basis cutoff of an atom, r_p the largest projector cutoff): 3.53 + 3.53 + 2 × 1.14 = 9.34 Å for C
dzp. For each atom pair we keep the one image R with |r_j + R − r_i| below that range; this is
exact as long as no two images of a pair are both that close, i.e. the mesh supercell is longer
than twice the range in every periodic direction (18.7 Å for C dzp: 8×8 k for the graphene unit
cell, 4×4 for a 2×2 supercell). If two images qualify, :class:`GpawHamiltonianError` asks for a
denser mesh instead of silently aliasing (we measured: with the range 7.06 Å, i.e. without the
projector term, S(k) rebuilt on a 6×6 mesh is off by 1e-3).

*Orbital order and signs*. GPAW orders an atom's orbitals by basis function (for C dzp l = 0, 1,
0, 1, 2: the stored ``basis`` is ``{6: (0, 1, 0, 1, 2)}``) and, inside a shell, by m = −l…l of its
real spherical harmonics, which are positive real solid harmonics without Condon–Shortley phase:
p (y, z, x), d (xy, yz, 3z²−r², xz, x²−y²). That is exactly the "m order" of
:data:`aiida_mlepi.core.wigner.SH_ORDER_FROM_OPENMX`, so only a permutation is needed to reach the
OpenMX order (p: x, y, z; d: 3z²−r², x²−y², xy, xz, yz), no sign change. Checked in
``tests/core/test_gpaw_engine.py``: (i) the blocks of a structure rotated about z by 40° and
mirrored in z equal D H Dᵀ with the Wigner matrices of :mod:`aiida_mlepi.core.wigner` (within the
real-space-grid error), while the unpermuted GPAW order fails that test by ~eV; (ii) eigenvalues of
H(k), S(k) rebuilt from H(R) at the calculation's k-points equal GPAW's own eigenvalues; (iii) the
largest inter-atomic blocks sit on the shortest (1.42 Å) bonds; (iv) the s–p and s–d couplings of
every nearest bond point along the bond as the two-centre (Slater–Koster) forms say, which checks
the order, the signs and the sign of R together (the fast test of the default selection).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import Bohr

from ..hamiltonian import HamiltonianR
from ..wigner import SH_ORDER_FROM_OPENMX

#: Debian's gpaw-data package puts the PAW setups here; used if GPAW finds none of its own
DEBIAN_SETUP_PATH = Path("/usr/share/gpaw-setups")


#: ``GpawLcaoSettings.dispersion`` → the ``damping`` of ``dftd3.ase.DFTD3`` (``None``: no correction)
DISPERSION_DAMPING = {"none": None, "d3bj": "d3bj", "d3zero": "d3zero"}


class GpawUnavailableError(RuntimeError):
    """GPAW (or its PAW setups) is not installed."""


class GpawHamiltonianError(ValueError):
    """H(R) cannot be obtained exactly from this k mesh."""


@dataclass(frozen=True)
class GpawLcaoSettings:
    """GPAW LCAO parameters (eV, Å); ``mode='lcao'`` is implied."""

    basis: str = "dzp"
    xc: str = "PBE"
    grid_spacing_angstrom: float = 0.2
    smearing_width_ev: float = 0.1  #: Fermi–Dirac k_B T
    density_convergence: float = 1.0e-5  #: GPAW's 'density' criterion (electrons per valence electron)
    max_scf_iterations: int = 300
    #: Pulay density mixing (GPAW ``mixer``); ``None`` = GPAW's default, which for any periodic direction
    #: is beta 0.05, history 5, metric weight 50 and for a molecule 0.25, 3, 1 (``gpaw.mixer``)
    mixer_beta: float | None = None
    mixer_history: int | None = None
    mixer_weight: float | None = None
    #: a-posteriori dispersion correction added to energy and forces (not to H(R)): ``'none'`` or
    #: Grimme's DFT-D3 with Becke–Johnson (``'d3bj'``) or zero (``'d3zero'``) damping for ``xc``
    #: (Grimme et al., JCP 132, 154104 (2010); JCC 32, 1456 (2011)) through the ``dftd3`` package
    dispersion: str = "none"
    #: PAW setup per element, e.g. ``{"Mo": "6"}`` for GPAW's 6-valence-electron Mo (no 4s4p semicore)
    setups: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.05 <= self.grid_spacing_angstrom <= 0.4:
            raise ValueError(f"grid_spacing_angstrom must be in [0.05, 0.4] Å, got {self.grid_spacing_angstrom}")
        if self.smearing_width_ev < 0:
            raise ValueError("smearing_width_ev must be ≥ 0")
        if self.density_convergence <= 0 or self.max_scf_iterations < 1:
            raise ValueError("density_convergence must be > 0 and max_scf_iterations ≥ 1")
        if self.mixer_beta is not None and not 0.0 < self.mixer_beta <= 1.0:
            raise ValueError(f"mixer_beta must be in (0, 1], got {self.mixer_beta}")
        if self.mixer_history is not None and self.mixer_history < 1:
            raise ValueError(f"mixer_history must be ≥ 1, got {self.mixer_history}")
        if self.mixer_weight is not None and self.mixer_weight < 1.0:
            raise ValueError(f"mixer_weight must be ≥ 1, got {self.mixer_weight}")
        if self.dispersion not in DISPERSION_DAMPING:
            raise ValueError(f"dispersion must be one of {sorted(DISPERSION_DAMPING)}, got {self.dispersion!r}")
        if not isinstance(self.setups, dict):
            raise ValueError(f"setups must be a mapping element → setup name, got {self.setups!r}")

    @property
    def mixer(self) -> dict:
        """GPAW's ``mixer`` keyword: only the values set here (GPAW fills in its defaults)."""
        values = {"beta": self.mixer_beta, "nmaxold": self.mixer_history, "weight": self.mixer_weight}
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def from_dict(cls, values: dict) -> "GpawLcaoSettings":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GPAW settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class GpawLcaoResult:
    """Output of :func:`compute` (eV, Å)."""

    energy: float  #: force-consistent free energy, eV
    forces: np.ndarray  #: (N, 3) eV/Å
    fermi_level: float  #: eV
    hamiltonian: HamiltonianR | None = None
    ibz_kpoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  #: fractional
    eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  #: (nk_ibz, nbands) eV
    scf_iterations: int = 0
    seconds: dict = field(default_factory=dict)  #: wall time of 'scf', 'forces', 'hamiltonian'
    gpaw_version: str = ""
    dispersion_energy: float = 0.0  #: DFT-D3 part of ``energy`` (eV; 0 without dispersion)
    calculator: object = field(default=None, repr=False)  #: the converged GPAW calculator (not serialised)


def gpaw_available() -> tuple[bool, str]:
    """Whether GPAW imports and has setups for carbon, and if not, why."""
    try:
        import gpaw  # noqa: F401
        from gpaw import setup_paths
    except Exception as exception:  # noqa: BLE001 - any import failure (missing, ABI, libxc)
        return False, f"GPAW is not importable: {type(exception).__name__}: {exception}"
    configure_setup_path()
    from gpaw import setup_paths

    if not any(Path(p, "C.PBE.gz").exists() or Path(p, "C.PBE").exists() for p in setup_paths):
        return False, f"no GPAW PAW setups found in {list(setup_paths)} (install gpaw-data or set GPAW_SETUP_PATH)"
    return True, ""


def configure_setup_path() -> None:
    """Add Debian's setups (``/usr/share/gpaw-setups``) if GPAW has none and GPAW_SETUP_PATH is unset."""
    from gpaw import setup_paths

    if os.environ.get("GPAW_SETUP_PATH"):
        return
    if not any(Path(p).is_dir() for p in setup_paths) and DEBIAN_SETUP_PATH.is_dir():
        setup_paths.append(str(DEBIAN_SETUP_PATH))


def make_calculator(atoms: Atoms, kpts: tuple[int, int, int], settings: GpawLcaoSettings, txt=None):
    """The GPAW LCAO calculator (point-group symmetry off, time reversal on)."""
    try:
        from gpaw import GPAW
    except Exception as exception:  # noqa: BLE001
        raise GpawUnavailableError(f"GPAW is not importable: {exception}") from None
    configure_setup_path()
    kpts = tuple(int(k) if periodic else 1 for k, periodic in zip(kpts, atoms.pbc))
    extra = {"mixer": settings.mixer} if settings.mixer else {}
    if settings.setups:
        extra["setups"] = dict(settings.setups)
    # spin-paired, no spin–orbit coupling (GPAW adds SOC only non-self-consistently, gpaw.spinorbit)
    return GPAW(mode="lcao", basis=settings.basis, xc=settings.xc, h=settings.grid_spacing_angstrom,
                kpts={"size": kpts, "gamma": True}, spinpol=False,
                occupations={"name": "fermi-dirac", "width": settings.smearing_width_ev},
                convergence={"density": settings.density_convergence}, maxiter=settings.max_scf_iterations,
                symmetry={"point_group": False, "time_reversal": True}, txt=txt, **extra)


def dispersion_correction(atoms: Atoms, settings: GpawLcaoSettings) -> tuple[float, np.ndarray]:
    """DFT-D3 (energy eV, forces (N, 3) eV/Å) for ``settings.dispersion`` and ``settings.xc``; zeros if 'none'.

    The dispersion energy is a classical pair/three-body sum on the nuclear positions: it adds to the
    energy and forces and leaves the Kohn–Sham H(R) unchanged (the electron dataset is the same with
    or without it). Needs the ``dftd3`` package (simple-dftd3's Python API, PyPI wheel; extra ``gpaw``).
    """
    damping = DISPERSION_DAMPING[settings.dispersion]
    if damping is None:
        return 0.0, np.zeros((len(atoms), 3))
    try:
        from dftd3.ase import DFTD3
    except ImportError as exception:
        raise GpawUnavailableError(f"dispersion={settings.dispersion!r} needs the dftd3 package: {exception}") from None
    probe = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    probe.calc = DFTD3(method=settings.xc, damping=damping)
    return float(probe.get_potential_energy()), np.asarray(probe.get_forces())


def compute(atoms: Atoms, kpts: tuple[int, int, int], settings: GpawLcaoSettings = GpawLcaoSettings(),
            hamiltonian: bool = False, txt: str | Path | None = None, forces: bool = True) -> GpawLcaoResult:
    """Energy (eV), forces (eV/Å; NaN if ``forces=False``) and optionally H(R), S(R) with GPAW LCAO."""
    import gpaw

    atoms = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    # GPAW keeps its basis functions at the positions wrapped into the cell, and its Bloch phases follow them: an
    # atom displaced just outside the cell (a thermal sample) would otherwise get H(R), S(R) blocks with R off by
    # one lattice vector, and S(k) not positive definite (seen on displaced 3×3 hBN supercells). Wrap first, so
    # that the H(R) positions are GPAW's own (forces and energy do not change).
    atoms.wrap()
    atoms.calc = make_calculator(atoms, kpts, settings, txt=None if txt is None else str(txt))
    seconds = {}
    start = time.perf_counter()
    energy = atoms.get_potential_energy(force_consistent=True)
    seconds["scf"] = time.perf_counter() - start
    start = time.perf_counter()
    forces = atoms.get_forces() if forces else np.full((len(atoms), 3), np.nan)
    seconds["forces"] = time.perf_counter() - start
    start = time.perf_counter()
    dispersion_energy, dispersion_forces = dispersion_correction(atoms, settings)
    energy, forces = energy + dispersion_energy, forces + dispersion_forces
    seconds["dispersion"] = time.perf_counter() - start
    calc = atoms.calc
    ibzk = np.asarray(calc.get_ibz_k_points())
    eigenvalues = np.array([calc.get_eigenvalues(kpt=k) for k in range(len(ibzk))])
    result = GpawLcaoResult(energy=float(energy), forces=np.asarray(forces), fermi_level=float(calc.get_fermi_level()),
                            ibz_kpoints=ibzk, eigenvalues=eigenvalues,
                            scf_iterations=int(calc.get_number_of_iterations() or 0), seconds=seconds,
                            gpaw_version=gpaw.__version__, calculator=calc,
                            dispersion_energy=dispersion_energy)
    if hamiltonian:
        start = time.perf_counter()
        result.hamiltonian = lcao_hamiltonian(calc, atoms)
        result.hamiltonian.metadata.update({"fermi_level_ev": result.fermi_level, "engine": "gpaw-lcao",
                                            "settings": settings.as_dict()})
        seconds["hamiltonian"] = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------------------- H(R)
def basis_of(calc) -> tuple[dict[int, tuple[int, ...]], np.ndarray]:
    """({Z: l of each basis function}, interaction reach (Å) of each atom: r_c(basis) + max r_p(projectors)).

    Matrix elements between atoms i and j vanish beyond reach_i + reach_j (see the module docstring).
    """
    basis, basis_cut, projector_cut = {}, [], []
    for setup in calc.wfs.setups:
        basis[int(setup.Z)] = tuple(int(bf.l) for bf in setup.basis.bf_j)
        basis_cut.append(max(bf.rc for bf in setup.basis.bf_j) * Bohr)
        projector_cut.append(max(pt.get_cutoff() for pt in setup.pt_j) * Bohr)
    return basis, np.array(basis_cut) + max(projector_cut)


def exact_hamiltonian_mesh(atoms: Atoms, settings: GpawLcaoSettings = GpawLcaoSettings(),
                           max_n: int = 64) -> tuple[int, int, int]:
    """The smallest Γ-centred mesh (n, n, ·) on which :func:`lcao_hamiltonian` is exact for ``atoms``.

    Sets GPAW up (basis, setups; no SCF) to read each atom's reach (:func:`basis_of`) and returns
    the least n for which the shortest vector of the mesh supercell (n a1, n a2 over the periodic
    directions; 1 along open ones) exceeds twice the largest pair range reach_i + reach_j.
    """
    calc = make_calculator(atoms, (1, 1, 1), settings)
    probe = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    calc.initialize(probe)
    _, reach = basis_of(calc)
    needed = 2.0 * float((reach[:, None] + reach[None, :]).max())
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell)
    steps = np.stack(np.meshgrid(*[np.arange(-2, 3) if p else [0] for p in pbc], indexing="ij"), -1).reshape(-1, 3)
    steps = steps[np.any(steps != 0, axis=1)]
    for n in range(1, max_n + 1):
        mesh = np.where(pbc, n, 1)
        if np.linalg.norm((steps * mesh) @ cell, axis=1).min() > needed:
            return tuple(int(m) for m in mesh)
    raise GpawHamiltonianError(f"no mesh up to {max_n} makes H(R) exact (pair range {needed / 2:.2f} Å)")


def openmx_permutation(shells: tuple[int, ...]) -> np.ndarray:
    """``perm`` with ``M_openmx[perm] = M_gpaw`` order: ``perm[g]`` is the OpenMX index of GPAW orbital g."""
    perm, offset = [], 0
    for l in shells:
        perm.extend(offset + np.asarray(SH_ORDER_FROM_OPENMX[l]))
        offset += 2 * l + 1
    return np.asarray(perm, dtype=int)


def full_mesh_matrices(calc) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k_frac (Nk, 3), H(k) (Nk, M, M) eV, S(k), mesh size) on the full Γ-centred mesh (GPAW orbital order)."""
    from gpaw.lcao.tools import get_lcao_hamiltonian

    h_skmm, s_kmm = get_lcao_hamiltonian(calc)
    if h_skmm.shape[0] != 1:
        raise GpawHamiltonianError("spin-polarised calculations are not supported")
    ibzk = np.asarray(calc.get_ibz_k_points())
    mesh = np.asarray(calc.parameters.kpts["size"], dtype=int)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in mesh], indexing="ij"), -1).reshape(-1, 3) / mesh
    h_k, s_k = [], []
    for k in grid:
        direct = np.all(np.isclose((ibzk - k + 0.5) % 1.0 - 0.5, 0.0, atol=1e-8), axis=1)
        reverse = np.all(np.isclose((ibzk + k + 0.5) % 1.0 - 0.5, 0.0, atol=1e-8), axis=1)
        if direct.any():
            n = int(np.flatnonzero(direct)[0])
            h_k.append(h_skmm[0, n]), s_k.append(s_kmm[n])
        elif reverse.any():  # time reversal: H(−k) = H(k)*
            n = int(np.flatnonzero(reverse)[0])
            h_k.append(h_skmm[0, n].conj()), s_k.append(s_kmm[n].conj())
        else:
            raise GpawHamiltonianError(f"k-point {k} of the mesh is not (±) an irreducible k-point of GPAW")
    return grid, np.array(h_k), np.array(s_k), mesh


def lcao_hamiltonian(calc, atoms: Atoms, imag_tolerance_ev: float = 1e-6) -> HamiltonianR:
    """Real-space H(R) (eV), S(R) in OpenMX orbital order from a converged GPAW LCAO calculation."""
    basis, cutoffs = basis_of(calc)
    kfrac, h_k, s_k, mesh = full_mesh_matrices(calc)
    numbers = atoms.numbers
    norb = np.array([sum(2 * l + 1 for l in basis[int(z)]) for z in numbers])
    offsets = np.concatenate([[0], np.cumsum(norb)])
    perms = {z: openmx_permutation(ls) for z, ls in basis.items()}

    # H(n) for every n in the mesh supercell: (1/Nk) Σ_k e^{+2πi k·n} H_GPAW(k) (GPAW's opposite Bloch phase)
    cells = np.stack(np.meshgrid(*[np.arange(n) for n in mesh], indexing="ij"), -1).reshape(-1, 3)
    phases = np.exp(2j * np.pi * cells @ kfrac.T) / len(kfrac)  # (Nn, Nk)
    h_n = np.einsum("nk,kab->nab", phases, h_k)
    s_n = np.einsum("nk,kab->nab", phases, s_k)
    imag = max(np.abs(h_n.imag).max(), np.abs(s_n.imag).max())
    if imag > imag_tolerance_ev:
        raise GpawHamiltonianError(f"H(R) has an imaginary part of {imag:.2e} eV: inconsistent k-point data")

    cell = np.asarray(atoms.cell)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    images = [np.arange(-2, 3) if p else np.zeros(1, dtype=int) for p in pbc]
    shifts = np.stack(np.meshgrid(*images, indexing="ij"), -1).reshape(-1, 3)  # multiples of the mesh
    edges, h_values, s_values = [], [], []
    pos = atoms.positions
    for ni, n in enumerate(cells):
        candidates = n + shifts * mesh  # all lattice vectors equivalent to n modulo the mesh supercell
        lattice = candidates @ cell
        for i in range(len(atoms)):
            d = pos[None, :, :] + lattice[:, None, :] - pos[i]  # (images, j, 3)
            dist = np.linalg.norm(d, axis=-1)
            within = dist < (cutoffs[i] + cutoffs)[None, :]
            count = within.sum(axis=0)
            if np.any(count > 1):
                j = int(np.flatnonzero(count > 1)[0])
                raise GpawHamiltonianError(
                    f"k mesh {mesh.tolist()} too coarse for an exact H(R): two images of atom pair ({i}, {j}) lie "
                    f"within the basis range {cutoffs[i] + cutoffs[j]:.2f} Å; the mesh supercell must be longer "
                    f"than twice that")
            for j in np.flatnonzero(count == 1):
                R = candidates[int(np.flatnonzero(within[:, j])[0])]
                pi, pj = perms[int(numbers[i])], perms[int(numbers[j])]
                block_h = np.empty((norb[i], norb[j]))
                block_s = np.empty((norb[i], norb[j]))
                block_h[np.ix_(pi, pj)] = h_n[ni, offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]].real
                block_s[np.ix_(pi, pj)] = s_n[ni, offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]].real
                edges.append((*R.tolist(), i, int(j)))
                h_values.append(block_h.ravel())
                s_values.append(block_s.ravel())
    return HamiltonianR(cell=cell, positions=pos, numbers=numbers, basis=basis, edges=np.array(edges),
                        h_values=np.concatenate(h_values), s_values=np.concatenate(s_values),
                        pbc=tuple(bool(p) for p in pbc),
                        metadata={"kpoints_mesh": mesh.tolist(), "max_imag_ev": float(imag)})


# ---------------------------------------------------------------------------------------- file runner
#: file names of the CalcJob runner (``python -m aiida_mlepi.core.engine.gpaw_lcao IN OUT``)
INPUT_FILENAME = "aiida_input.json"
OUTPUT_FILENAME = "aiida_output.npz"
ERROR_FILENAME = "aiida_error.json"
LOG_FILENAME = "gpaw.txt"


def write_input(path: str | Path, atoms: Atoms, kpts: tuple[int, int, int], settings: GpawLcaoSettings,
                hamiltonian: bool) -> None:
    """The runner's JSON input: structure (Å), k mesh, settings, whether to build H(R)."""
    import json

    Path(path).write_text(json.dumps({
        "numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
        "cell": np.asarray(atoms.cell).tolist(), "pbc": [bool(p) for p in atoms.pbc],
        "kpts": [int(k) for k in kpts], "settings": settings.as_dict(), "hamiltonian": bool(hamiltonian),
    }, indent=1))


def run_files(input_path: str | Path, output_path: str | Path, error_path: str | Path = ERROR_FILENAME,
              log_path: str | Path = LOG_FILENAME) -> int:
    """Run one calculation from a JSON input into an ``.npz``; on failure write ``{type, message}`` JSON."""
    import json

    try:
        spec = json.loads(Path(input_path).read_text())
        atoms = Atoms(spec["numbers"], positions=spec["positions"], cell=spec["cell"], pbc=spec["pbc"])
        result = compute(atoms, tuple(spec["kpts"]), GpawLcaoSettings.from_dict(spec["settings"]),
                         hamiltonian=spec["hamiltonian"], txt=log_path)
    except Exception as exception:  # noqa: BLE001 - reported to the parser, which classifies it
        Path(error_path).write_text(json.dumps({"type": type(exception).__name__, "message": str(exception)}))
        return 1
    arrays = {"energy": np.array([result.energy]), "forces": result.forces, "fermi_level": np.array([result.fermi_level]),
              "ibz_kpoints": result.ibz_kpoints, "eigenvalues": result.eigenvalues,
              "info": np.array(json.dumps({"scf_iterations": result.scf_iterations, "seconds": result.seconds,
                                           "gpaw_version": result.gpaw_version,
                                           "dispersion_energy_ev": result.dispersion_energy}))}
    h = result.hamiltonian
    if h is not None:
        arrays.update({"h_cell": h.cell, "h_positions": h.positions, "h_numbers": h.numbers, "h_edges": h.edges,
                       "h_values": h.h_values, "s_values": h.s_values,
                       "h_basis": np.array(json.dumps({str(z): list(ls) for z, ls in h.basis.items()})),
                       "h_pbc": np.array(h.pbc), "h_metadata": np.array(json.dumps(h.metadata))})
    np.savez(output_path, **arrays)
    return 0


def read_hamiltonian(arrays) -> HamiltonianR | None:
    """The HamiltonianR stored by :func:`run_files` (``None`` if none was asked for)."""
    import json

    if "h_values" not in arrays:
        return None
    return HamiltonianR(cell=arrays["h_cell"], positions=arrays["h_positions"], numbers=arrays["h_numbers"],
                        basis={int(z): tuple(ls) for z, ls in json.loads(str(arrays["h_basis"])).items()},
                        edges=arrays["h_edges"], h_values=arrays["h_values"], s_values=arrays["s_values"],
                        pbc=tuple(bool(p) for p in arrays["h_pbc"]), metadata=json.loads(str(arrays["h_metadata"])))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m aiida_mlepi.core.engine.gpaw_lcao INPUT.json OUTPUT.npz")
    sys.exit(run_files(sys.argv[1], sys.argv[2]))
