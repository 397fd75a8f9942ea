"""Read and write H(R)/S(R) in the two DeepH folder layouts.

**Legacy layout** (DeepH / DeepH-E3 "processed" folder, one structure per folder):

* ``element.dat``: atomic number of each atom, one per line;
* ``lat.dat``: 3×3, the *columns* are the lattice vectors, Å; ``rlat.dat``: 3×3, columns are the
  reciprocal vectors including 2π, Å⁻¹ (written for DeepH, ignored on reading);
* ``site_positions.dat``: 3×N, the columns are the Cartesian positions, Å;
* ``orbital_types.dat``: one line per atom, the l of each shell;
* ``info.json``: ``nsites``, ``isorthogonal``, ``isspinful``, ``fermi_level`` (eV);
* ``hamiltonians.h5`` / ``overlaps.h5``: one dataset per block, key ``"[Rx, Ry, Rz, i, j]"`` with
  1-based atom indices, block (n_i, n_j) in OpenMX orbital order, H in eV.

**Updated layout** (DeepH-dock):

* ``POSCAR``: cell and Cartesian/direct positions, Å;
* ``info.json``: ``atoms_quantity``, ``orbits_quantity``, ``orthogonal_basis``, ``spinful``,
  ``fermi_energy_eV``, ``elements_orbital_map`` (element symbol -> l of each shell);
* ``hamiltonian.h5`` / ``overlap.h5``: ``atom_pairs`` (E, 5) = [R1, R2, R3, i, j] 0-based,
  ``chunk_shapes`` (E, 2), ``chunk_boundaries`` (E + 1,), ``entries`` (flat, each block row-major),
  orbitals of each shell in real-spherical-harmonic m = −l..l order (for l = 1: py, pz, px),
  H in eV.

Units were verified on the MoTe2 fixture (DeepH-dock examples, OpenMX 3.9.9): both layouts hold
identical numbers after the orbital permutation, ``lat.dat`` columns equal the POSCAR rows, and
the Fermi level of ``info.json`` (eV) falls in the band gap of the imported H(k), S(k)
(tests/core/test_deeph_io.py). Spinful (SOC) data are not supported.

Both readers return edges sorted lexicographically by (Rx, Ry, Rz, i, j).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import h5py
import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from aiida_mlepi.core.hamiltonian import HamiltonianR, shell_size
from aiida_mlepi.core.wigner import L_MAX, SH_ORDER_FROM_OPENMX

__all__ = [
    "DeepHFormatError",
    "read_deeph_legacy",
    "write_deeph_legacy",
    "read_deeph_updated",
    "write_deeph_updated",
]

LEGACY_H = "hamiltonians.h5"
LEGACY_S = "overlaps.h5"
UPDATED_H = "hamiltonian.h5"
UPDATED_S = "overlap.h5"
FERMI_KEY = "fermi_energy_eV"  #: metadata key of the Fermi level (eV)


class DeepHFormatError(ValueError):
    """A DeepH folder is missing a file or its contents are inconsistent."""


# ---------------------------------------------------------------------------------------- helpers
def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise DeepHFormatError(f"DeepH folder {folder} has no '{name}'")
    return path


def _basis_from_atoms(numbers: np.ndarray, shells_per_atom: list[tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Z -> shells, checking that every atom of one element has the same shells."""
    basis: dict[int, tuple[int, ...]] = {}
    for n, (z, shells) in enumerate(zip(numbers.tolist(), shells_per_atom)):
        bad = [l for l in shells if not 0 <= l <= L_MAX]
        if bad:
            raise DeepHFormatError(f"atom {n}: unsupported angular momenta {bad} (0 <= l <= {L_MAX})")
        if basis.setdefault(z, shells) != shells:
            raise DeepHFormatError(
                f"atoms of element Z={z} have different orbital sets {basis[z]} and {shells}; "
                "one basis per element is required"
            )
    return basis


def _shell_permutation(shells: tuple[int, ...], openmx_to_sh: bool) -> np.ndarray:
    """Orbital index map of one atom: OpenMX order <-> m = −l..l order (no sign changes)."""
    perm = []
    start = 0
    for l in shells:
        order = np.asarray(SH_ORDER_FROM_OPENMX[l])
        if not openmx_to_sh:
            order = np.argsort(order)
        perm.extend((start + order).tolist())
        start += shell_size(l)
    return np.asarray(perm, dtype=np.int64)


def _sorted_blocks(edges: np.ndarray, blocks_h: list[np.ndarray], blocks_s: list[np.ndarray] | None):
    order = np.lexsort(edges.T[::-1]) if len(edges) else np.arange(0)
    h = [blocks_h[k].ravel() for k in order]
    s = None if blocks_s is None else [blocks_s[k].ravel() for k in order]
    return edges[order], h, s


def _build(
    cell, positions, numbers, basis, edges, blocks_h, blocks_s, pbc, metadata
) -> HamiltonianR:
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 5)
    n_orb = {z: sum(shell_size(l) for l in shells) for z, shells in basis.items()}
    for e, (edge, blk) in enumerate(zip(edges.tolist(), blocks_h)):
        i, j = edge[3], edge[4]
        if not (0 <= i < len(numbers) and 0 <= j < len(numbers)):
            raise DeepHFormatError(f"block {edge}: atom index out of range (0..{len(numbers) - 1})")
        want = (n_orb[int(numbers[i])], n_orb[int(numbers[j])])
        if blk.shape != want:
            raise DeepHFormatError(f"block {edge} has shape {blk.shape}, the basis needs {want}")
        if blocks_s is not None and blocks_s[e].shape != want:
            raise DeepHFormatError(f"overlap block {edge} has shape {blocks_s[e].shape}, needs {want}")
    edges, h, s = _sorted_blocks(edges, blocks_h, blocks_s)
    return HamiltonianR(
        cell=cell,
        positions=positions,
        numbers=numbers,
        basis=basis,
        edges=edges,
        h_values=np.concatenate(h) if h else np.zeros(0),
        s_values=None if s is None else (np.concatenate(s) if s else np.zeros(0)),
        pbc=pbc,
        metadata=metadata,
    )


def _check_nonempty(h: HamiltonianR) -> None:
    if len(h) == 0:
        raise DeepHFormatError("cannot write a structure without atoms")


# ---------------------------------------------------------------------------------------- legacy
def _parse_legacy_key(key: str) -> list[int]:
    try:
        value = ast.literal_eval(key)
    except (ValueError, SyntaxError) as exc:
        raise DeepHFormatError(f"bad block key {key!r}; expected '[Rx, Ry, Rz, i, j]'") from exc
    if not (isinstance(value, list) and len(value) == 5 and all(isinstance(v, int) for v in value)):
        raise DeepHFormatError(f"bad block key {key!r}; expected '[Rx, Ry, Rz, i, j]'")
    return value


def _read_legacy_h5(path: Path) -> dict[tuple[int, ...], np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        for key in f.keys():
            rx, ry, rz, i, j = _parse_legacy_key(key)
            if i < 1 or j < 1:
                raise DeepHFormatError(f"{path.name}: key {key!r} has a 0 atom index; legacy keys are 1-based")
            out[(rx, ry, rz, i - 1, j - 1)] = np.asarray(f[key][()], dtype=float)
    return out


def read_deeph_legacy(folder: str | Path, *, pbc: tuple[bool, bool, bool] = (True, True, True)) -> HamiltonianR:
    """Read a legacy DeepH processed folder into a :class:`HamiltonianR` (eV, Å, OpenMX order).

    ``pbc`` is not stored in the layout and is passed through. The Fermi level (eV) goes to
    ``metadata["fermi_energy_eV"]``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DeepHFormatError(f"{folder} is not a directory")
    info = json.loads(_require(folder, "info.json").read_text())
    if info.get("isspinful", False):
        raise DeepHFormatError("spinful (spin-orbit) DeepH data are not supported")
    numbers = np.loadtxt(_require(folder, "element.dat"), dtype=int, ndmin=1)
    n_atoms = len(numbers)
    if "nsites" in info and int(info["nsites"]) != n_atoms:
        raise DeepHFormatError(f"info.json says nsites={info['nsites']} but element.dat lists {n_atoms} atoms")
    lat = np.loadtxt(_require(folder, "lat.dat"), ndmin=2)
    if lat.shape != (3, 3):
        raise DeepHFormatError(f"lat.dat must be 3x3, got {lat.shape}")
    sites = np.loadtxt(_require(folder, "site_positions.dat"), ndmin=2)
    if sites.shape == (1, 3) and n_atoms == 1:  # a single column written as one row
        sites = sites.T
    if sites.shape != (3, n_atoms):
        raise DeepHFormatError(f"site_positions.dat must be 3 x {n_atoms} (columns are positions), got {sites.shape}")
    lines = [ln.split() for ln in _require(folder, "orbital_types.dat").read_text().splitlines() if ln.strip()]
    if len(lines) != n_atoms:
        raise DeepHFormatError(f"orbital_types.dat has {len(lines)} lines for {n_atoms} atoms")
    basis = _basis_from_atoms(numbers, [tuple(int(v) for v in ln) for ln in lines])

    h_blocks = _read_legacy_h5(_require(folder, LEGACY_H))
    orthogonal = bool(info.get("isorthogonal", False))
    s_blocks = None
    if not orthogonal:
        s_blocks = _read_legacy_h5(_require(folder, LEGACY_S))
        if set(s_blocks) != set(h_blocks):
            raise DeepHFormatError(
                f"{LEGACY_H} and {LEGACY_S} hold different blocks "
                f"({len(set(h_blocks) ^ set(s_blocks))} keys differ)"
            )
    keys = list(h_blocks)
    metadata = {"source_layout": "deeph-legacy"}
    if "fermi_level" in info:
        metadata[FERMI_KEY] = float(info["fermi_level"])
    return _build(
        cell=lat.T,
        positions=sites.T,
        numbers=numbers,
        basis=basis,
        edges=np.array(keys, dtype=np.int64).reshape(-1, 5),
        blocks_h=[h_blocks[k] for k in keys],
        blocks_s=None if s_blocks is None else [s_blocks[k] for k in keys],
        pbc=pbc,
        metadata=metadata,
    )


def write_deeph_legacy(h: HamiltonianR, folder: str | Path) -> Path:
    """Write ``h`` as a legacy DeepH processed folder (created if needed); returns the folder.

    Floats are written with 17 significant digits so that reading back is exact. ``overlaps.h5``
    is written unless the basis is orthogonal (``h.s_values is None``).
    """
    _check_nonempty(h)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "element.dat", h.numbers, fmt="%d")
    np.savetxt(folder / "lat.dat", h.cell.T, fmt="%.16e")
    np.savetxt(folder / "rlat.dat", h.reciprocal_cell().T, fmt="%.16e")
    np.savetxt(folder / "site_positions.dat", h.positions.T, fmt="%.16e")
    (folder / "orbital_types.dat").write_text(
        "".join("  ".join(str(l) for l in h.basis[int(z)]) + "\n" for z in h.numbers)
    )
    info = {"nsites": len(h), "isorthogonal": h.s_values is None, "isspinful": False}
    if FERMI_KEY in h.metadata:
        info["fermi_level"] = float(h.metadata[FERMI_KEY])
    (folder / "info.json").write_text(json.dumps(info))
    targets = [(LEGACY_H, "H")] + ([] if h.s_values is None else [(LEGACY_S, "S")])
    for name, which in targets:
        with h5py.File(folder / name, "w") as f:
            for e, (rx, ry, rz, i, j) in enumerate(h.edges.tolist()):
                f[str([rx, ry, rz, i + 1, j + 1])] = h.block(e, which)
    return folder


# ---------------------------------------------------------------------------------------- updated
def _read_poscar(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell rows Å, Cartesian positions Å, atomic numbers) from a VASP-5 POSCAR."""
    lines = [ln.split() for ln in path.read_text().splitlines()]
    try:
        scale = float(lines[1][0])
        cell = np.array([[float(v) for v in lines[k][:3]] for k in (2, 3, 4)]) * scale
        symbols = lines[5]
        counts = [int(v) for v in lines[6]]
        row = 7
        if lines[row] and lines[row][0][0] in "sS":  # selective dynamics
            row += 1
        cartesian = lines[row][0][0] in "cCkK"
        n = sum(counts)
        coords = np.array([[float(v) for v in lines[row + 1 + k][:3]] for k in range(n)])
    except (IndexError, ValueError) as exc:
        raise DeepHFormatError(f"{path} is not a VASP-5 POSCAR (element symbols on line 6): {exc}") from exc
    if scale <= 0:
        raise DeepHFormatError(f"{path}: negative/zero POSCAR scale factors are not supported")
    if len(symbols) != len(counts) or any(s not in atomic_numbers for s in symbols):
        raise DeepHFormatError(f"{path}: line 6 must list element symbols matching the counts on line 7")
    numbers = np.repeat([atomic_numbers[s] for s in symbols], counts)
    positions = coords * scale if cartesian else coords @ cell
    return cell, positions, numbers


def _write_poscar(path: Path, h: HamiltonianR) -> None:
    runs: list[list] = []
    for z in h.numbers.tolist():
        if runs and runs[-1][0] == z:
            runs[-1][1] += 1
        else:
            runs.append([z, 1])
    out = ["POSCAR written by aiida-mlepi", "1.0"]
    out += ["  " + "  ".join(f"{v:.17g}" for v in row) for row in h.cell]
    out += ["  " + "  ".join(chemical_symbols[z] for z, _ in runs), "  " + "  ".join(str(c) for _, c in runs)]
    out += ["Cartesian"] + ["  " + "  ".join(f"{v:.17g}" for v in p) for p in h.positions]
    path.write_text("\n".join(out) + "\n")


def _read_updated_h5(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    with h5py.File(path, "r") as f:
        missing = {"atom_pairs", "chunk_shapes", "chunk_boundaries", "entries"} - set(f.keys())
        if missing:
            raise DeepHFormatError(f"{path.name} lacks datasets {sorted(missing)}")
        pairs = np.asarray(f["atom_pairs"][()], dtype=np.int64).reshape(-1, 5)
        shapes = np.asarray(f["chunk_shapes"][()], dtype=np.int64).reshape(-1, 2)
        bounds = np.asarray(f["chunk_boundaries"][()], dtype=np.int64).ravel()
        entries = np.asarray(f["entries"][()], dtype=float).ravel()
    if not (len(shapes) == len(pairs) and len(bounds) == len(pairs) + 1):
        raise DeepHFormatError(
            f"{path.name}: {len(pairs)} atom_pairs, {len(shapes)} chunk_shapes and "
            f"{len(bounds)} chunk_boundaries are inconsistent"
        )
    sizes = shapes[:, 0] * shapes[:, 1]
    if bounds[0] != 0 or not np.array_equal(np.diff(bounds), sizes) or bounds[-1] != entries.size:
        raise DeepHFormatError(f"{path.name}: chunk_boundaries do not match chunk_shapes / entries")
    blocks = [entries[bounds[e]:bounds[e + 1]].reshape(shapes[e]) for e in range(len(pairs))]
    return pairs, blocks


def read_deeph_updated(folder: str | Path, *, pbc: tuple[bool, bool, bool] = (True, True, True)) -> HamiltonianR:
    """Read a DeepH-dock folder (POSCAR, info.json, hamiltonian.h5, overlap.h5) into OpenMX order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeepHFormatError(f"{folder} is not a directory")
    info = json.loads(_require(folder, "info.json").read_text())
    if info.get("spinful", False):
        raise DeepHFormatError("spinful (spin-orbit) DeepH data are not supported")
    cell, positions, numbers = _read_poscar(_require(folder, "POSCAR"))
    if "atoms_quantity" in info and int(info["atoms_quantity"]) != len(numbers):
        raise DeepHFormatError(f"info.json atoms_quantity={info['atoms_quantity']} but POSCAR has {len(numbers)} atoms")
    orbital_map = info.get("elements_orbital_map")
    if not isinstance(orbital_map, dict):
        raise DeepHFormatError("info.json lacks 'elements_orbital_map' (element -> list of l)")
    try:
        basis = {atomic_numbers[sym]: tuple(int(l) for l in ls) for sym, ls in orbital_map.items()}
    except KeyError as exc:
        raise DeepHFormatError(f"elements_orbital_map has an unknown element {exc}") from exc
    missing = sorted({chemical_symbols[z] for z in numbers.tolist()} - {chemical_symbols[z] for z in basis})
    if missing:
        raise DeepHFormatError(f"elements_orbital_map has no entry for {missing}")
    basis = _basis_from_atoms(numbers, [basis[int(z)] for z in numbers])
    n_orb = sum(sum(shell_size(l) for l in basis[int(z)]) for z in numbers)
    if "orbits_quantity" in info and int(info["orbits_quantity"]) != n_orb:
        raise DeepHFormatError(f"info.json orbits_quantity={info['orbits_quantity']} but the basis gives {n_orb}")

    pairs, h_blocks = _read_updated_h5(_require(folder, UPDATED_H))
    s_blocks = None
    if not bool(info.get("orthogonal_basis", False)):
        s_pairs, s_blocks = _read_updated_h5(_require(folder, UPDATED_S))
        if not np.array_equal(s_pairs, pairs):
            s_index = {tuple(p): k for k, p in enumerate(s_pairs.tolist())}
            if len(s_index) != len(pairs) or any(tuple(p) not in s_index for p in pairs.tolist()):
                raise DeepHFormatError(f"{UPDATED_H} and {UPDATED_S} hold different atom pairs")
            s_blocks = [s_blocks[s_index[tuple(p)]] for p in pairs.tolist()]
    if len(pairs) and (pairs[:, 3:].min() < 0 or pairs[:, 3:].max() >= len(numbers)):
        raise DeepHFormatError(f"atom_pairs index atoms outside 0..{len(numbers) - 1} (updated layout is 0-based)")
    perms = {z: _shell_permutation(shells, openmx_to_sh=False) for z, shells in basis.items()}

    def to_openmx(blocks):
        out = []
        for (_, _, _, i, j), blk in zip(pairs.tolist(), blocks):
            pi, pj = perms[int(numbers[i])], perms[int(numbers[j])]
            if blk.shape != (len(pi), len(pj)):
                raise DeepHFormatError(f"block {[*pairs[len(out)]]} has shape {blk.shape}, needs {(len(pi), len(pj))}")
            out.append(blk[np.ix_(pi, pj)])
        return out

    metadata = {"source_layout": "deeph-updated"}
    if FERMI_KEY in info:
        metadata[FERMI_KEY] = float(info[FERMI_KEY])
    return _build(
        cell=cell,
        positions=positions,
        numbers=numbers,
        basis=basis,
        edges=pairs,
        blocks_h=to_openmx(h_blocks),
        blocks_s=None if s_blocks is None else to_openmx(s_blocks),
        pbc=pbc,
        metadata=metadata,
    )


def write_deeph_updated(h: HamiltonianR, folder: str | Path) -> Path:
    """Write ``h`` as a DeepH-dock folder (orbitals reordered to m = −l..l); returns the folder."""
    _check_nonempty(h)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_poscar(folder / "POSCAR", h)
    info = {
        "atoms_quantity": len(h),
        "orbits_quantity": h.num_orbitals,
        "orthogonal_basis": h.s_values is None,
        "spinful": False,
        "elements_orbital_map": {chemical_symbols[z]: list(shells) for z, shells in h.basis.items()},
    }
    if FERMI_KEY in h.metadata:
        info[FERMI_KEY] = float(h.metadata[FERMI_KEY])
    (folder / "info.json").write_text(json.dumps(info))
    perms = {z: _shell_permutation(shells, openmx_to_sh=True) for z, shells in h.basis.items()}
    shapes = h.block_shapes.astype(np.int64)
    targets = [(UPDATED_H, "H")] + ([] if h.s_values is None else [(UPDATED_S, "S")])
    for name, which in targets:
        chunks = []
        for e, (_, _, _, i, j) in enumerate(h.edges.tolist()):
            pi, pj = perms[int(h.numbers[i])], perms[int(h.numbers[j])]
            chunks.append(h.block(e, which)[np.ix_(pi, pj)].ravel())
        with h5py.File(folder / name, "w") as f:
            f["atom_pairs"] = h.edges.astype(np.int64)
            f["chunk_shapes"] = shapes
            f["chunk_boundaries"] = h.block_offsets.astype(np.int64)
            f["entries"] = np.concatenate(chunks) if chunks else np.zeros(0)
    return folder
