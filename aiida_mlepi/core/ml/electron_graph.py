"""Graphs for HedgeNet-Electron: message-passing edges per relation and the H(R) blocks to predict.

Two edge sets per structure:

* **message-passing edges** (i → j + shift), one set per relation (``intra``/``inter`` or ``all``),
  each within the relation's cutoff ``r_max`` (Å), from :func:`~aiida_mlepi.core.neighbours.labelled_edges`;
* **block edges** (Rx, Ry, Rz, i, j) in the layout of :class:`~aiida_mlepi.core.hamiltonian.HamiltonianR`:
  either the edges of a reference H(R) (training) or every pair within the block cutoffs (prediction).

Hermiticity by construction: only one edge of each pair (i, j, R) / (j, i, −R) is predicted — the
*canonical* one, i < j, or i = j and R > 0 lexicographically — and the other is its transpose; on-site
blocks (i = j, R = 0) come from node features and are symmetrised, (B + Bᵀ)/2. Which edge of a pair is
canonical depends on the atom order; the model makes its value independent of that choice (it
averages its readout of both directions), so the prediction is equivariant under relabelling atoms. The map from the
predicted canonical values to the flattened ``h_values`` of the full edge list is two gather indices,
``h_values = ½ (canon[gather_a] + canon[gather_b])`` (equal indices except on site).

Layout of ``canon``: on-site blocks of every atom grouped by element (``node_groups``), then the
canonical edge blocks grouped by (relation, Z_i, Z_j) (``edge_groups``), each group contiguous.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..hamiltonian import HamiltonianR, shell_size
from ..layers import get_layer_ids
from ..neighbours import INTER, INTRA, LabelledEdges, labelled_edges
from .graph import GraphError


@dataclass
class EdgeGroup:
    """Canonical block edges of one relation and element pair: (i, j, shift) rows, Å shifts in cells."""

    relation: str
    zi: int
    zj: int
    i: torch.Tensor  #: (E,) int64
    j: torch.Tensor  #: (E,) int64
    shifts: torch.Tensor  #: (E, 3) lattice shifts (float)


@dataclass
class ElectronGraph:
    """One structure prepared for :class:`~aiida_mlepi.core.ml.hedgenet_electron.HedgeNetElectron`."""

    positions: torch.Tensor  #: (N, 3) Å
    cell: torch.Tensor  #: (3, 3) Å, rows are lattice vectors
    species: torch.Tensor  #: (N,) int64 index into the model's atomic_numbers
    mp_edges: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  #: relation -> sender, receiver, shifts
    node_groups: list[tuple[int, torch.Tensor]]  #: (Z, atom indices) of the on-site predictions
    edge_groups: list[EdgeGroup]
    gather_a: torch.Tensor  #: (n_values,) int64 into the canonical values
    gather_b: torch.Tensor
    template: HamiltonianR  #: structure, basis and edge list of the output (its values are ignored)
    target: torch.Tensor | None = None  #: (n_values,) eV, the reference blocks when training

    @property
    def num_atoms(self) -> int:
        return int(self.positions.shape[0])


def graph_to(g: ElectronGraph, device) -> ElectronGraph:
    """``g`` with its tensors on ``device`` (the template stays in host memory); ``g`` itself if already there."""
    device = torch.device(device)
    if g.positions.device == device:
        return g
    return dataclasses.replace(
        g, positions=g.positions.to(device), cell=g.cell.to(device), species=g.species.to(device),
        mp_edges={r: tuple(t.to(device) for t in v) for r, v in g.mp_edges.items()},
        node_groups=[(z, idx.to(device)) for z, idx in g.node_groups],
        edge_groups=[dataclasses.replace(grp, i=grp.i.to(device), j=grp.j.to(device), shifts=grp.shifts.to(device))
                     for grp in g.edge_groups],
        gather_a=g.gather_a.to(device), gather_b=g.gather_b.to(device),
        target=None if g.target is None else g.target.to(device))


def atoms_from_hamiltonian(h: HamiltonianR) -> Atoms:
    """The structure of ``h`` as ASE atoms (layer ids from z-gaps)."""
    return Atoms(numbers=h.numbers, positions=h.positions, cell=h.cell, pbc=h.pbc)


def _relation_names(cutoffs: dict[str, float]) -> tuple[str, ...]:
    names = tuple(sorted(cutoffs))
    if names not in (("all",), ("inter", "intra")):
        raise GraphError(f"relations must be ('all',) or ('intra', 'inter'), got {list(names)}")
    return names


def block_edges(atoms: Atoms, cutoff_intra: float, cutoff_inter: float) -> np.ndarray:
    """(E, 5) edge list (Rx, Ry, Rz, i, j) of the blocks to predict: on-site + pairs within the cutoffs (Å)."""
    return block_edges_of(labelled_edges(atoms, cutoff_intra, cutoff_inter), len(atoms))


def block_edges_of(edges: LabelledEdges, n: int) -> np.ndarray:
    """(E, 5) edge list (Rx, Ry, Rz, i, j): on-site blocks of ``n`` atoms, then the pairs ``edges``."""
    onsite = np.column_stack([np.zeros((n, 3), dtype=np.int64), np.arange(n), np.arange(n)])
    pairs = np.column_stack([edges.shifts, edges.i, edges.j]).astype(np.int64)
    return np.vstack([onsite, pairs])


def empty_hamiltonian(atoms: Atoms, basis: dict[int, tuple[int, ...]], edges: np.ndarray) -> HamiltonianR:
    """A HamiltonianR with the structure of ``atoms``, ``edges`` and zero blocks (the prediction template)."""
    per_z = {int(z): sum(shell_size(l) for l in ls) for z, ls in basis.items()}
    missing = sorted(set(int(z) for z in atoms.numbers) - set(per_z))
    if missing:
        raise GraphError(f"no orbital basis for atomic numbers {missing}")
    norb = np.array([per_z[int(z)] for z in atoms.numbers])
    size = int((norb[edges[:, 3]] * norb[edges[:, 4]]).sum())
    return HamiltonianR(cell=np.asarray(atoms.cell[:]), positions=atoms.positions.copy(),
                        numbers=atoms.numbers.copy(), basis=basis, edges=edges, h_values=np.zeros(size),
                        s_values=None, pbc=tuple(bool(p) for p in atoms.pbc))


def build_electron_graph(h: HamiltonianR, atomic_numbers: tuple[int, ...], cutoffs: dict[str, float],
                         dtype: torch.dtype = torch.float64, with_target: bool = True,
                         layer_ids: np.ndarray | None = None,
                         mp_pairs: LabelledEdges | None = None) -> ElectronGraph:
    """Graph of the structure of ``h``: message passing within ``cutoffs`` (relation → Å), targets = h's blocks.

    ``mp_pairs``: the message-passing edges if already known (every pair within its relation's cutoff,
    labelled with ``layer_ids``; for the homogeneous ``all`` relation within ``cutoffs['all']``), which
    saves the neighbour search.

    Block edges farther apart than their relation's cutoff raise :class:`GraphError` (the model
    could not see them). The basis of ``h`` must be the model's (checked by the caller).
    """
    relations = _relation_names(cutoffs)
    index = {z: k for k, z in enumerate(atomic_numbers)}
    unknown = sorted(set(int(z) for z in h.numbers) - set(index))
    if unknown:
        raise GraphError(f"elements with atomic numbers {unknown} are not in the model's "
                         f"atomic_numbers {list(atomic_numbers)}")
    atoms = atoms_from_hamiltonian(h)
    layers = get_layer_ids(atoms) if layer_ids is None else np.asarray(layer_ids)
    n = len(h)

    # ---- message-passing edges
    mp = {}
    if relations == ("all",):
        e = labelled_edges(atoms, cutoffs["all"], cutoffs["all"], layer_ids=layers) if mp_pairs is None else mp_pairs
        masks = {"all": np.ones(len(e), dtype=bool)}
    else:
        e = (labelled_edges(atoms, cutoffs["intra"], cutoffs["inter"], layer_ids=layers) if mp_pairs is None
             else mp_pairs)
        masks = {"intra": e.relation == INTRA, "inter": e.relation == INTER}
    for r, m in masks.items():
        mp[r] = (torch.as_tensor(e.i[m]), torch.as_tensor(e.j[m]), torch.as_tensor(e.shifts[m], dtype=dtype))

    # ---- canonical block edges
    edges = h.edges
    rvec, ii, jj = edges[:, :3], edges[:, 3], edges[:, 4]
    onsite = (ii == jj) & ~rvec.any(axis=1)
    r_positive = (rvec[:, 0] > 0) | ((rvec[:, 0] == 0) & ((rvec[:, 1] > 0) | ((rvec[:, 1] == 0) & (rvec[:, 2] > 0))))
    canonical = (ii < jj) | ((ii == jj) & r_positive)
    mirror = ~onsite & ~canonical
    keys = edges.copy()
    keys[mirror] = np.column_stack([-rvec[mirror], jj[mirror], ii[mirror]])
    pair_sel = np.flatnonzero(~onsite)
    canon_edges, inverse = (np.unique(keys[pair_sel], axis=0, return_inverse=True)
                            if len(pair_sel) else (np.zeros((0, 5), np.int64), np.zeros(0, np.int64)))
    inverse = np.asarray(inverse).ravel()
    ci, cj = canon_edges[:, 3], canon_edges[:, 4]
    cross = (layers[ci] != layers[cj]) | (canon_edges[:, 2] != 0)
    if relations == ("all",):
        rel = np.zeros(len(canon_edges), dtype=np.int64)
        rel_names = ["all"]
    else:
        rel = cross.astype(np.int64)  # 0 intra, 1 inter
        rel_names = ["intra", "inter"]
    vec = h.positions[cj] + canon_edges[:, :3] @ h.cell - h.positions[ci]
    dist = np.linalg.norm(vec, axis=1)
    for k, name in enumerate(rel_names):
        sel = rel == k
        if sel.any() and dist[sel].max() > cutoffs[name] + 1e-9:
            raise GraphError(f"a {name} block spans {dist[sel].max():.3f} Å, beyond the model's {name} cutoff "
                             f"{cutoffs[name]} Å: use a model with a larger cutoff or drop those blocks")

    norb = h.orbitals_per_atom
    # group order: on-site by element, then edges by (relation, Zi, Zj)
    node_groups, node_off = [], np.zeros(n, dtype=np.int64)
    pos = 0
    for z in sorted(set(int(z) for z in h.numbers)):
        atoms_z = np.flatnonzero(h.numbers == z)
        size = int(norb[atoms_z[0]]) ** 2
        node_off[atoms_z] = pos + size * np.arange(len(atoms_z))
        pos += size * len(atoms_z)
        node_groups.append((z, torch.as_tensor(atoms_z)))
    edge_groups, edge_off = [], np.zeros(len(canon_edges), dtype=np.int64)
    gkey = np.column_stack([rel, h.numbers[ci], h.numbers[cj]]) if len(canon_edges) else np.zeros((0, 3), int)
    for key in (np.unique(gkey, axis=0) if len(gkey) else []):
        members = np.flatnonzero((gkey == key).all(axis=1))
        size = int(norb[ci[members[0]]] * norb[cj[members[0]]])
        edge_off[members] = pos + size * np.arange(len(members))
        pos += size * len(members)
        edge_groups.append(EdgeGroup(rel_names[int(key[0])], int(key[1]), int(key[2]),
                                     torch.as_tensor(ci[members]), torch.as_tensor(cj[members]),
                                     torch.as_tensor(canon_edges[members, :3], dtype=dtype)))

    # ---- gather indices for every block of the full edge list
    ni, nj = norb[ii], norb[jj]
    sizes = ni * nj
    e_of = np.repeat(np.arange(len(edges)), sizes)
    local = np.arange(sizes.sum()) - np.repeat(h.block_offsets[:-1], sizes)
    a, b = local // nj[e_of], local % nj[e_of]
    start = np.zeros(len(edges), dtype=np.int64)
    start[onsite] = node_off[ii[onsite]]
    canon_of = np.zeros(len(edges), dtype=np.int64)
    canon_of[pair_sel] = inverse
    start[~onsite] = edge_off[canon_of[~onsite]]
    flip = (mirror | onsite)[e_of]
    transposed = start[e_of] + b * ni[e_of] + a
    straight = start[e_of] + local
    gather_a = np.where(mirror[e_of], transposed, straight)
    gather_b = np.where(flip, transposed, straight)

    target = torch.as_tensor(h.h_values, dtype=dtype) if with_target else None
    return ElectronGraph(
        positions=torch.as_tensor(h.positions, dtype=dtype), cell=torch.as_tensor(h.cell, dtype=dtype),
        species=torch.as_tensor([index[int(z)] for z in h.numbers], dtype=torch.int64),
        mp_edges=mp, node_groups=node_groups, edge_groups=edge_groups,
        gather_a=torch.as_tensor(gather_a), gather_b=torch.as_tensor(gather_b),
        template=h, target=target)
