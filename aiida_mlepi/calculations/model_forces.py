"""Calcfunction: forces of many structures from a trained HedgeNet-Phonon, in batches.

The model node is an input, so the provenance graph links every force array to the model (and,
through the model's training CalcJob, to the training set).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData

PHONON_MODEL_KIND = "hedgenet-phonon"
DEFAULT_BATCH_SIZE = 8


def model_forces_node(energy: float, forces) -> orm.ArrayData:
    """ArrayData of one structure's model prediction: arrays ``forces`` (N, 3) eV/Å and ``energy`` (1,) eV."""
    node = orm.ArrayData()
    node.set_array("forces", np.asarray(forces, dtype=float))
    node.set_array("energy", np.array([float(energy)]))
    node.base.attributes.set("energy_ev", float(energy))
    node.base.attributes.set("units", {"forces": "eV/Angstrom", "energy": "eV"})
    node.base.attributes.set("force_provider", "hedgenet")
    return node


@calcfunction
def compute_model_forces(model: TrainedModelData, batch_size: orm.Int,
                         **structures: LayeredStructureData) -> dict:
    """Energy (eV) and forces (eV/Å) of each structure predicted by ``model``.

    Output namespace ``forces``: one ArrayData per input label (arrays ``forces`` (N, 3) eV/Å and
    ``energy`` (1,) eV), the same layout as the reference engine's ``compute_engine_forces``.
    """
    import torch

    from aiida_mlepi.core.ml import predict

    if model.model_kind != PHONON_MODEL_KIND:
        raise ValueError(f"the model is a {model.model_kind!r} model; forces need a {PHONON_MODEL_KIND!r} model")
    network = model.load_model()
    labels = sorted(structures)
    with torch.enable_grad():
        energies, forces = predict(network, [structures[label].get_ase() for label in labels],
                                   batch_size=batch_size.value)
    return {"forces": {label: model_forces_node(energy, force) for label, energy, force in zip(labels, energies, forces)}}
