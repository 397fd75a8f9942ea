"""Parse OpenMX 3.9's main output ``System.Name.out``.

What OpenMX writes there (checked on the real OpenMX 3.9.9 MoTe2 output in
``fixtures/openmx/MoTe2/openmx.out``): an echo of the input file, the SCF history
(``SCF=  n  NormRD= ...  Uele= ...``), the energy decomposition (``Utot.`` in Hartree), the
chemical potential (Hartree), ``<coordinates.forces`` (positions in Å to 5 decimals, *forces*
in Hartree/Bohr: OpenMX's MD_pac.c prints ``-Gxyz[k][17..19]``, minus the energy gradient), the
``Fractional coordinates of the final structure`` (14 decimals) and, last, the timing table
(``Total Computational Time =``). The banner ``This calculation was performed by OpenMX Ver.
x.y.z`` is at the very top, before the input echo.

Units are converted with OpenMX's own constants (openmx_common.h: ``eV2Hartree 27.2113845``,
``BohrR 0.529177249``) so that numbers agree with what OpenMX and DeepH derive from the same run.

SCF convergence: OpenMX stops the SCF loop either when its criterion is met or at
``scf.maxIter`` (default 40). A run is reported converged when the loop stopped before
``scf.maxIter``, or, if it used all iterations, when the last |ΔUele| < ``scf.criterion``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from aiida_mlepi.core.io.openmx_input import OpenmxInputError, parse_openmx_keywords

__all__ = [
    "OPENMX_BOHR_ANG",
    "OPENMX_HARTREE_EV",
    "OpenmxOutput",
    "OpenmxOutputError",
    "OpenmxOutputIncompleteError",
    "parse_openmx_out",
    "read_openmx_out",
]

OPENMX_HARTREE_EV = 27.2113845  #: 1 Hartree in eV, as defined in OpenMX 3.9 openmx_common.h
OPENMX_BOHR_ANG = 0.529177249  #: 1 Bohr in Å, as defined in OpenMX 3.9 openmx_common.h
DEFAULT_MAX_ITER = 40  #: OpenMX default of scf.maxIter
DEFAULT_CRITERION_HARTREE = 1.0e-6  #: OpenMX default of scf.criterion

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class OpenmxOutputError(ValueError):
    """The OpenMX ``.out`` text lacks a section this parser needs."""


class OpenmxOutputIncompleteError(OpenmxOutputError):
    """The OpenMX ``.out`` file stops before OpenMX's closing lines (run killed or file truncated)."""


@dataclass
class OpenmxOutput:
    """Results of one OpenMX SCF run; energies eV, lengths Å, forces eV/Å."""

    version: str | None
    energy_ev: float  #: Utot
    chemical_potential_ev: float
    forces: np.ndarray  #: (N, 3) eV/Å
    symbols: list[str]
    cell: np.ndarray  #: (3, 3) Å, rows are lattice vectors
    scaled_positions: np.ndarray  #: (N, 3) fractional
    scf_iterations: int
    scf_uele_hartree: list[float]
    scf_norm_rd: list[float]
    max_iter: int
    criterion_hartree: float
    converged: bool
    energy_components_ev: dict[str, float] = field(default_factory=dict)

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) Cartesian positions, Å."""
        return self.scaled_positions @ self.cell

    def to_atoms(self) -> Atoms:
        """Final structure as ``ase.Atoms`` (pbc on all axes, as OpenMX treats the cell)."""
        return Atoms(self.symbols, scaled_positions=self.scaled_positions, cell=self.cell, pbc=True)

    def as_dict(self) -> dict:
        """JSON-serialisable summary (for an ``orm.Dict``)."""
        return {
            "version": self.version,
            "energy": self.energy_ev,
            "energy_units": "eV",
            "chemical_potential": self.chemical_potential_ev,
            "chemical_potential_units": "eV",
            "energy_components": dict(self.energy_components_ev),
            "scf_iterations": self.scf_iterations,
            "scf_max_iterations": self.max_iter,
            "scf_criterion_hartree": self.criterion_hartree,
            "scf_converged": self.converged,
            "num_atoms": len(self.symbols),
        }


def _cell_from_echo(text: str) -> np.ndarray:
    try:
        kw = parse_openmx_keywords(text)
        rows = kw.block("Atoms.UnitVectors")
    except OpenmxInputError as exc:
        raise OpenmxOutputError(f"the input echo at the top of the .out file has no cell: {exc}") from None
    cell = np.array([[float(x) for x in r[:3]] for r in rows[:3]])
    if cell.shape != (3, 3):
        raise OpenmxOutputError("Atoms.UnitVectors block of the .out input echo is not 3x3")
    unit = (kw.get("Atoms.UnitVectors.Unit", "Ang") or "Ang").split()[0].lower()
    if unit == "au":
        cell = cell * OPENMX_BOHR_ANG
    elif unit != "ang":
        raise OpenmxOutputError(f"unknown Atoms.UnitVectors.Unit {unit!r}")
    return cell


def _echo_text(text: str) -> str:
    """The input echo: the first section between banners of asterisks that holds the atoms block."""
    for segment in re.split(r"^\*{20,}[ \t]*$", text, flags=re.M):
        if "<atoms.speciesandcoordinates" in segment.lower():
            return segment
    raise OpenmxOutputError("the .out file has no input echo (no <Atoms.SpeciesAndCoordinates block)")


def parse_openmx_out(text: str) -> OpenmxOutput:
    """Parse the text of ``System.Name.out``.

    Raises :class:`OpenmxOutputIncompleteError` if the closing timing section / version line is
    missing, :class:`OpenmxOutputError` if a required section is missing.
    """
    if re.search(r"^\s*Total Computational Time\s*=", text, flags=re.M) is None:
        raise OpenmxOutputIncompleteError(
            "the OpenMX .out file ends before its closing timing section: the run did not finish "
            "(killed, out of time) or the file was truncated"
        )
    version_match = re.search(r"performed by OpenMX Ver\.\s*(\S+)", text)
    version = version_match.group(1) if version_match else None

    echo = _echo_text(text)
    kw = parse_openmx_keywords(echo)
    max_iter = int(float(kw.get("scf.maxIter", str(DEFAULT_MAX_ITER)).split()[0]))
    criterion = float(kw.get("scf.criterion", str(DEFAULT_CRITERION_HARTREE)).split()[0])
    cell = _cell_from_echo(echo)

    scf = re.findall(rf"^\s*SCF=\s*(\d+)\s+NormRD=\s*({_FLOAT})\s+Uele=\s*({_FLOAT})", text, flags=re.M)
    if not scf:
        raise OpenmxOutputError("no SCF history ('SCF= n NormRD= ... Uele= ...') in the .out file")
    n_iter = int(scf[-1][0])
    uele = [float(u) for _, _, u in scf]
    norm_rd = [float(r) for _, r, _ in scf]
    last_du = abs(uele[-1] - uele[-2]) if len(uele) > 1 else np.inf
    converged = bool(n_iter < max_iter or last_du < criterion)

    components: dict[str, float] = {}
    for name, value in re.findall(rf"^\s*(U\w+|Enpy)\.\s+({_FLOAT})\s*$", text, flags=re.M):
        components.setdefault(name, float(value) * OPENMX_HARTREE_EV)
    if "Utot" not in components:
        raise OpenmxOutputError("no total energy ('Utot.') in the .out file")

    mu = re.search(rf"Chemical [Pp]otential \(Hartree\)\s*=?\s*({_FLOAT})", text)
    if mu is None:
        raise OpenmxOutputError("no 'Chemical potential (Hartree)' in the .out file")

    forces_block = re.search(r"<coordinates\.forces\s*\n\s*(\d+)\s*\n(.*?)coordinates\.forces>", text, flags=re.S)
    if forces_block is None:
        raise OpenmxOutputError("no <coordinates.forces block in the .out file")
    n_atoms = int(forces_block.group(1))
    rows = [r.split() for r in forces_block.group(2).strip().splitlines()]
    if len(rows) != n_atoms:
        raise OpenmxOutputIncompleteError(f"<coordinates.forces lists {len(rows)} of {n_atoms} atoms")
    symbols = [r[1] for r in rows]
    forces = np.array([[float(x) for x in r[5:8]] for r in rows]) * (OPENMX_HARTREE_EV / OPENMX_BOHR_ANG)
    xyz = np.array([[float(x) for x in r[2:5]] for r in rows])

    frac_block = re.search(r"Fractional coordinates of the final structure\s*\n\*+\n\*+\n(.*?)\n\s*\n\*", text, flags=re.S)
    if frac_block is not None:
        frows = [r.split() for r in frac_block.group(1).strip().splitlines()]
        scaled = np.array([[float(x) for x in r[2:5]] for r in frows])
        if scaled.shape != (n_atoms, 3):
            raise OpenmxOutputError("final fractional coordinates do not match the number of atoms")
    else:  # fall back to the 5-decimal Cartesian coordinates of <coordinates.forces
        scaled = np.linalg.solve(cell.T, xyz.T).T

    return OpenmxOutput(
        version=version,
        energy_ev=components["Utot"],
        chemical_potential_ev=float(mu.group(1)) * OPENMX_HARTREE_EV,
        forces=forces,
        symbols=symbols,
        cell=cell,
        scaled_positions=scaled,
        scf_iterations=n_iter,
        scf_uele_hartree=uele,
        scf_norm_rd=norm_rd,
        max_iter=max_iter,
        criterion_hartree=criterion,
        converged=converged,
        energy_components_ev=components,
    )


def read_openmx_out(path: str | Path) -> OpenmxOutput:
    """Parse ``System.Name.out`` from a file (see :func:`parse_openmx_out`)."""
    return parse_openmx_out(Path(path).read_text(errors="replace"))
