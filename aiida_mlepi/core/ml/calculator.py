"""ASE calculator and batched predictor for :class:`HedgeNetPhonon` (eV, Å, eV/Å, eV/Å³)."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .graph import build_graph, collate
from .hedgenet_phonon import HedgeNetPhonon


class HedgeNetCalculator(Calculator):
    """ASE calculator: energy, free_energy, forces, and stress (full-cell volume, vacuum included)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: HedgeNetPhonon, **kwargs):
        super().__init__(**kwargs)
        self.model = model.eval()

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        cfg = self.model.config
        graph = build_graph(self.atoms, cfg.atomic_numbers, cfg.cutoffs, cfg.torch_dtype)
        want_stress = "stress" in properties
        out = self.model(graph, compute_forces=True, compute_stress=want_stress)
        energy = float(out["energy"].detach()[0])
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": out["forces"].detach().cpu().numpy().astype(float)}
        if want_stress:
            s = out["stress"].detach().cpu().numpy()[0].astype(float)
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def predict(model: HedgeNetPhonon, structures: list[Atoms], batch_size: int = 8,
            device: str | torch.device | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (S,) eV and forces (one (N_s, 3) array per structure, eV/Å), in batches.

    ``device``: where to run ('cpu', 'cuda'; :class:`~.device.DeviceUnavailableError` if absent); None: where
    the model is. The model is moved there (graphs are built on the host and moved per batch).
    """
    from .device import resolve_device
    from .training import _graph_to

    if batch_size < 1:
        raise ValueError("batch_size must be a positive integer")
    cfg = model.config
    target = next(model.parameters()).device if device is None else resolve_device(device)
    model.to(target).eval()
    energies: list[float] = []
    forces: list[np.ndarray] = []
    for start in range(0, len(structures), batch_size):
        chunk = structures[start:start + batch_size]
        graph = collate([build_graph(a, cfg.atomic_numbers, cfg.cutoffs, cfg.torch_dtype)
                         for a in chunk])
        if target.type != "cpu":
            graph = _graph_to(graph, target, cfg.torch_dtype)
        out = model(graph, compute_forces=True)
        energies.extend(out["energy"].detach().cpu().numpy().astype(float).tolist())
        f = out["forces"].detach().cpu().numpy().astype(float)
        offsets = np.cumsum([0] + [len(a) for a in chunk])
        forces.extend(f[offsets[k]:offsets[k + 1]] for k in range(len(chunk)))
    return np.asarray(energies), forces
