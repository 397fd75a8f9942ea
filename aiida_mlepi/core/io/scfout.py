"""Read and write OpenMX 3.9's binary ``System.Name.scfout`` (written with ``HS.fileout on``).

Layout (OpenMX 3.9 ``source/SCF2File.c`` writes it, ``source/read_scfout.c`` documents it; all
numbers in the machine's native byte order, ``int`` = int32, ``double`` = float64)::

    int    atomnum, SpinP_switch + 4*version, Catomnum, Latomnum, Ratomnum, TCpyCell
    int    order_max
    double atv[TCpyCell+1][4]          cell translations, Bohr ([0] unused)
    int    atv_ijk[TCpyCell+1][4]      the same as integer multiples of a1, a2, a3 ([0] unused)
    int    Total_NumOrbs[atomnum]      orbitals per atom
    int    FNAN[atomnum]               neighbours per atom (the atom itself not counted)
    int    natn[atom][FNAN+1]          1-based global index of each neighbour (h_AN = 0 is itself)
    int    ncn[atom][FNAN+1]           index into atv/atv_ijk of the neighbour's cell
    double tv[3][4], rtv[3][4]         lattice vectors (Bohr) and reciprocal vectors (Bohr^-1)
    double Gxyz[atomnum][4]            Cartesian positions, Bohr ([0] unused)
    then, for every (atom, h_AN) block of shape (Total_NumOrbs[atom], Total_NumOrbs[natn]):
    double Hks[SpinP_switch+1][blocks]          Kohn–Sham H, Hartree
    double iHks[3][blocks]                      imaginary H, only if SpinP_switch == 3 (SOC/NC)
    double OLP[blocks]                          overlap S
    double OLPpo[3][order_max][blocks]          <i|x^order|j> (position operator), Bohr
    double OLPmo[3][blocks]                     momentum-operator overlaps
    double DM[SpinP_switch+1][blocks]           density matrix
    double iDM[2][blocks]                       imaginary density matrix (always two)
    int    Solver
    double ChemP (Hartree), E_Temp (K), dipole_moment_core[3], dipole_moment_background[3],
           Valence_Electrons, Total_SpinS
           (OpenMX keeps E_Temp = T/eV2Hartree internally and writes E_Temp*eV2Hartree: the
           electronic temperature in Kelvin, e.g. 300.0 for scf.ElectronicTemperature 300)
    int    num_lines;  char line[num_lines][256]   the input file, NUL-padded lines
    (anything after that: DeepH's workflow appends the ``.out`` text with ``cat``)

The version code ``SpinP_switch // 4`` is 3 for OpenMX 3.9 (0: 3.7/3.8 and older; 1, 2:
development formats); only 3 is read. A byte-swapped header is detected and read big-endian.
Nothing here was checked against a real ``.scfout`` (none is available); the layout follows the
OpenMX 3.9 sources named above and agrees with DeepH-pack's ``openmx_get_data.jl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from aiida_mlepi.core.hamiltonian import HamiltonianR, shell_size
from aiida_mlepi.core.io.openmx_input import OpenmxInputError, basis_shells, parse_openmx_keywords
from aiida_mlepi.core.io.openmx_out import OPENMX_BOHR_ANG, OPENMX_HARTREE_EV

__all__ = [
    "SCFOUT_VERSION",
    "ScfoutData",
    "ScfoutFormatError",
    "hamiltonian_to_scfout",
    "read_scfout",
    "scfout_to_hamiltonian",
    "write_scfout",
]

SCFOUT_VERSION = 3  #: version code of the OpenMX 3.9 layout (read_scfout.c: SCFOUT_VERSION)
LINE_SIZE = 256  #: MAX_LINE_SIZE of the embedded input-file lines
_VALID_SPIN = (0, 1, 3)


class ScfoutFormatError(ValueError):
    """The file is not a readable OpenMX 3.9 ``.scfout`` (wrong version, truncated, inconsistent)."""


@dataclass
class ScfoutData:
    """Contents of a ``.scfout`` file, in OpenMX's units (Hartree, Bohr).

    Block matrices are stored flat: each block (atom ``a``, neighbour ``h``) of shape
    (Total_NumOrbs[a], Total_NumOrbs[natn[a][h]]) row-major, blocks in file order (atom, then
    h_AN); see :attr:`block_offsets`. ``natn`` is 1-based as in the file.
    """

    spinp_switch: int  #: 0 non-polarised, 1 collinear, 3 non-collinear
    atv: np.ndarray  #: (TCpyCell+1, 3) Bohr
    atv_ijk: np.ndarray  #: (TCpyCell+1, 3) int
    total_num_orbs: np.ndarray  #: (N,)
    natn: list[np.ndarray]  #: per atom (FNAN+1,), 1-based atom index
    ncn: list[np.ndarray]  #: per atom (FNAN+1,), index into atv
    tv: np.ndarray  #: (3, 3) Bohr, rows
    rtv: np.ndarray  #: (3, 3) Bohr^-1, rows
    gxyz: np.ndarray  #: (N, 3) Bohr
    hks: np.ndarray  #: (SpinP_switch+1, M) Hartree
    olp: np.ndarray  #: (M,)
    olp_r: np.ndarray  #: (3, order_max, M) Bohr^order
    olp_p: np.ndarray  #: (3, M)
    dm: np.ndarray  #: (SpinP_switch+1, M)
    idm: np.ndarray  #: (2, M)
    ihks: np.ndarray | None = None  #: (3, M) Hartree, only for SpinP_switch == 3
    solver: int = 3
    chemical_potential_hartree: float = 0.0
    electronic_temperature_k: float = 300.0  #: scf.ElectronicTemperature, K (OpenMX's default 300)
    dipole_moment_core: np.ndarray = field(default_factory=lambda: np.zeros(3))
    dipole_moment_background: np.ndarray = field(default_factory=lambda: np.zeros(3))
    valence_electrons: float = 0.0
    total_spin_s: float = 0.0
    input_lines: list[str] = field(default_factory=list)
    appended_text: str = ""
    catomnum: int = 0
    latomnum: int = 0
    ratomnum: int = 0
    version: int = SCFOUT_VERSION

    def __post_init__(self) -> None:
        if self.spinp_switch not in _VALID_SPIN:
            raise ScfoutFormatError(f"SpinP_switch must be 0, 1 or 3, got {self.spinp_switch}")
        self.total_num_orbs = np.asarray(self.total_num_orbs, dtype=np.int64)
        self.natn = [np.asarray(a, dtype=np.int64) for a in self.natn]
        self.ncn = [np.asarray(a, dtype=np.int64) for a in self.ncn]
        n = self.atomnum
        if len(self.natn) != n or len(self.ncn) != n or np.shape(self.gxyz) != (n, 3):
            raise ScfoutFormatError("natn, ncn and Gxyz must have one entry per atom")
        for a, (nat, nc) in enumerate(zip(self.natn, self.ncn)):
            if nat.shape != nc.shape or nat.min() < 1 or nat.max() > n:
                raise ScfoutFormatError(f"neighbour list of atom {a + 1} is inconsistent")
            if nc.min() < 0 or nc.max() >= len(self.atv_ijk):
                raise ScfoutFormatError(f"cell index of a neighbour of atom {a + 1} is out of range")
        m = self.num_block_values
        nspin = self.spinp_switch + 1
        expected = {"hks": (nspin, m), "olp": (m,), "olp_p": (3, m), "dm": (nspin, m), "idm": (2, m)}
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ScfoutFormatError(f"{name} has shape {np.shape(getattr(self, name))}, expected {shape}")
        if np.ndim(self.olp_r) != 3 or np.shape(self.olp_r)[::2] != (3, m):
            raise ScfoutFormatError(f"olp_r must have shape (3, order_max, {m})")
        if (self.spinp_switch == 3) != (self.ihks is not None):
            raise ScfoutFormatError("ihks is present exactly when SpinP_switch == 3")
        if self.ihks is not None and np.shape(self.ihks) != (3, m):
            raise ScfoutFormatError(f"ihks must have shape (3, {m})")

    # ------------------------------------------------------------------ bookkeeping
    @property
    def atomnum(self) -> int:
        return len(self.total_num_orbs)

    @property
    def fnan(self) -> np.ndarray:
        """(N,) number of neighbours of each atom, the atom itself not counted."""
        return np.array([len(a) - 1 for a in self.natn], dtype=np.int64)

    @property
    def tcpycell(self) -> int:
        return len(self.atv) - 1

    @property
    def order_max(self) -> int:
        return int(np.shape(self.olp_r)[1])

    @property
    def block_shapes(self) -> np.ndarray:
        """(blocks, 2) shapes in file order."""
        no = self.total_num_orbs
        return np.array([(no[a], no[j - 1]) for a in range(self.atomnum) for j in self.natn[a]], dtype=np.int64).reshape(-1, 2)

    @property
    def block_offsets(self) -> np.ndarray:
        sizes = self.block_shapes.prod(axis=1)
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def num_block_values(self) -> int:
        return int(sum(self.total_num_orbs[a] * self.total_num_orbs[nat - 1].sum() for a, nat in enumerate(self.natn)))

    def edges(self) -> np.ndarray:
        """(blocks, 5) = (Rx, Ry, Rz, i, j) with 0-based atoms, in file order."""
        rows = []
        for a in range(self.atomnum):
            for j, c in zip(self.natn[a], self.ncn[a]):
                rows.append([*self.atv_ijk[c], a, j - 1])
        return np.array(rows, dtype=np.int64).reshape(-1, 5)


# ---------------------------------------------------------------------------- reading
class _Reader:
    def __init__(self, buffer: bytes, byteorder: str) -> None:
        self.buffer = buffer
        self.pos = 0
        self.order = byteorder

    def take(self, kind: str, count: int, what: str) -> np.ndarray:
        dtype = np.dtype(f"{self.order}{kind}")
        nbytes = dtype.itemsize * int(count)
        if self.pos + nbytes > len(self.buffer):
            raise ScfoutFormatError(
                f"the .scfout file is truncated: reading {what} needs {nbytes} bytes at offset {self.pos}, "
                f"but the file has {len(self.buffer)} bytes"
            )
        out = np.frombuffer(self.buffer, dtype=dtype, count=int(count), offset=self.pos).astype(dtype.newbyteorder("="))
        self.pos += nbytes
        return out


def _byteorder(buffer: bytes) -> str:
    if len(buffer) < 28:
        raise ScfoutFormatError(f"the .scfout file is truncated: {len(buffer)} bytes, the header alone needs 28")
    for order in ("<", ">"):
        head = np.frombuffer(buffer, dtype=f"{order}i4", count=6)
        if head[0] > 0 and 0 <= head[1] <= 4 * SCFOUT_VERSION + 3 and head[5] >= 0:
            return order
    raise ScfoutFormatError("the header is not that of an OpenMX .scfout file (in either byte order)")


def read_scfout(path: str | Path) -> ScfoutData:
    """Read an OpenMX 3.9 ``.scfout`` file (see the module docstring for the layout)."""
    buffer = Path(path).read_bytes()
    r = _Reader(buffer, _byteorder(buffer))
    atomnum, spin_code, catomnum, latomnum, ratomnum, tcpycell = (int(x) for x in r.take("i4", 6, "the header"))
    version, spinp = divmod(spin_code, 4)
    if version != SCFOUT_VERSION:
        raise ScfoutFormatError(
            f"the .scfout file has format version {version} (SpinP_switch code {spin_code}); only the OpenMX 3.9 "
            f"format (version {SCFOUT_VERSION}) is supported"
        )
    if spinp not in _VALID_SPIN:
        raise ScfoutFormatError(f"SpinP_switch {spinp} is not 0, 1 or 3")
    order_max = int(r.take("i4", 1, "order_max")[0])
    atv = r.take("f8", 4 * (tcpycell + 1), "atv").reshape(-1, 4)[:, 1:]
    atv_ijk = r.take("i4", 4 * (tcpycell + 1), "atv_ijk").reshape(-1, 4)[:, 1:].astype(np.int64)
    total_num_orbs = r.take("i4", atomnum, "Total_NumOrbs").astype(np.int64)
    fnan = r.take("i4", atomnum, "FNAN").astype(np.int64)
    natn = [r.take("i4", f + 1, "natn").astype(np.int64) for f in fnan]
    ncn = [r.take("i4", f + 1, "ncn").astype(np.int64) for f in fnan]
    tv = r.take("f8", 12, "tv").reshape(3, 4)[:, 1:]
    rtv = r.take("f8", 12, "rtv").reshape(3, 4)[:, 1:]
    gxyz = r.take("f8", 4 * atomnum, "Gxyz").reshape(-1, 4)[:, 1:]
    for a, nat in enumerate(natn):
        if nat.size and (nat.min() < 1 or nat.max() > atomnum):
            raise ScfoutFormatError(f"natn of atom {a + 1} points outside 1..{atomnum}: the file is corrupt")
    m = int(sum(total_num_orbs[a] * total_num_orbs[nat - 1].sum() for a, nat in enumerate(natn)))
    nspin = spinp + 1
    hks = r.take("f8", nspin * m, "Hks").reshape(nspin, m)
    ihks = r.take("f8", 3 * m, "iHks").reshape(3, m) if spinp == 3 else None
    olp = r.take("f8", m, "OLP")
    olp_r = r.take("f8", 3 * order_max * m, "OLPpo").reshape(3, order_max, m)
    olp_p = r.take("f8", 3 * m, "OLPmo").reshape(3, m)
    dm = r.take("f8", nspin * m, "DM").reshape(nspin, m)
    idm = r.take("f8", 2 * m, "iDM").reshape(2, m)
    solver = int(r.take("i4", 1, "Solver")[0])
    d = r.take("f8", 10, "ChemP, E_Temp, dipole moments, Valence_Electrons, Total_SpinS")
    num_lines = int(r.take("i4", 1, "num_lines")[0])
    raw = r.take("S1", num_lines * LINE_SIZE, "the embedded input file").tobytes()
    lines = [raw[k * LINE_SIZE:(k + 1) * LINE_SIZE].split(b"\0", 1)[0].decode(errors="replace") for k in range(num_lines)]
    appended = buffer[r.pos:].decode(errors="replace")
    return ScfoutData(
        spinp_switch=spinp, atv=atv, atv_ijk=atv_ijk, total_num_orbs=total_num_orbs, natn=natn, ncn=ncn,
        tv=tv, rtv=rtv, gxyz=gxyz, hks=hks, ihks=ihks, olp=olp, olp_r=olp_r, olp_p=olp_p, dm=dm, idm=idm,
        solver=solver, chemical_potential_hartree=float(d[0]), electronic_temperature_k=float(d[1]),
        dipole_moment_core=d[2:5].copy(), dipole_moment_background=d[5:8].copy(), valence_electrons=float(d[8]),
        total_spin_s=float(d[9]), input_lines=lines, appended_text=appended, catomnum=catomnum,
        latomnum=latomnum, ratomnum=ratomnum, version=version,
    )


# ---------------------------------------------------------------------------- writing
def _pad4(a: np.ndarray, dtype: str) -> bytes:
    a = np.asarray(a).reshape(-1, 3)
    out = np.zeros((len(a), 4), dtype=dtype)
    out[:, 1:] = a
    return out.tobytes()


def write_scfout(data: ScfoutData, path: str | Path, *, byteorder: str = "<") -> Path:
    """Write ``data`` in the OpenMX 3.9 ``.scfout`` layout (``byteorder`` "<" little-endian as on
    x86, ">" big-endian), then ``data.appended_text``. Used to make test files; OpenMX itself
    writes real ones."""
    if byteorder not in ("<", ">"):
        raise ScfoutFormatError(f"byteorder must be '<' or '>', got {byteorder!r}")
    for line in data.input_lines:
        if len(line.encode()) >= LINE_SIZE:
            raise ScfoutFormatError(f"input line longer than {LINE_SIZE - 1} bytes cannot be stored: {line[:40]!r}...")
    i4, f8 = f"{byteorder}i4", f"{byteorder}f8"
    parts = [
        np.array([data.atomnum, data.spinp_switch + 4 * data.version, data.catomnum, data.latomnum,
                  data.ratomnum, data.tcpycell, data.order_max], dtype=i4).tobytes(),
        _pad4(data.atv, f8),
        _pad4(data.atv_ijk, i4),
        np.asarray(data.total_num_orbs, dtype=i4).tobytes(),
        data.fnan.astype(i4).tobytes(),
        *(np.asarray(a, dtype=i4).tobytes() for a in data.natn),
        *(np.asarray(a, dtype=i4).tobytes() for a in data.ncn),
        _pad4(data.tv, f8),
        _pad4(data.rtv, f8),
        _pad4(data.gxyz, f8),
        np.asarray(data.hks, dtype=f8).tobytes(),
        b"" if data.ihks is None else np.asarray(data.ihks, dtype=f8).tobytes(),
        np.asarray(data.olp, dtype=f8).tobytes(),
        np.asarray(data.olp_r, dtype=f8).tobytes(),
        np.asarray(data.olp_p, dtype=f8).tobytes(),
        np.asarray(data.dm, dtype=f8).tobytes(),
        np.asarray(data.idm, dtype=f8).tobytes(),
        np.array([data.solver], dtype=i4).tobytes(),
        np.array([data.chemical_potential_hartree, data.electronic_temperature_k,
                  *data.dipole_moment_core, *data.dipole_moment_background,
                  data.valence_electrons, data.total_spin_s], dtype=f8).tobytes(),
        np.array([len(data.input_lines)], dtype=i4).tobytes(),
        b"".join(line.encode().ljust(LINE_SIZE, b"\0") for line in data.input_lines),
        data.appended_text.encode(),
    ]
    path = Path(path)
    path.write_bytes(b"".join(parts))
    return path


# ---------------------------------------------------------------------------- conversion
def _species_from_input(lines: list[str]) -> tuple[np.ndarray, dict[int, tuple[int, ...]]]:
    """Atomic numbers and shells of each atom from the input file embedded in the ``.scfout``."""
    try:
        kw = parse_openmx_keywords("\n".join(lines))
        species = {row[0]: row for row in kw.block("Definition.of.Atomic.Species")}
        atoms = kw.block("Atoms.SpeciesAndCoordinates")
    except OpenmxInputError as exc:
        raise ScfoutFormatError(f"the input file embedded in the .scfout cannot be read: {exc}") from None
    numbers, basis = [], {}
    for row in atoms:
        name = row[1]
        if name not in species:
            raise ScfoutFormatError(f"species {name!r} of the atoms block is not defined")
        _, pao, vps = species[name][:3]
        element = vps.split("_")[0]
        if element not in atomic_numbers:
            raise ScfoutFormatError(f"cannot tell the element of species {name!r} from its VPS {vps!r}")
        z = atomic_numbers[element]
        shells = basis_shells(pao)
        if basis.setdefault(z, shells) != shells:
            raise ScfoutFormatError(f"element {element} appears with two different bases; not supported")
        numbers.append(z)
    return np.array(numbers, dtype=np.int64), basis


def scfout_to_hamiltonian(
    data: ScfoutData,
    *,
    spin: int = 0,
    numbers: np.ndarray | None = None,
    basis: dict[int, tuple[int, ...]] | None = None,
    pbc: tuple[bool, bool, bool] = (True, True, True),
) -> HamiltonianR:
    """H(R) (eV) and S(R) of a ``.scfout`` as :class:`HamiltonianR`.

    Edges (Rx, Ry, Rz, i, j) are 0-based and in file order; the orbital order stays OpenMX's.
    Atoms and basis come from the embedded input file unless ``numbers`` and ``basis`` are given.
    ``spin`` picks the up (0) or down (1) channel of a collinear run; non-collinear (SOC) data are
    complex 2x2-spin blocks that :class:`HamiltonianR` does not hold, so they raise.
    """
    if data.spinp_switch == 3:
        raise ScfoutFormatError("non-collinear (SpinP_switch 3) Hamiltonians are not supported by HamiltonianR")
    if not 0 <= spin <= data.spinp_switch:
        raise ScfoutFormatError(f"spin must be 0..{data.spinp_switch} for this file, got {spin}")
    if numbers is None or basis is None:
        parsed_numbers, parsed_basis = _species_from_input(data.input_lines)
        numbers = parsed_numbers if numbers is None else numbers
        basis = parsed_basis if basis is None else basis
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) != data.atomnum:
        raise ScfoutFormatError(f"{len(numbers)} atomic numbers for {data.atomnum} atoms")
    norb = np.array([sum(shell_size(l) for l in basis[int(z)]) for z in numbers])
    if not np.array_equal(norb, data.total_num_orbs):
        raise ScfoutFormatError(
            f"orbitals per atom from the basis {norb.tolist()} differ from Total_NumOrbs {data.total_num_orbs.tolist()}"
        )
    metadata = {
        "source": "openmx-scfout",
        "fermi_energy_eV": data.chemical_potential_hartree * OPENMX_HARTREE_EV,
        "electronic_temperature_K": data.electronic_temperature_k,
        "spin": int(spin),
        "spinp_switch": int(data.spinp_switch),
    }
    return HamiltonianR(
        cell=data.tv * OPENMX_BOHR_ANG,
        positions=data.gxyz * OPENMX_BOHR_ANG,
        numbers=numbers,
        basis=basis,
        edges=data.edges(),
        h_values=data.hks[spin] * OPENMX_HARTREE_EV,
        s_values=data.olp.copy(),
        pbc=pbc,
        metadata=metadata,
    )


def hamiltonian_to_scfout(
    h: HamiltonianR,
    *,
    input_lines: list[str] | None = None,
    chemical_potential_ev: float = 0.0,
    electronic_temperature_k: float = 300.0,
    rng: np.random.Generator | None = None,
) -> ScfoutData:
    """Build :class:`ScfoutData` (SpinP_switch 0) from H(R)/S(R); the inverse of
    :func:`scfout_to_hamiltonian` for test files. Each atom's own R = 0 block is put first
    (h_AN = 0), as OpenMX does. Quantities H(R) does not carry (⟨r⟩, ⟨p⟩, DM) are zero, or
    random if ``rng`` is given."""
    if h.s_values is None:
        raise ScfoutFormatError("an OpenMX .scfout always holds an overlap; this Hamiltonian is orthogonal")
    cells = sorted({tuple(e[:3]) for e in h.edges.tolist()} | {(0, 0, 0)}, key=lambda r: (r != (0, 0, 0), r))
    cell_index = {r: n for n, r in enumerate(cells)}
    per_atom: list[list[int]] = [[] for _ in range(len(h))]
    for e, (rx, ry, rz, i, j) in enumerate(h.edges.tolist()):
        self_block = (rx, ry, rz) == (0, 0, 0) and i == j
        if self_block:
            per_atom[i].insert(0, e)
        else:
            per_atom[i].append(e)
    for a, es in enumerate(per_atom):
        first = h.edges[es[0]] if es else None
        if first is None or tuple(first[:3]) != (0, 0, 0) or first[4] != a:
            raise ScfoutFormatError(f"atom {a} has no on-site (R = 0) block")
    order = [e for es in per_atom for e in es]
    h_vals = np.concatenate([h.h_values[h.block_offsets[e]:h.block_offsets[e + 1]] for e in order])
    s_vals = np.concatenate([h.s_values[h.block_offsets[e]:h.block_offsets[e + 1]] for e in order])
    m = h_vals.size
    extra = (lambda *shape: rng.normal(size=shape)) if rng is not None else (lambda *shape: np.zeros(shape))
    atv_ijk = np.array(cells, dtype=np.int64)
    tv = h.cell / OPENMX_BOHR_ANG
    return ScfoutData(
        spinp_switch=0,
        atv=atv_ijk @ tv,
        atv_ijk=atv_ijk,
        total_num_orbs=h.orbitals_per_atom,
        natn=[np.array([h.edges[e, 4] + 1 for e in es]) for es in per_atom],
        ncn=[np.array([cell_index[tuple(h.edges[e, :3])] for e in es]) for es in per_atom],
        tv=tv,
        rtv=2.0 * np.pi * np.linalg.inv(tv).T,
        gxyz=h.positions / OPENMX_BOHR_ANG,
        hks=(h_vals / OPENMX_HARTREE_EV)[None, :],
        olp=s_vals,
        olp_r=extra(3, 1, m),
        olp_p=extra(3, m),
        dm=extra(1, m),
        idm=extra(2, m),
        chemical_potential_hartree=chemical_potential_ev / OPENMX_HARTREE_EV,
        electronic_temperature_k=float(electronic_temperature_k),
        input_lines=list(input_lines or []),
        catomnum=len(h),
    )
