"""Write (and read back) the OpenMX 3.9 input file ``System.Name.dat``.

OpenMX input is a flat list of ``keyword value`` lines plus ``<Block ... Block>`` sections;
keywords are case-insensitive and ``#`` starts a comment (OpenMX 3.9 manual, "Input file").
Lengths are written in Å (``Atoms.UnitVectors.Unit Ang``), atomic positions as fractions
(``Atoms.SpeciesAndCoordinates.Unit FRAC``), the SCF criterion in Hartree, the electronic
temperature in K and the grid cutoff in Ry, exactly as OpenMX expects them.

The default basis (PAO) and pseudopotential (VPS) of each element are the "standard" choices of
the OpenMX 2019 database ``DFT_DATA19`` (http://www.openmx-square.org/openmx_man3.9/, "Database
of optimized VPS and PAO (2019)"); the MoTe2 choices (Mo7.0-s3p2d2 / Mo_PBE19, Te7.0-s3p2d2 /
Te_PBE19) and their valence charges (14, 16) are those of the real OpenMX 3.9.9 run in
``fixtures/openmx/MoTe2``. Give ``species`` explicitly for any other element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

__all__ = [
    "DEFAULT_SPECIES",
    "OpenmxInputError",
    "OpenmxInputParameters",
    "OpenmxKeywords",
    "OpenmxSpecies",
    "basis_shells",
    "parse_openmx_keywords",
    "write_openmx_input",
    "write_openmx_input_file",
]


class OpenmxInputError(ValueError):
    """Bad input for the OpenMX input writer, or an OpenMX input text that cannot be parsed."""


@dataclass(frozen=True)
class OpenmxSpecies:
    """One ``Definition.of.Atomic.Species`` line.

    ``pao``: basis, e.g. ``C6.0-s2p2d1`` (cutoff radius 6.0 Bohr, 2 s, 2 p and 1 d shells);
    ``vps``: pseudopotential file stem, e.g. ``C_PBE19``; ``valence``: number of valence electrons
    of that pseudopotential (split half up / half down as the initial spin populations).
    """

    pao: str
    vps: str
    valence: float


#: "standard" PAO/VPS of the OpenMX 2019 database (DFT_DATA19) with the VPS valence charge
DEFAULT_SPECIES: dict[str, OpenmxSpecies] = {
    "H": OpenmxSpecies("H6.0-s2p1", "H_PBE19", 1.0),
    "B": OpenmxSpecies("B7.0-s2p2d1", "B_PBE19", 3.0),
    "C": OpenmxSpecies("C6.0-s2p2d1", "C_PBE19", 4.0),
    "N": OpenmxSpecies("N6.0-s2p2d1", "N_PBE19", 5.0),
    "S": OpenmxSpecies("S7.0-s2p2d1", "S_PBE19", 6.0),
    "Mo": OpenmxSpecies("Mo7.0-s3p2d2", "Mo_PBE19", 14.0),
    "Te": OpenmxSpecies("Te7.0-s3p2d2", "Te_PBE19", 16.0),
}

_L_OF = {"s": 0, "p": 1, "d": 2, "f": 3}


def basis_shells(pao: str) -> tuple[int, ...]:
    """Angular momenta of the shells of a PAO basis name, in OpenMX order.

    ``"Mo7.0-s3p2d2"`` -> ``(0, 0, 0, 1, 1, 2, 2)`` (OpenMX stores all s shells, then all p, ...).
    """
    try:
        spec = pao.split("-", 1)[1]
    except IndexError:
        raise OpenmxInputError(f"PAO name {pao!r} has no '-s..p..' part (expected e.g. 'C6.0-s2p2d1')") from None
    parts = re.findall(r"([spdf])(\d+)", spec)
    if not parts or "".join(f"{a}{b}" for a, b in parts) != spec:
        raise OpenmxInputError(f"cannot read the shells of PAO name {pao!r}")
    return tuple(l for letter, count in parts for l in [_L_OF[letter]] * int(count))


@dataclass
class OpenmxInputParameters:
    """Settings of one OpenMX 3.9 SCF run (units as OpenMX reads them; names say them).

    ``species`` overrides/extends :data:`DEFAULT_SPECIES` by element symbol. ``extra`` holds any
    further ``keyword: value`` pairs written verbatim (e.g. ``{"scf.dftD": "on"}``).
    """

    system_name: str = "openmx"
    data_path: str = "../DFT_DATA19"
    kgrid: tuple[int, int, int] = (1, 1, 1)
    xc_type: str = "GGA-PBE"
    electronic_temperature_k: float = 300.0
    energy_cutoff_ry: float = 150.0
    max_iter: int = 40
    criterion_hartree: float = 1.0e-6
    eigenvalue_solver: str = "Band"
    spin_polarization: str = "Off"
    spin_orbit_coupling: bool = False
    mixing_type: str = "RMM-DIISK"
    init_mixing_weight: float = 0.3
    mixing_history: int = 30
    mixing_start_pulay: int = 6
    mixing_every_pulay: int = 1
    md_type: str = "Nomd"
    hs_fileout: bool = True
    level_of_stdout: int = 1
    level_of_fileout: int = 0
    species: dict[str, OpenmxSpecies] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kgrid = tuple(int(k) for k in self.kgrid)  # type: ignore[assignment]
        if len(self.kgrid) != 3 or min(self.kgrid) < 1:
            raise OpenmxInputError(f"kgrid must be three positive integers, got {self.kgrid}")
        if self.criterion_hartree <= 0 or self.max_iter < 1:
            raise OpenmxInputError("criterion_hartree must be > 0 and max_iter >= 1")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.system_name):
            raise OpenmxInputError(f"system_name {self.system_name!r} must be a plain file stem")
        self.species = {
            sym: sp if isinstance(sp, OpenmxSpecies) else OpenmxSpecies(*sp) for sym, sp in self.species.items()
        }
        for sym, sp in self.species.items():
            basis_shells(sp.pao)  # validates the name

    @classmethod
    def from_dict(cls, values: dict) -> "OpenmxInputParameters":
        """Build from a plain dict (e.g. an ``orm.Dict``); ``species`` values may be [pao, vps, valence]."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise OpenmxInputError(f"unknown OpenMX parameters {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**values)

    def species_of(self, symbol: str) -> OpenmxSpecies:
        """PAO/VPS/valence of an element symbol."""
        if symbol in self.species:
            return self.species[symbol]
        if symbol in DEFAULT_SPECIES:
            return DEFAULT_SPECIES[symbol]
        raise OpenmxInputError(
            f"no OpenMX basis/pseudopotential known for {symbol!r}: pass species={{'{symbol}': (pao, vps, valence)}}"
        )


def _onoff(flag: bool) -> str:
    return "On" if flag else "Off"


def write_openmx_input(atoms: Atoms, parameters: OpenmxInputParameters | None = None) -> str:
    """Text of an OpenMX 3.9 ``.dat`` input for ``atoms`` (cell and positions in Å)."""
    p = parameters or OpenmxInputParameters()
    if len(atoms) == 0:
        raise OpenmxInputError("cannot write an OpenMX input for an empty structure")
    cell = np.asarray(atoms.cell.array, dtype=float)
    if abs(np.linalg.det(cell)) < 1e-8:
        raise OpenmxInputError("OpenMX needs a full 3-D cell (add vacuum along z for a 2-D layer)")
    symbols = atoms.get_chemical_symbols()
    order = list(dict.fromkeys(symbols))
    frac = np.linalg.solve(cell.T, np.asarray(atoms.positions, dtype=float).T).T

    lines = [
        "# OpenMX 3.9 input written by aiida-mlepi (lengths in Ang, criterion in Hartree)",
        "System.CurrrentDirectory        ./",
        f"System.Name                     {p.system_name}",
        f"level.of.stdout                 {p.level_of_stdout}",
        f"level.of.fileout                {p.level_of_fileout}",
        f"DATA.PATH                       {p.data_path}",
        "",
        f"Species.Number       {len(order)}",
        "<Definition.of.Atomic.Species",
    ]
    for sym in order:
        sp = p.species_of(sym)
        lines.append(f" {sym:<4s} {sp.pao:<20s} {sp.vps}")
    lines += ["Definition.of.Atomic.Species>", "", f"Atoms.Number         {len(atoms)}",
              "Atoms.SpeciesAndCoordinates.Unit  FRAC", "<Atoms.SpeciesAndCoordinates"]
    for n, (sym, f) in enumerate(zip(symbols, frac), start=1):
        half = 0.5 * p.species_of(sym).valence
        lines.append(f"{n:4d} {sym:<4s} {f[0]:22.16f} {f[1]:22.16f} {f[2]:22.16f} {half:6.2f} {half:6.2f}")
    lines += ["Atoms.SpeciesAndCoordinates>", "Atoms.UnitVectors.Unit  Ang", "<Atoms.UnitVectors"]
    for v in cell:
        lines.append(f"  {v[0]:22.16f} {v[1]:22.16f} {v[2]:22.16f}")
    lines += [
        "Atoms.UnitVectors>",
        "",
        f"scf.XcType                 {p.xc_type}",
        f"scf.ElectronicTemperature  {p.electronic_temperature_k!r}",
        f"scf.energycutoff           {p.energy_cutoff_ry!r}",
        f"scf.maxIter                {p.max_iter}",
        f"scf.EigenvalueSolver       {p.eigenvalue_solver}",
        f"scf.Kgrid                  {p.kgrid[0]} {p.kgrid[1]} {p.kgrid[2]}",
        f"scf.criterion              {p.criterion_hartree!r}",
        f"scf.SpinPolarization       {p.spin_polarization}",
        f"scf.SpinOrbit.Coupling     {_onoff(p.spin_orbit_coupling)}",
        f"scf.Mixing.Type            {p.mixing_type}",
        f"scf.Init.Mixing.Weight     {p.init_mixing_weight!r}",
        f"scf.Mixing.History         {p.mixing_history}",
        f"scf.Mixing.StartPulay      {p.mixing_start_pulay}",
        f"scf.Mixing.EveryPulay      {p.mixing_every_pulay}",
        f"MD.Type                    {p.md_type}",
        f"HS.fileout                 {_onoff(p.hs_fileout)}",
    ]
    for key, value in p.extra.items():
        lines.append(f"{key:<26s} {value}")
    return "\n".join(lines) + "\n"


@dataclass
class OpenmxKeywords:
    """Parsed OpenMX input: keywords (lower-cased name -> value text) and blocks (lower-cased
    name -> rows of whitespace-split tokens)."""

    keywords: dict[str, str]
    blocks: dict[str, list[list[str]]]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.keywords.get(name.lower(), default)

    def block(self, name: str) -> list[list[str]]:
        try:
            return self.blocks[name.lower()]
        except KeyError:
            raise OpenmxInputError(f"OpenMX input has no <{name} block") from None


def parse_openmx_keywords(text: str) -> OpenmxKeywords:
    """Parse OpenMX input text (comments dropped; the first occurrence of a keyword wins)."""
    keywords: dict[str, str] = {}
    blocks: dict[str, list[list[str]]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if current is not None:
            if line.lower() == f"{current}>":
                current = None
            else:
                blocks[current].append(line.split())
            continue
        if line.startswith("<"):
            current = line[1:].split()[0].lower()
            blocks.setdefault(current, [])
            continue
        parts = line.split(None, 1)
        keywords.setdefault(parts[0].lower(), parts[1].strip() if len(parts) > 1 else "")
    if current is not None:
        raise OpenmxInputError(f"OpenMX input block <{current} is not closed")
    return OpenmxKeywords(keywords, blocks)


def write_openmx_input_file(atoms: Atoms, parameters: OpenmxInputParameters, path: str | Path) -> Path:
    """Write :func:`write_openmx_input` to ``path``."""
    path = Path(path)
    path.write_text(write_openmx_input(atoms, parameters))
    return path
