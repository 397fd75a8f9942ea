"""HedgeNet-Phonon: MACE with a heterogeneous edge set (paper Sec. II.2, Fig. 3a).

Per message-passing layer there is one MACE interaction + product block per relation
(``intra``: edges within a layer, ``inter``: edges between layers), each with its own weights and
its own radial basis/cutoff; the node features of the relations are summed, then read out.
With ``heterogeneous=False`` the same class is the homogeneous MACE baseline (one relation
``all`` with cutoff ``max(r_max_intra, r_max_inter)``).

Built from mace-torch 0.3.16 blocks (Batatia et al., NeurIPS 2022, MACE); defaults for the
readout MLP (16x0e, SiLU gate), radial MLP (64, 64, 64), 8 Bessel functions and p = 5 polynomial
cutoff are mace-torch's command-line defaults. Energies eV, lengths Å, forces eV/Å, stress eV/Å³.

Atomic energy (as mace-torch's ``ScaleShiftMACE``): E_i = E0[Z_i] + energy_scale · Σ_layers readout_i
+ energy_shift. The readouts have no bias and an untrained network's per-atom output is a nearly
constant offset of O(1) (eV) that depends on the seed; :func:`~aiida_mlepi.core.ml.training.train`
therefore sets ``energy_scale`` to the RMS of the training forces and ``energy_shift`` so that the
initial model predicts the mean training energy per atom.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

# e3nn 0.4.4 reads its constants with torch.load, which on torch >= 2.6 (weights_only by default)
# needs the builtin `slice` allow-listed; this only widens what torch.load accepts by `slice`.
torch.serialization.add_safe_globals([slice])

from e3nn import o3  # noqa: E402
from mace.modules.blocks import (  # noqa: E402
    AtomicEnergiesBlock, EquivariantProductBasisBlock,
                                 LinearNodeEmbeddingBlock, LinearReadoutBlock,
                                 NonLinearReadoutBlock, RadialEmbeddingBlock,
                                 RealAgnosticResidualInteractionBlock)
from mace.tools.scatter import scatter_sum  # noqa: E402

from .graph import AtomicGraph  # noqa: E402
from aiida_mlepi.core.io.model_file import PHONON_MODEL_FILE, ModelFileError  # noqa: E402,F401

from .relations import EdgeRelations  # noqa: E402

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
MODEL_FILE_FORMAT = PHONON_MODEL_FILE.name
MODEL_FILE_VERSION = PHONON_MODEL_FILE.version
#: versions :func:`load_model` reads (1: no energy_scale/energy_shift, read as 1 and 0)
READABLE_MODEL_FILE_VERSIONS = PHONON_MODEL_FILE.readable_versions


class ModelConfigError(ValueError):
    """The model configuration is invalid."""


@dataclass
class HedgeNetPhononConfig(EdgeRelations):
    """Hyperparameters (lengths Å, energies eV)."""

    atomic_numbers: tuple[int, ...] = (6,)
    atomic_energies: tuple[float, ...] = (0.0,)  #: reference energy per element (eV)
    energy_scale: float = 1.0  #: multiplies the summed readouts (eV per network unit)
    energy_shift: float = 0.0  #: added to every atomic energy (eV/atom)
    r_max_intra: float = 4.5  #: cutoff of intra-layer edges (Å)
    r_max_inter: float = 6.0  #: cutoff of inter-layer edges (Å); 3.35 Å graphite spacing + margin
    num_channels: int = 16
    max_ell: int = 2  #: highest degree of the edge spherical harmonics
    max_L: int = 1  #: highest degree of the hidden node features
    correlation: int = 3  #: body order − 1 of the product basis
    num_interactions: int = 2
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    radial_mlp: tuple[int, ...] = (64, 64, 64)
    mlp_irreps: str = "16x0e"
    avg_num_neighbors_intra: float = 24.0  #: graphene has 24 neighbours within 4.5 Å
    avg_num_neighbors_inter: float = 24.0
    heterogeneous: bool = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.atomic_numbers = tuple(int(z) for z in self.atomic_numbers)
        self.atomic_energies = tuple(float(e) for e in self.atomic_energies)
        self.radial_mlp = tuple(int(n) for n in self.radial_mlp)
        if len(self.atomic_numbers) == 0 or len(self.atomic_energies) != len(self.atomic_numbers):
            raise ModelConfigError("give one atomic energy per atomic number (and at least one element)")
        self.energy_scale, self.energy_shift = float(self.energy_scale), float(self.energy_shift)
        if not (np.isfinite(self.energy_scale) and self.energy_scale > 0 and np.isfinite(self.energy_shift)):
            raise ModelConfigError("energy_scale must be positive and energy_shift finite")
        if self.r_max_intra <= 0 or self.r_max_inter <= 0:
            raise ModelConfigError("cutoffs r_max_intra and r_max_inter must be positive (Å)")
        if self.dtype not in _DTYPES:
            raise ModelConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if min(self.num_channels, self.num_interactions, self.correlation, self.num_bessel) < 1:
            raise ModelConfigError("num_channels, num_interactions, correlation, num_bessel must be ≥ 1")
        if self.max_ell < 0 or self.max_L < 0:
            raise ModelConfigError("max_ell and max_L must be ≥ 0")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def to_dict(self) -> dict:
        """JSON/torch-safe plain dict (lists instead of tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _hidden_irreps(channels: int, max_L: int) -> o3.Irreps:
    return o3.Irreps("+".join(f"{channels}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(max_L + 1)))


class HedgeNetPhonon(torch.nn.Module):
    """Energy, forces (and stress) of structures given as :class:`AtomicGraph`."""

    def __init__(self, config: HedgeNetPhononConfig):
        super().__init__()
        self.config = config
        c = config
        n_el = len(c.atomic_numbers)
        hidden = _hidden_irreps(c.num_channels, c.max_L)
        node_attr_irreps = o3.Irreps(f"{n_el}x0e")
        scalar_irreps = o3.Irreps(f"{c.num_channels}x0e")
        sh_irreps = o3.Irreps.spherical_harmonics(c.max_ell)
        interaction_irreps = (sh_irreps * c.num_channels).sort()[0].simplify()
        edge_feats_irreps = o3.Irreps(f"{c.num_bessel}x0e")
        avg = {"intra": c.avg_num_neighbors_intra, "inter": c.avg_num_neighbors_inter,
               "all": c.avg_num_neighbors_intra + c.avg_num_neighbors_inter}

        self.atomic_energies_fn = AtomicEnergiesBlock(np.asarray(c.atomic_energies))
        self.node_embedding = LinearNodeEmbeddingBlock(node_attr_irreps, scalar_irreps)
        self.spherical_harmonics = o3.SphericalHarmonics(sh_irreps, normalize=True,
                                                         normalization="component")
        self.radial = torch.nn.ModuleDict({
            r: RadialEmbeddingBlock(r_max=rc, num_bessel=c.num_bessel,
                                    num_polynomial_cutoff=c.num_polynomial_cutoff)
            for r, rc in c.cutoffs.items()})
        self.interactions = torch.nn.ModuleList()
        self.products = torch.nn.ModuleList()
        self.readouts = torch.nn.ModuleList()
        feats_in = scalar_irreps
        for layer in range(c.num_interactions):
            last = layer == c.num_interactions - 1
            out = scalar_irreps if last else hidden
            inter_r, prod_r = torch.nn.ModuleDict(), torch.nn.ModuleDict()
            for r in c.relations:
                inter_r[r] = RealAgnosticResidualInteractionBlock(
                    node_attrs_irreps=node_attr_irreps, node_feats_irreps=feats_in,
                    edge_attrs_irreps=sh_irreps, edge_feats_irreps=edge_feats_irreps,
                    target_irreps=interaction_irreps, hidden_irreps=out,
                    avg_num_neighbors=avg[r], radial_MLP=list(c.radial_mlp))
                prod_r[r] = EquivariantProductBasisBlock(
                    node_feats_irreps=interaction_irreps, target_irreps=out,
                    correlation=c.correlation, num_elements=n_el, use_sc=True,
                    use_reduced_cg=True)
            self.interactions.append(inter_r)
            self.products.append(prod_r)
            if last:
                self.readouts.append(NonLinearReadoutBlock(out, o3.Irreps(c.mlp_irreps),
                                                           torch.nn.functional.silu))
            else:
                self.readouts.append(LinearReadoutBlock(out))
            feats_in = out
        self.to(c.torch_dtype)

    def num_parameters(self, part: str | None = None) -> int:
        """Trainable parameter count; ``part='interactions'`` counts interaction+product blocks only."""
        if part is None:
            return sum(p.numel() for p in self.parameters())
        if part == "interactions":
            return sum(p.numel() for m in (self.interactions, self.products) for p in m.parameters())
        raise ValueError(f"unknown part {part!r}: use None or 'interactions'")

    def forward(self, graph: AtomicGraph, compute_forces: bool = True,
                compute_stress: bool = False) -> dict[str, torch.Tensor]:
        """Energies (G,) eV, forces (N, 3) eV/Å, stress (G, 3, 3) eV/Å³ (ASE sign convention)."""
        c = self.config
        if set(graph.edge_index) != set(c.relations):
            raise ValueError(f"graph relations {sorted(graph.edge_index)} do not match the model's "
                             f"{list(c.relations)}: build it with config.cutoffs")
        dtype = c.torch_dtype
        base = graph.positions.to(dtype).detach().requires_grad_(compute_forces)
        cell = graph.cell.to(dtype)
        node_attrs = graph.node_attrs.to(dtype)
        positions = base
        strain = None
        if compute_stress:  # homogeneous strain ε: r -> r (1 + ε), stress = (1/V) dE/dε
            strain = torch.zeros((graph.num_graphs, 3, 3), dtype=dtype, device=base.device, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            positions = base + torch.einsum("ni,nij->nj", base, sym[graph.batch])
            cell = cell + torch.einsum("gki,gij->gkj", cell, sym)
        leaf = base if compute_forces else None

        edge_attrs, edge_feats, edge_index = {}, {}, {}
        for r in c.relations:
            idx = graph.edge_index[r]
            sender, receiver = idx[0], idx[1]
            shifts = torch.einsum("ei,eij->ej", graph.unit_shifts[r].to(dtype), cell[graph.batch[sender]])
            vectors = positions[receiver] - positions[sender] + shifts
            lengths = torch.linalg.norm(vectors, dim=-1, keepdim=True)
            edge_attrs[r] = self.spherical_harmonics(vectors)
            edge_feats[r], _ = self.radial[r](lengths, node_attrs, idx, None)
            edge_index[r] = idx

        n_atoms = positions.shape[0]
        interaction = None
        feats = self.node_embedding(node_attrs)
        for inter_r, prod_r, readout in zip(self.interactions, self.products, self.readouts):
            total = None
            for r in c.relations:
                msg, sc = inter_r[r](node_attrs=node_attrs, node_feats=feats, edge_attrs=edge_attrs[r],
                                     edge_feats=edge_feats[r], edge_index=edge_index[r])
                h = prod_r[r](node_feats=msg, sc=sc, node_attrs=node_attrs)
                total = h if total is None else total + h
            feats = total
            e = readout(feats).squeeze(-1)
            interaction = e if interaction is None else interaction + e
        node_energy = self.atomic_energies_fn(node_attrs)[:, 0] + c.energy_scale * interaction + c.energy_shift
        energy = scatter_sum(node_energy, graph.batch, dim=0, dim_size=graph.num_graphs)
        # node_readout: the summed readouts before energy_scale/energy_shift (used to fit the shift)
        out = {"energy": energy, "node_energy": node_energy, "node_readout": interaction}
        inputs = [t for t in (leaf, strain) if t is not None]
        if inputs:
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=self.training,
                                        allow_unused=True)
            if compute_forces:
                g = grads[0]
                out["forces"] = -g if g is not None else torch.zeros((n_atoms, 3), dtype=dtype, device=base.device)
            if strain is not None:
                g = grads[-1]
                volume = torch.abs(torch.linalg.det(graph.cell.to(dtype)))
                out["stress"] = g / volume[:, None, None]
        return out


def save_model(model: HedgeNetPhonon, path) -> None:
    """Write config + weights; the file loads with ``torch.load(weights_only=True)``."""
    PHONON_MODEL_FILE.save(model, path)


def load_model(path) -> HedgeNetPhonon:
    """Read a model written by :func:`save_model` (raises :class:`ModelFileError`)."""
    return PHONON_MODEL_FILE.load(path, lambda config: HedgeNetPhonon(HedgeNetPhononConfig(**config)))
