"""Batched atomic graphs whose edges carry a relation label (intra-/inter-layer), for HedgeNet.

Edges come from :func:`aiida_mlepi.core.neighbours.labelled_edges` with one cutoff (Å) per relation.
An edge e = (i → j) has ``vector = pos[j] - pos[i] + unit_shifts[e] @ cell`` (MACE convention:
``edge_index[0]`` is the sender, ``edge_index[1]`` the receiver).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..neighbours import INTER, INTRA, labelled_edges


class GraphError(ValueError):
    """A structure cannot be turned into a model graph."""


@dataclass
class AtomicGraph:
    """One or several structures batched into one disconnected graph (lengths Å)."""

    positions: torch.Tensor  #: (N, 3)
    node_attrs: torch.Tensor  #: (N, n_elements) one-hot of the element
    batch: torch.Tensor  #: (N,) int64 graph index of each atom
    cell: torch.Tensor  #: (G, 3, 3) rows are lattice vectors
    edge_index: dict[str, torch.Tensor]  #: relation -> (2, E_r) int64
    unit_shifts: dict[str, torch.Tensor]  #: relation -> (E_r, 3) integer lattice shifts (as float)
    num_graphs: int

    @property
    def num_atoms(self) -> int:
        return int(self.positions.shape[0])


def _one_hot(numbers: np.ndarray, atomic_numbers: tuple[int, ...]) -> np.ndarray:
    index = {z: k for k, z in enumerate(atomic_numbers)}
    unknown = sorted(set(int(z) for z in numbers) - set(index))
    if unknown:
        raise GraphError(f"elements with atomic numbers {unknown} are not in the model's "
                         f"atomic_numbers {list(atomic_numbers)}")
    out = np.zeros((len(numbers), len(atomic_numbers)))
    out[np.arange(len(numbers)), [index[int(z)] for z in numbers]] = 1.0
    return out


def build_graph(atoms: Atoms, atomic_numbers: tuple[int, ...], cutoffs: dict[str, float],
                dtype: torch.dtype = torch.float32) -> AtomicGraph:
    """Graph of one structure. ``cutoffs`` maps relation → cutoff (Å).

    Relations: ``"intra"`` and ``"inter"`` (edges within / between layers, layer ids from
    ``atoms.arrays["layer_ids"]`` or z-gaps) or ``"all"`` (every edge, homogeneous baseline).
    """
    if len(atoms) == 0:
        raise GraphError("cannot build a graph of an empty structure")
    names = set(cutoffs)
    if names == {"all"}:
        edges = labelled_edges(atoms, cutoffs["all"], cutoffs["all"])
        masks = {"all": np.ones(len(edges), dtype=bool)}
    elif names == {"intra", "inter"}:
        edges = labelled_edges(atoms, cutoffs["intra"], cutoffs["inter"])
        masks = {"intra": edges.relation == INTRA, "inter": edges.relation == INTER}
    else:
        raise GraphError(f"relations must be ('all',) or ('intra', 'inter'), got {sorted(names)}")
    return AtomicGraph(
        positions=torch.tensor(atoms.positions, dtype=dtype),
        node_attrs=torch.tensor(_one_hot(atoms.numbers, atomic_numbers), dtype=dtype),
        batch=torch.zeros(len(atoms), dtype=torch.int64),
        cell=torch.tensor(np.asarray(atoms.cell[:]), dtype=dtype).unsqueeze(0),
        edge_index={r: torch.tensor(np.stack([edges.i[m], edges.j[m]]), dtype=torch.int64)
                    for r, m in masks.items()},
        unit_shifts={r: torch.tensor(edges.shifts[m], dtype=dtype) for r, m in masks.items()},
        num_graphs=1,
    )


def collate(graphs: list[AtomicGraph]) -> AtomicGraph:
    """Batch graphs into one (atom indices offset, ``batch`` numbering the structures)."""
    if not graphs:
        raise GraphError("cannot collate an empty list of graphs")
    offsets = np.cumsum([0] + [g.num_atoms for g in graphs[:-1]])
    relations = list(graphs[0].edge_index)
    return AtomicGraph(
        positions=torch.cat([g.positions for g in graphs]),
        node_attrs=torch.cat([g.node_attrs for g in graphs]),
        batch=torch.cat([torch.full((g.num_atoms,), k, dtype=torch.int64)
                         for k, g in enumerate(graphs)]),
        cell=torch.cat([g.cell for g in graphs]),
        edge_index={r: torch.cat([g.edge_index[r] + int(o) for g, o in zip(graphs, offsets)], dim=1)
                    for r in relations},
        unit_shifts={r: torch.cat([g.unit_shifts[r] for g in graphs]) for r in relations},
        num_graphs=len(graphs),
    )
