"""HedgeNet-Electron: an E(3)-equivariant network for H(R) on a heterogeneous edge set (paper Sec. II, Fig. 3b).

Architecture (DeepH-E3 style, written from the paper's description with e3nn 0.4.4):

* node features: element one-hot → scalars, then ``num_layers`` message-passing layers. In each
  layer every relation (``intra``: same layer, ``inter``: different layers; each with its own
  radial basis and cutoff, the inter one longer) has its own convolution
  ``m_i = Σ_j TP(x_j, Y(r̂_ij); w = MLP_r(B(|r_ij|)))``; the relations' messages are **summed**
  with a self-connection, then a gated nonlinearity (residual once the shapes match);
* edge features of each block edge i → j + R: ``TP([x_i, x_j], Y(r̂_ij); w = MLP_r(B))`` → gate →
  linear, with separate weights per relation (heterogeneous edge readout);
* outputs: per element pair a linear map to the irreps la ⊗ lb = ⊕ l of the orbital shells, turned
  into an OpenMX-ordered block by the Clebsch–Gordan change of basis of :mod:`.electron_blocks`;
  on-site blocks from node features, off-site from edge features;
* hermiticity by construction (:mod:`.electron_graph`): one block of each (i, j, R)/(j, i, −R) pair
  is predicted, the other is its transpose; on-site blocks are symmetrised;
* permutation equivariance: that block is H_ij(R) = ½ [B_ij(R) + B_ji(−R)ᵀ], the readout applied in
  both directions (:meth:`HedgeNetElectron._pair_blocks`), so it does not depend on which of the
  pair is canonical, i.e. on the order of the atoms.

``heterogeneous=False`` gives the homogeneous (DeepH-E3-like) baseline from the same code: one
relation ``all`` with cutoff ``max(r_max_intra, r_max_inter)``.

Overlap S(R): the model predicts H only. The reference engine's basis is orthogonal (S = 1); for a
non-orthogonal data source (e.g. OpenMX) S(R) depends on geometry only and is taken from that
source (:func:`predict_hamiltonian` accepts ``overlap_from``), not learned here.
Units: Å, eV.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from ase import Atoms

torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 reads its constants with torch.load

# e3nn's code generation trips a harmless TorchScript annotation warning for every Gate
warnings.filterwarnings("ignore", message="The TorchScript type system doesn't support instance-level")

import e3nn  # noqa: E402
from e3nn import o3  # noqa: E402
from e3nn.nn import FullyConnectedNet, Gate  # noqa: E402

from ..hamiltonian import HamiltonianR, shell_size  # noqa: E402
from .electron_blocks import block_map, pair_irreps  # noqa: E402
from .electron_graph import (EdgeGroup, ElectronGraph, block_edges, build_electron_graph,  # noqa: E402
                             empty_hamiltonian)
from aiida_mlepi.core.io.model_file import ELECTRON_MODEL_FILE, ElectronModelFileError  # noqa: E402,F401

from .relations import EdgeRelations  # noqa: E402

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
MODEL_FILE_FORMAT = ELECTRON_MODEL_FILE.name
#: 2: off-site blocks from the readout of both directions, ½ [B_ij(R) + B_ji(−R)ᵀ] (independent of the atom
#: order). Version-1 weights have the same shapes but were fitted to the one-direction readout, so they are
#: refused (see :func:`check_model_version`) rather than loaded into a model that would predict other blocks.
MODEL_FILE_VERSION = ELECTRON_MODEL_FILE.version


class ElectronModelConfigError(ValueError):
    """The model configuration is invalid."""


@dataclass
class HedgeNetElectronConfig(EdgeRelations):
    """Hyperparameters (lengths Å). Defaults: carbon sp³ basis of the reference engine."""

    atomic_numbers: tuple[int, ...] = (6,)
    basis: dict = field(default_factory=lambda: {6: (0, 1)})  #: Z -> shells (l, ...), OpenMX order
    r_max_intra: float = 3.0  #: message-passing/radial cutoff of intra-layer edges (Å)
    r_max_inter: float = 6.5  #: ... of inter-layer edges (Å), longer: 3.35 Å spacing + hopping range
    block_cutoff_intra: float = 2.6  #: predicted blocks: intra-layer pairs closer than this (Å) (engine: 2.6)
    block_cutoff_inter: float = 6.0  #: predicted blocks: inter-layer pairs closer than this (Å) (engine: 6.0)
    num_layers: int = 2  #: message-passing layers
    num_scalars: int = 16  #: 0e channels of the hidden node features
    num_vectors: int = 8  #: 1o and 1e channels
    num_tensors: int = 4  #: 2e channels
    sh_lmax: int = 2  #: highest degree of the edge spherical harmonics
    num_basis: int = 8  #: Bessel functions of the radial basis
    envelope_p: int = 6  #: polynomial cutoff envelope exponent
    radial_hidden: int = 32  #: width of the radial MLPs
    avg_neighbors_intra: float = 12.0  #: normalisation of the intra sum (graphene, 3 Å)
    avg_neighbors_inter: float = 37.0  #: normalisation of the inter sum (bilayer, 6.5 Å)
    heterogeneous: bool = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.atomic_numbers = tuple(int(z) for z in self.atomic_numbers)
        self.basis = {int(z): tuple(int(l) for l in ls) for z, ls in dict(self.basis).items()}
        if not self.atomic_numbers:
            raise ElectronModelConfigError("atomic_numbers must name at least one element")
        missing = sorted(set(self.atomic_numbers) - set(self.basis))
        if missing:
            raise ElectronModelConfigError(f"no orbital basis given for atomic numbers {missing}")
        if any(l < 0 or l > 3 for ls in self.basis.values() for l in ls):
            raise ElectronModelConfigError("shell angular momenta must be 0..3")
        if self.dtype not in _DTYPES:
            raise ElectronModelConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if min(self.r_max_intra, self.r_max_inter, self.block_cutoff_intra, self.block_cutoff_inter) <= 0:
            raise ElectronModelConfigError("cutoffs must be positive (Å)")
        if self.block_cutoff_intra > self.r_max_intra or self.block_cutoff_inter > self.r_max_inter:
            raise ElectronModelConfigError("block cutoffs must not exceed the message-passing cutoffs r_max_*")
        if min(self.num_layers, self.num_scalars, self.num_basis, self.radial_hidden) < 1:
            raise ElectronModelConfigError("num_layers, num_scalars, num_basis, radial_hidden must be ≥ 1")
        if min(self.num_vectors, self.num_tensors) < 0 or self.sh_lmax < 0:
            raise ElectronModelConfigError("num_vectors, num_tensors and sh_lmax must be ≥ 0")

    @property
    def avg_neighbors(self) -> dict[str, float]:
        return {"intra": self.avg_neighbors_intra, "inter": self.avg_neighbors_inter,
                "all": self.avg_neighbors_intra + self.avg_neighbors_inter}

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def to_dict(self) -> dict:
        """JSON/torch-safe plain dict (lists, string keys)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["basis"] = {str(z): list(ls) for z, ls in self.basis.items()}
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "HedgeNetElectronConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ElectronModelConfigError(f"unknown HedgeNet-Electron settings {unknown}; known: {sorted(known)}")
        return cls(**values)


# ---------------------------------------------------------------------------- building blocks
class RadialBasis(torch.nn.Module):
    """Bessel functions sin(nπr/r_c)/r · √(2/r_c) times a smooth polynomial envelope (zero at r_c)."""

    def __init__(self, r_max: float, num_basis: int, p: int):
        super().__init__()
        self.r_max, self.p = float(r_max), int(p)
        self.register_buffer("freq", math.pi * torch.arange(1, num_basis + 1, dtype=torch.float64) / r_max)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = (r / self.r_max).clamp(max=1.0)
        p = self.p
        env = (1 - (p + 1) * (p + 2) / 2 * x ** p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2))
        env = env * (x < 1.0)
        bessel = math.sqrt(2.0 / self.r_max) * torch.sin(self.freq.to(r.dtype) * r[:, None]) / r[:, None]
        return bessel * env[:, None]


def _gate_for(irreps_out: o3.Irreps) -> Gate:
    """Gated nonlinearity producing ``irreps_out`` (scalars: SiLU; others: sigmoid gates)."""
    scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
    return Gate(scalars, [torch.nn.functional.silu] * len(scalars),
                gates, [torch.sigmoid] * len(gates), gated)


class WeightedConvolution(torch.nn.Module):
    """Σ over edges of TP(x_src, Y(r̂); w = MLP(radial basis)) — 'uvu' paths restricted to ``irreps_target``."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps,
                 num_basis: int, radial_hidden: int):
        super().__init__()
        mid, instructions = [], []
        targets = {ir for _, ir in irreps_target}
        for i1, (mul, ir1) in enumerate(irreps_in):
            for i2, (_, ir2) in enumerate(irreps_sh):
                for ir in ir1 * ir2:
                    if ir in targets:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir))
        self.irreps_mid = o3.Irreps(mid)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, self.irreps_mid, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = FullyConnectedNet([num_basis, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        return self.tp(x, sh, self.radial(basis))


class _QuickCodegen:
    """Build e3nn modules without TorchScript/einsum-path optimisation (2–4× faster to construct, same
    results, similar speed on CPU); e3nn's global defaults are restored afterwards."""

    def __enter__(self):
        self.saved = e3nn.get_optimization_defaults()
        e3nn.set_optimization_defaults(jit_script_fx=False, optimize_einsums=False)

    def __exit__(self, *exc):
        e3nn.set_optimization_defaults(**self.saved)


class HedgeNetElectron(torch.nn.Module):
    """H(R) blocks (eV) of structures given as :class:`~.electron_graph.ElectronGraph`."""

    def __init__(self, config: HedgeNetElectronConfig):
        super().__init__()
        with _QuickCodegen():
            self._build(config)

    def _build(self, config: HedgeNetElectronConfig) -> None:
        self.config = c = config
        self.hidden = o3.Irreps(f"{c.num_scalars}x0e + {c.num_vectors}x1o + {c.num_vectors}x1e + "
                                f"{c.num_tensors}x2e").simplify()
        self.irreps_sh = o3.Irreps.spherical_harmonics(c.sh_lmax)
        scalars_in = o3.Irreps(f"{c.num_scalars}x0e")
        self.embedding = torch.nn.Embedding(len(c.atomic_numbers), c.num_scalars)
        self.radial = torch.nn.ModuleDict({r: RadialBasis(rc, c.num_basis, c.envelope_p)
                                           for r, rc in c.cutoffs.items()})

        self.convolutions = torch.nn.ModuleList()
        self.conv_linears = torch.nn.ModuleList()
        self.self_linears = torch.nn.ModuleList()
        self.gates = torch.nn.ModuleList()
        irreps_in = scalars_in
        for _ in range(c.num_layers):
            gate = _gate_for(self.hidden)
            convs, lins = torch.nn.ModuleDict(), torch.nn.ModuleDict()
            for r in c.relations:
                convs[r] = WeightedConvolution(irreps_in, self.irreps_sh, gate.irreps_in, c.num_basis,
                                               c.radial_hidden)
                lins[r] = o3.Linear(convs[r].irreps_mid, gate.irreps_in)
            self.convolutions.append(convs)
            self.conv_linears.append(lins)
            self.self_linears.append(o3.Linear(irreps_in, gate.irreps_in))
            self.gates.append(gate)
            irreps_in = gate.irreps_out

        # heterogeneous edge readout: one per relation
        pair_in = self.hidden + self.hidden  # [x_i, x_j], concatenated as is
        self.edge_convs, self.edge_lins, self.edge_gates = (torch.nn.ModuleDict(), torch.nn.ModuleDict(),
                                                            torch.nn.ModuleDict())
        for r in c.relations:
            gate = _gate_for(self.hidden)
            self.edge_convs[r] = WeightedConvolution(pair_in, self.irreps_sh, gate.irreps_in, c.num_basis,
                                                     c.radial_hidden)
            self.edge_lins[r] = o3.Linear(self.edge_convs[r].irreps_mid, gate.irreps_in)
            self.edge_gates[r] = gate
        # outputs: per element (on site) and per relation × element pair (off site)
        self.onsite_out = torch.nn.ModuleDict()
        self.edge_out = torch.nn.ModuleDict()
        for zi in c.atomic_numbers:
            bi = c.basis[zi]
            self.onsite_out[str(zi)] = o3.Linear(self.hidden, pair_irreps(bi, bi), biases=True)
            # invariant (0e) part of the mean on-site block of the training data, added to the output
            self.register_buffer(f"onsite_shift_{zi}", torch.zeros(pair_irreps(bi, bi).dim))
            self.register_buffer(f"map_{zi}_{zi}", torch.tensor(block_map(bi, bi)))
            for zj in c.atomic_numbers:
                bj = c.basis[zj]
                if zj != zi:
                    self.register_buffer(f"map_{zi}_{zj}", torch.tensor(block_map(bi, bj)))
                for r in c.relations:
                    self.edge_out[f"{r}_{zi}_{zj}"] = o3.Linear(self.hidden, pair_irreps(bi, bj), biases=True)
        self.to(c.torch_dtype)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def node_features(self, g: ElectronGraph) -> torch.Tensor:
        c = self.config
        dtype = c.torch_dtype
        pos, cell = g.positions.to(dtype), g.cell.to(dtype)
        x = self.embedding(g.species)
        geometry = {}
        for r in c.relations:
            snd, rcv, shifts = g.mp_edges[r]
            vec = pos[rcv] - pos[snd] + shifts.to(dtype) @ cell
            length = torch.linalg.norm(vec, dim=1)
            geometry[r] = (snd, rcv, o3.spherical_harmonics(self.irreps_sh, vec, normalize=True,
                                                            normalization="component"),
                           self.radial[r](length))
        for convs, lins, self_lin, gate in zip(self.convolutions, self.conv_linears, self.self_linears,
                                               self.gates):
            total = self_lin(x)
            for r in c.relations:
                snd, rcv, sh, basis = geometry[r]
                msg = convs[r](x[snd], sh, basis)
                agg = torch.zeros((x.shape[0], msg.shape[1]), dtype=msg.dtype, device=msg.device).index_add_(0, rcv, msg)
                total = total + lins[r](agg / c.avg_neighbors[r])
            new = gate(total)
            x = x + new if new.shape == x.shape else new
        return x

    def forward(self, g: ElectronGraph) -> torch.Tensor:
        """Flattened blocks (eV) in the order of ``g.template``'s edges (hermitian by construction)."""
        c = self.config
        dtype = c.torch_dtype
        x = self.node_features(g)
        pieces = []
        for z, atoms in g.node_groups:
            f = self.onsite_out[str(z)](x[atoms]) + getattr(self, f"onsite_shift_{z}")
            pieces.append((f @ getattr(self, f"map_{z}_{z}")).reshape(-1))
        pos, cell = g.positions.to(dtype), g.cell.to(dtype)
        for grp in g.edge_groups:
            vec = pos[grp.j] + grp.shifts.to(dtype) @ cell - pos[grp.i]
            pieces.append(self._pair_blocks(x, grp, vec).reshape(-1))
        canon = torch.cat(pieces) if pieces else torch.zeros(0, dtype=dtype, device=x.device)
        return 0.5 * (canon[g.gather_a] + canon[g.gather_b])

    def _pair_blocks(self, x: torch.Tensor, grp: EdgeGroup, vec: torch.Tensor) -> torch.Tensor:
        """(E, n_i, n_j) blocks (eV) H_ij(R) = ½ [B_ij(R) + B_ji(−R)ᵀ] of the canonical edges i → j + R.

        ``vec`` (E, 3) Å is r_j + R − r_i. Both directions go through the same readout (the reverse
        one sees [x_j, x_i] and −vec, whose harmonics carry the (−1)^l parity), so the block does not
        depend on which of the pair (i, j, R)/(j, i, −R) the graph calls canonical: the prediction is
        equivariant under relabelling the atoms, and stays rotation-equivariant and exactly hermitian.
        """
        r, zi, zj, num = grp.relation, grp.zi, grp.zj, len(grp.i)
        both = torch.cat([vec, -vec])
        sh = o3.spherical_harmonics(self.irreps_sh, both, normalize=True, normalization="component")
        basis = self.radial[r](torch.linalg.norm(vec, dim=1)).repeat(2, 1)
        pair = torch.cat([torch.cat([x[grp.i], x[grp.j]], dim=1), torch.cat([x[grp.j], x[grp.i]], dim=1)])
        e = self.edge_gates[r](self.edge_lins[r](self.edge_convs[r](pair, sh, basis)))
        forward = self.edge_out[f"{r}_{zi}_{zj}"](e[:num]) @ getattr(self, f"map_{zi}_{zj}")
        reverse = self.edge_out[f"{r}_{zj}_{zi}"](e[num:]) @ getattr(self, f"map_{zj}_{zi}")
        n_i, n_j = self.block_size(zi), self.block_size(zj)
        return 0.5 * (forward.reshape(num, n_i, n_j) + reverse.reshape(num, n_j, n_i).transpose(1, 2))

    def block_size(self, z: int) -> int:
        """Orbitals per atom of element ``z``."""
        return sum(shell_size(l) for l in self.config.basis[z])

    def set_onsite_reference(self, hamiltonians) -> None:
        """Set the on-site shift of each element to the rotation-invariant part of its mean on-site block (eV).

        Like the atomic reference energies of a force field: the network then learns deviations.
        Only 0e components are kept, so the shift is itself equivariant.
        """
        for z in self.config.atomic_numbers:
            blocks = []
            for h in hamiltonians:
                onsite = np.flatnonzero((h.edges[:, 3] == h.edges[:, 4]) & ~h.edges[:, :3].any(axis=1))
                blocks += [h.block(e).ravel() for e in onsite if int(h.numbers[h.edges[e, 3]]) == z]
            if not blocks:
                continue
            shells = self.config.basis[z]
            irreps = pair_irreps(shells, shells)
            coeffs = np.linalg.lstsq(block_map(shells, shells).T, np.mean(blocks, axis=0), rcond=None)[0]
            scalar = np.concatenate([np.full(mul * ir.dim, ir.l == 0, dtype=bool) for mul, ir in irreps])
            shift = getattr(self, f"onsite_shift_{z}")
            shift.copy_(torch.as_tensor(np.where(scalar, coeffs, 0.0), dtype=shift.dtype, device=shift.device))

    # ------------------------------------------------------------------ convenience
    def graph(self, h: HamiltonianR, with_target: bool = True,
              layer_ids: np.ndarray | None = None) -> ElectronGraph:
        """Graph for the structure and edge list of ``h`` (its blocks are the targets when training)."""
        check_basis(self.config, h)
        return build_electron_graph(h, self.config.atomic_numbers, self.config.cutoffs,
                                    dtype=self.config.torch_dtype, with_target=with_target,
                                    layer_ids=layer_ids)


def check_basis(config: HedgeNetElectronConfig, h: HamiltonianR) -> None:
    """Raise ValueError unless ``h`` uses the model's orbital basis for all its elements."""
    for z in set(int(z) for z in h.numbers):
        if z in config.basis and tuple(h.basis.get(z, ())) != config.basis[z]:
            raise ValueError(f"H(R) has shells {h.basis.get(z)} for Z={z}, the model was built for "
                             f"{config.basis[z]}")


def predict_hamiltonian(model: HedgeNetElectron, atoms: Atoms | HamiltonianR,
                        overlap_from: HamiltonianR | None = None,
                        layer_ids: np.ndarray | None = None) -> HamiltonianR:
    """Predicted H(R) (eV) of a structure.

    ``atoms``: ASE atoms (blocks = on site + pairs within the model's block cutoffs, layer ids
    from ``atoms.arrays['layer_ids']`` or z-gaps) or a HamiltonianR (its edge list is reused).
    ``overlap_from``: a non-orthogonal data source's H(R) on the same edge list, whose S(R) is
    copied (the model does not learn S); otherwise the basis is orthogonal (S = 1).
    ``layer_ids`` (N,) overrides the layer assignment (needed when the layers are not normal to z,
    e.g. for a rotated structure).
    """
    c = model.config
    if isinstance(atoms, HamiltonianR):
        template = atoms
    else:
        template = prediction_template(c, atoms)
        if layer_ids is None:
            layer_ids = atoms.arrays.get("layer_ids")
    check_basis(c, template)
    graph = build_electron_graph(template, c.atomic_numbers, c.cutoffs, dtype=c.torch_dtype,
                                 with_target=False, layer_ids=layer_ids)
    model.eval()
    with torch.no_grad():
        values = model(graph).detach().cpu().numpy().astype(float)
    s_values = None
    if overlap_from is not None:
        if not np.array_equal(overlap_from.edges, template.edges):
            raise ValueError("overlap_from must have the same edge list as the predicted H(R)")
        s_values = overlap_from.s_values
    return predicted_hamiltonian(c, template, values, s_values)


def prediction_template(config: HedgeNetElectronConfig, atoms: Atoms) -> HamiltonianR:
    """Zero-valued H(R) of ``atoms`` whose edges are the blocks the model predicts: on site + pairs within
    the block cutoffs (Å), labelled by the layer ids of ``atoms`` (stored array or z-gaps)."""
    if len(atoms) == 0:
        raise ValueError("cannot predict H(R) of an empty structure")
    edges = block_edges(atoms, config.block_cutoff_intra, config.block_cutoff_inter)
    return empty_hamiltonian(atoms, {z: config.basis[z] for z in set(int(z) for z in atoms.numbers)
                                     if z in config.basis}, edges)


def predicted_hamiltonian(config: HedgeNetElectronConfig, template: HamiltonianR, values: np.ndarray,
                          s_values: np.ndarray | None = None) -> HamiltonianR:
    """``template`` with the predicted blocks ``values`` (eV) and the prediction's metadata."""
    meta = {"model": "HedgeNet-Electron" if config.heterogeneous else "homogeneous baseline",
            "overlap": "copied from the data source" if s_values is not None
            else "orthogonal basis: S(R) = identity (s_values=None)",
            "energy_unit": "eV", "length_unit": "Angstrom"}
    return HamiltonianR(cell=template.cell, positions=template.positions, numbers=template.numbers,
                        basis=template.basis, edges=template.edges, h_values=values, s_values=s_values,
                        pbc=template.pbc, metadata=meta)


# ---------------------------------------------------------------------------- files
def check_model_version(version, path, kind: str) -> None:
    """Raise :class:`ElectronModelFileError` unless ``version`` is :data:`MODEL_FILE_VERSION` (``kind``: in the message)."""
    if version == MODEL_FILE_VERSION:
        return
    if version == 1:
        raise ElectronModelFileError(
            f"{path} is a version-1 HedgeNet-Electron {kind}, written before the off-site readout was made "
            f"independent of the atom order; its weights were fitted to the old readout and would predict "
            f"different blocks now: retrain the model with this version (file version {MODEL_FILE_VERSION})")
    raise ElectronModelFileError(f"{path} has HedgeNet-Electron {kind} version {version}, "
                                 f"this code reads version {MODEL_FILE_VERSION}")


def save_model(model: HedgeNetElectron, path) -> None:
    """Write config + weights; the file loads with ``torch.load(weights_only=True)``."""
    ELECTRON_MODEL_FILE.save(model, path)


def load_model(path) -> HedgeNetElectron:
    """Read a model written by :func:`save_model` (raises :class:`ElectronModelFileError`)."""
    return ELECTRON_MODEL_FILE.load(path, lambda config: HedgeNetElectron(HedgeNetElectronConfig.from_dict(config)))
