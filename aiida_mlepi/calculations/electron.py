"""Calcfunction predicting H(R) of one structure with a trained HedgeNet-Electron model (provenance: the model node)."""

from __future__ import annotations

from aiida.engine import calcfunction

from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData

from .engine import structure_labels

MODEL_KIND = "hedgenet-electron"


def electron_model_problem(model: TrainedModelData | None) -> str | None:
    """Why ``model`` cannot give H(R) (missing, wrong kind, unreadable or mislabelled file), or None."""
    if model is None:
        return "hamiltonian_provider 'hedgenet' needs the input `hamiltonian_model` (a trained HedgeNet-Electron)"
    if model.model_kind != MODEL_KIND:
        return f"hamiltonian_model is a {model.model_kind!r} model, not a {MODEL_KIND!r} one"
    problem = model.file_problem(MODEL_KIND)
    return f"hamiltonian_model: {problem}" if problem else None


@calcfunction
def predict_hedgenet_hamiltonian(structure: LayeredStructureData, model: TrainedModelData) -> HamiltonianData:
    """H(R) (eV) of ``structure`` predicted by HedgeNet-Electron: blocks of every pair within the model's
    block cutoffs, hermitian by construction; orthogonal basis (S = 1, as the reference engine)."""
    from aiida_mlepi.core.ml.hedgenet_electron import predict_hamiltonian

    problem = electron_model_problem(model)
    if problem:
        raise ValueError(problem)
    h = predict_hamiltonian(model.load_model(), structure.get_ase())
    h.metadata["model_uuid"] = model.uuid
    return HamiltonianData.from_hamiltonian(h, **structure_labels(structure))
