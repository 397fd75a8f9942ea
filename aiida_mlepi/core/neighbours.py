"""Neighbour lists whose edges are labelled intra-layer or inter-layer (the HedgeNet relations)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from .layers import get_layer_ids

INTRA = 0  #: relation id of an edge between two atoms of the same layer
INTER = 1  #: relation id of an edge between atoms of different layers
RELATION_NAMES = ("intra", "inter")


@dataclass(frozen=True)
class LabelledEdges:
    """Directed edges i → j (both directions are present), with the relation of each.

    ``vectors[e] = positions[j] + shifts[e] @ cell - positions[i]`` in Å.
    """

    i: np.ndarray  #: (E,) int, source atom
    j: np.ndarray  #: (E,) int, target atom
    shifts: np.ndarray  #: (E, 3) int, lattice translation of atom j (in cell vectors)
    vectors: np.ndarray  #: (E, 3) float, Å
    distances: np.ndarray  #: (E,) float, Å
    relation: np.ndarray  #: (E,) int, INTRA or INTER

    def __len__(self) -> int:
        return len(self.i)

    def select(self, mask: np.ndarray) -> "LabelledEdges":
        """A subset of the edges."""
        return LabelledEdges(self.i[mask], self.j[mask], self.shifts[mask], self.vectors[mask],
                             self.distances[mask], self.relation[mask])

    @property
    def is_intra(self) -> np.ndarray:
        return self.relation == INTRA

    @property
    def is_inter(self) -> np.ndarray:
        return self.relation == INTER


def labelled_edges(
    atoms: Atoms,
    cutoff_intra: float,
    cutoff_inter: float | None = None,
    layer_ids: np.ndarray | None = None,
) -> LabelledEdges:
    """All directed edges within the relation's cutoff (Å), labelled by :data:`INTRA` / :data:`INTER`.

    ``cutoff_inter`` defaults to ``cutoff_intra``. Layer ids default to :func:`get_layer_ids`.
    Self-edges (i = j, zero shift) are excluded; periodic images are included.
    """
    if cutoff_inter is None:
        cutoff_inter = cutoff_intra
    if cutoff_intra <= 0 or cutoff_inter < 0:
        raise ValueError("cutoffs must be positive (Å)")
    layers = get_layer_ids(atoms) if layer_ids is None else np.asarray(layer_ids)
    rmax = max(cutoff_intra, cutoff_inter)
    i, j, shifts, vecs, dist = neighbor_list("ijSDd", atoms, rmax, self_interaction=False)
    relation = np.where(layers[i] == layers[j], INTRA, INTER)
    cut = np.where(relation == INTRA, cutoff_intra, cutoff_inter)
    keep = dist <= cut
    return LabelledEdges(i[keep].astype(np.int64), j[keep].astype(np.int64),
                         shifts[keep].astype(np.int64), vecs[keep], dist[keep], relation[keep])
