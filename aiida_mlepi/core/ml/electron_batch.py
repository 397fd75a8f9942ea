"""Batched HedgeNet-Electron inference: H(R) (eV) of many structures, several per forward pass.

Two savings over calling :func:`~.hedgenet_electron.predict_hamiltonian` once per structure:

* **edge topology reused** (:class:`SharedTopology`): one neighbour search of the first structure, with
  the cutoffs widened by a skin (Å), lists every pair that can be an edge of a structure whose atoms moved
  less than skin/2 from it (a Verlet list); for each later structure only those pairs' distances are
  recomputed. Same edge sets as the first structure (thermal samples often, not always): its graph is
  reused with the new positions; different edge sets: the graph is built from the candidates (no
  neighbour search); atoms moved farther, or another cell, elements or layers: built from scratch
  (exactly the single-structure path). The neighbour search is ~0.4 s of a 144-atom structure's 0.7 s.
* **disjoint batches** (:func:`batch_graphs`): ``batch_size`` graphs of the same cell are joined into one
  graph (atoms and edges concatenated, indices offset), so one forward pass predicts them all. On CPU
  this does not pay: one 144-atom sample's forward pass is already throughput-bound, and with glibc's
  default malloc the larger per-edge tensors of a batch (> 32 MB, mmap'ed and page-faulted on every
  allocation) make batches of 4–8 ~1.5× slower per sample (``benchmarks/electron_batch_inference.py``);
  hence ``batch_size=1`` by default. Batches are for accelerators.

Inference runs in ``dtype`` (float32 by default) on a converted copy of the model when the model's own
dtype differs; the caller's model is not modified.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..hamiltonian import HamiltonianR
from ..layers import get_layer_ids
from ..neighbours import INTRA, LabelledEdges, labelled_edges
from .device import resolve_device
from .electron_graph import (EdgeGroup, ElectronGraph, block_edges_of, build_electron_graph, empty_hamiltonian,
                             graph_to)
from .hedgenet_electron import (_DTYPES, HedgeNetElectron, check_basis, predicted_hamiltonian,
                                prediction_template)

#: default Verlet skin (Å): structures within skin/2 of the first one reuse its edge topology
DEFAULT_SKIN = 1.0


class BatchInputError(ValueError):
    """Bad input to batched inference."""


# ---------------------------------------------------------------------------- topology reuse
@dataclass
class SharedTopology:
    """Edge topology of a reference structure and its Verlet list of candidate pairs.

    Candidates: the reference's neighbours within the widened cutoffs (cutoff + ``skin``, Å), labelled by
    its layers. ``codes[p]`` says which edge sets candidate p belongs to in the reference (bit 0: message
    passing, bit 1: block edges).
    """

    graph: ElectronGraph  #: the reference structure's graph (positions are replaced per structure)
    positions: np.ndarray  #: (N, 3) Å, reference positions
    cell: np.ndarray  #: (3, 3) Å
    layers: np.ndarray  #: (N,) layer ids
    pairs: LabelledEdges  #: candidate pairs (their vectors/distances are the reference's)
    mp_cut: np.ndarray  #: (P,) Å, message-passing cutoff of each candidate's relation
    block_cut: np.ndarray  #: (P,) Å, block cutoff of each candidate's relation
    codes: np.ndarray  #: (P,) int, edge-set membership of the reference
    skin: float  #: Å

    @classmethod
    def of(cls, model: HedgeNetElectron, atoms: Atoms, skin: float = DEFAULT_SKIN) -> "SharedTopology":
        """Topology of ``atoms``: one neighbour search within cutoffs + skin, one graph build."""
        c = model.config
        layers = get_layer_ids(atoms)
        r_intra, r_inter = (c.r_max_intra, c.r_max_inter) if c.heterogeneous else (c.cutoffs["all"],) * 2
        pairs = labelled_edges(atoms, r_intra + skin, r_inter + skin, layer_ids=layers)
        intra = pairs.relation == INTRA
        topology = cls(graph=None, positions=atoms.positions.copy(), cell=np.asarray(atoms.cell[:]).copy(),
                       layers=layers, pairs=pairs,
                       mp_cut=np.where(intra, r_intra, r_inter),
                       block_cut=np.where(intra, c.block_cutoff_intra, c.block_cutoff_inter),
                       codes=np.zeros(0, dtype=np.int64), skin=float(skin))
        current = topology._pairs_at(atoms.positions)
        topology.codes = topology._codes(current)
        topology.graph = topology._build(model, atoms, current)
        return topology

    def _pairs_at(self, positions: np.ndarray) -> LabelledEdges:
        p = self.pairs
        vec = positions[p.j] + p.shifts @ self.cell - positions[p.i]
        return LabelledEdges(p.i, p.j, p.shifts, vec, np.linalg.norm(vec, axis=1), p.relation)

    def _codes(self, pairs: LabelledEdges) -> np.ndarray:
        return (pairs.distances <= self.mp_cut).astype(np.int64) + 2 * (pairs.distances <= self.block_cut)

    def _build(self, model: HedgeNetElectron, atoms: Atoms, pairs: LabelledEdges) -> ElectronGraph:
        """Graph of ``atoms`` from the candidates' distances (no neighbour search)."""
        c = model.config
        edges = block_edges_of(pairs.select(pairs.distances <= self.block_cut), len(atoms))
        template = empty_hamiltonian(atoms, {z: c.basis[z] for z in set(int(z) for z in atoms.numbers)
                                             if z in c.basis}, edges)
        check_basis(c, template)
        return build_electron_graph(template, c.atomic_numbers, c.cutoffs, dtype=c.torch_dtype,
                                    with_target=False, layer_ids=self.layers,
                                    mp_pairs=pairs.select(pairs.distances <= self.mp_cut))

    def covers(self, atoms: Atoms) -> bool:
        """True iff the candidates hold every edge of ``atoms``: same cell, elements, pbc and layers, and
        no atom moved skin/2 or more from the reference."""
        ref = self.graph.template
        return (len(atoms) == len(ref) and np.array_equal(atoms.numbers, ref.numbers)
                and np.array_equal(np.asarray(atoms.cell[:]), self.cell)
                and tuple(bool(p) for p in atoms.pbc) == ref.pbc
                and np.array_equal(get_layer_ids(atoms), self.layers)
                and 2.0 * np.linalg.norm(atoms.positions - self.positions, axis=1).max() < self.skin)

    def graph_for(self, model: HedgeNetElectron, atoms: Atoms) -> tuple[ElectronGraph, str]:
        """Graph of ``atoms`` and how it was made: 'reused' (the reference's edges, new positions),
        'candidates' (edge sets differ: rebuilt from the candidates) or 'rebuilt' (from scratch)."""
        if not self.covers(atoms):
            return structure_graph(model, atoms), "rebuilt"
        pairs = self._pairs_at(atoms.positions)
        if not np.array_equal(self._codes(pairs), self.codes):
            return self._build(model, atoms, pairs), "candidates"
        ref = self.graph.template
        template = HamiltonianR(cell=ref.cell, positions=atoms.positions.copy(), numbers=ref.numbers,
                                basis=ref.basis, edges=ref.edges, h_values=np.zeros_like(ref.h_values),
                                pbc=ref.pbc)
        positions = torch.as_tensor(atoms.positions, dtype=self.graph.positions.dtype)
        return dataclasses.replace(self.graph, positions=positions, template=template), "reused"


def structure_graph(model: HedgeNetElectron, atoms: Atoms) -> ElectronGraph:
    """Graph of one structure built from scratch (the single-structure path)."""
    c = model.config
    template = prediction_template(c, atoms)
    check_basis(c, template)
    return build_electron_graph(template, c.atomic_numbers, c.cutoffs, dtype=c.torch_dtype,
                                with_target=False, layer_ids=atoms.arrays.get("layer_ids"))


# ---------------------------------------------------------------------------- disjoint batches
def _pieces(g: ElectronGraph) -> list[tuple[tuple, int]]:
    """(group key, number of canonical values) of each piece of ``g``'s canonical layout, in order."""
    norb = g.template.orbitals_per_atom
    pieces = [(("node", z), len(idx) * int(norb[int(idx[0])]) ** 2) for z, idx in g.node_groups]
    pieces += [((grp.relation, grp.zi, grp.zj), len(grp.i) * int(norb[int(grp.i[0])] * norb[int(grp.j[0])]))
               for grp in g.edge_groups]
    return pieces


def batch_graphs(graphs: list[ElectronGraph]) -> tuple[ElectronGraph, list[int]]:
    """One disjoint graph of ``graphs`` (same cell) and the number of output values of each.

    The model's output on the batch is the concatenation of its outputs on the graphs (in order).
    The batch's ``template`` is the first graph's (the batch has no single output structure).
    """
    if not graphs:
        raise BatchInputError("no graphs to batch")
    cell = graphs[0].cell
    if any(not torch.equal(g.cell, cell) for g in graphs):
        raise BatchInputError("graphs of one batch must have the same cell")
    atom_offsets = np.cumsum([0] + [g.num_atoms for g in graphs])
    pieces = [_pieces(g) for g in graphs]
    keys = sorted({key for p in pieces for key, _ in p}, key=lambda k: (k[0] != "node", str(k)))
    # start of each (key, graph) piece in the batch's canonical layout
    sizes = {(key, n): size for n, p in enumerate(pieces) for key, size in p}
    starts, pos = {}, 0
    for key in keys:
        for n in range(len(graphs)):
            starts[(key, n)] = pos
            pos += sizes.get((key, n), 0)
    gather_a, gather_b = [], []
    for n, (g, p) in enumerate(zip(graphs, pieces)):
        remap, local = np.zeros(sum(size for _, size in p), dtype=np.int64), 0
        for key, size in p:
            remap[local:local + size] = starts[(key, n)] + np.arange(size)
            local += size
        gather_a.append(remap[g.gather_a.numpy()])
        gather_b.append(remap[g.gather_b.numpy()])

    def offset(n: int, idx: torch.Tensor) -> torch.Tensor:
        return idx + int(atom_offsets[n])

    mp = {r: tuple(torch.cat(parts) for parts in zip(*[(offset(n, g.mp_edges[r][0]), offset(n, g.mp_edges[r][1]),
                                                         g.mp_edges[r][2]) for n, g in enumerate(graphs)]))
          for r in graphs[0].mp_edges}
    node_groups = [(key[1], torch.cat([offset(n, idx) for n, g in enumerate(graphs)
                                       for z, idx in g.node_groups if z == key[1]]))
                   for key in keys if key[0] == "node"]
    edge_groups = []
    for key in keys:
        if key[0] == "node":
            continue
        members = [(n, grp) for n, g in enumerate(graphs) for grp in g.edge_groups
                   if (grp.relation, grp.zi, grp.zj) == key]
        edge_groups.append(EdgeGroup(key[0], key[1], key[2], torch.cat([offset(n, grp.i) for n, grp in members]),
                                     torch.cat([offset(n, grp.j) for n, grp in members]),
                                     torch.cat([grp.shifts for _, grp in members])))
    batch = ElectronGraph(positions=torch.cat([g.positions for g in graphs]), cell=cell,
                          species=torch.cat([g.species for g in graphs]), mp_edges=mp,
                          node_groups=node_groups, edge_groups=edge_groups,
                          gather_a=torch.as_tensor(np.concatenate(gather_a)),
                          gather_b=torch.as_tensor(np.concatenate(gather_b)), template=graphs[0].template)
    return batch, [len(a) for a in gather_a]


# ---------------------------------------------------------------------------- prediction
def inference_model(model: HedgeNetElectron, dtype: str) -> HedgeNetElectron:
    """``model`` itself if it computes in ``dtype`` ('float32'/'float64'), else a converted copy."""
    if dtype not in _DTYPES:
        raise BatchInputError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if model.config.dtype == dtype:
        return model
    converted = HedgeNetElectron(dataclasses.replace(model.config, dtype=dtype))
    converted.load_state_dict(model.state_dict())  # copy_ casts each tensor to the new dtype
    return converted


def predict_hamiltonians(model: HedgeNetElectron, structures: list[Atoms], batch_size: int = 1,
                         dtype: str = "float32", skin: float = DEFAULT_SKIN,
                         reuse_topology: bool = True, device: str | torch.device = "cpu") -> list[HamiltonianR]:
    """Predicted H(R) (eV, orthogonal basis) of each structure, ``batch_size`` structures per forward pass.

    Edges and values agree with :func:`~.hedgenet_electron.predict_hamiltonian` of each structure (the
    edge order may differ where the topology is reused); the layer ids are those of each structure
    (stored ``layer_ids`` array or z-gaps). ``dtype``: the precision of the forward pass.
    ``metadata['graph']`` of each result says how its graph was made (see :meth:`SharedTopology.graph_for`).
    ``skin`` (Å): see :class:`SharedTopology`; ``reuse_topology=False`` rebuilds every graph.
    ``device``: where the forward passes run ('cpu', 'cuda'; graphs are built on the host and moved;
    :class:`~.device.DeviceUnavailableError` if absent); the caller's model stays where it is.
    """
    if batch_size < 1:
        raise BatchInputError(f"batch_size must be a positive integer, got {batch_size}")
    if skin <= 0:
        raise BatchInputError(f"skin must be positive (Å), got {skin}")
    if any(len(atoms) == 0 for atoms in structures):
        raise BatchInputError("cannot predict H(R) of an empty structure")
    if not structures:
        return []
    device = resolve_device(device)
    net = inference_model(model, dtype)
    if next(net.parameters()).device != device:
        net = (copy.deepcopy(net) if net is model else net).to(device)
    net.eval()
    topology = SharedTopology.of(net, structures[0], skin) if reuse_topology else None
    made = [topology.graph_for(net, a) if topology is not None else (structure_graph(net, a), "rebuilt")
            for a in structures]
    graphs = [g for g, _ in made]
    values: list[np.ndarray | None] = [None] * len(graphs)
    for start in range(0, len(graphs), batch_size):
        chunk = list(range(start, min(start + batch_size, len(graphs))))
        # one forward pass per distinct cell in the chunk (thermal samples: one)
        while chunk:
            same = [n for n in chunk if torch.equal(graphs[n].cell, graphs[chunk[0]].cell)]
            batch, counts = batch_graphs([graphs[n] for n in same])
            batch = graph_to(batch, device)
            with torch.no_grad():
                out = net(batch).detach().cpu().numpy().astype(float)
            for n, part in zip(same, np.split(out, np.cumsum(counts)[:-1])):
                values[n] = part
            chunk = [n for n in chunk if n not in same]
    out = []
    for (g, how), v in zip(made, values):
        h = predicted_hamiltonian(net.config, g.template, v)
        h.metadata["graph"] = how
        out.append(h)
    return out
