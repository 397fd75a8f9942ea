"""HedgeNet-Electron end to end through AiiDA: engine H(R) → train (CalcJob on localhost) → observable stage.

The training is a real CalcJob: ``python -m aiida_mlepi.core.ml.run_electron_training`` run by this
interpreter (the ``code``), its files retrieved and parsed by ``mlepi.training``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TINY_MODEL = {"num_layers": 1, "num_scalars": 8, "num_vectors": 2, "num_tensors": 1, "radial_hidden": 16,
              "num_basis": 6}
PARAMETERS = {"model": TINY_MODEL,
              "training": {"max_epochs": 12, "learning_rate": 0.02, "batch_size": 1, "ema_decay": 0.9, "seed": 3},
              "split": {"train": [0, 1, 2, 3, 4], "validation": [5], "test": [6]}}


@pytest.fixture(scope="module")
def engine_hamiltonians(relaxed_ab_bilayer):
    """Reference H(R) of 7 perturbed 2×2 supercells of the relaxed AB bilayer, stored as HamiltonianData."""
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    atoms = perturbed_configurations(relaxed_ab_bilayer.get_ase(), 7, PerturbationSettings(supercell=(2, 2)), seed=11)
    engine = ReferenceEngine()
    return {f"c{k}": HamiltonianData.from_hamiltonian(engine.hamiltonian(a)).store() for k, a in enumerate(atoms)}


_TRAINED: dict = {}


@pytest.fixture
def trained(aiida_code_installed, engine_hamiltonians):
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    key = next(iter(engine_hamiltonians.values())).uuid
    if key not in _TRAINED:
        code = aiida_code_installed(label="python-mlepi-electron", filepath_executable=sys.executable,
                                    default_calc_job_plugin="mlepi.train_electron")
        builder = CalculationFactory("mlepi.train_electron").get_builder()
        builder.code = code
        builder.hamiltonians = engine_hamiltonians
        builder.training_parameters = orm.Dict(PARAMETERS)
        builder.metadata.options.environment_variables = {"OMP_NUM_THREADS": "1"}
        _TRAINED[key] = run_get_node(builder)
    return _TRAINED[key]


def _sample(relaxed_ab_bilayer):
    """A thermal-like configuration of the 3×3 supercell (0.03 Å displacements), stored with labels."""
    from aiida_mlepi.core.structures import in_plane_supercell
    from aiida_mlepi.data.layered_structure import LayeredStructureData

    atoms = in_plane_supercell(relaxed_ab_bilayer.get_ase(), 3)
    atoms.positions += np.random.default_rng(4).normal(0.0, 0.03, atoms.positions.shape)
    node = LayeredStructureData.from_ase(atoms, material="AB-bilayer-graphene")
    node.base.attributes.set("temperature_k", 300.0)
    node.base.attributes.set("sample_index", 0)
    return node.store()


def test_training_calcjob_and_observable_stage(trained, relaxed_ab_bilayer):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron
    from aiida_mlepi.workchains.observable import ObservableWorkChain

    results, node = trained
    assert node.is_finished_ok, node.exit_message
    metrics = results["metrics"].get_dict()
    assert [h["epoch"] for h in metrics["history"]][:3] == [1, 2, 3]
    losses = [h["train_loss"] for h in metrics["history"]]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    model = results["model"]
    assert model.model_kind == "hedgenet-electron" and model.base.attributes.get("relations") == ["intra", "inter"]
    assert model.base.attributes.get("test_h_mae_mev") == pytest.approx(metrics["test"]["h_mae_mev"])
    assert 0 < metrics["test"]["h_mae_mev"] < 200.0
    assert isinstance(model.load_model(), HedgeNetElectron)

    sample = _sample(relaxed_ab_bilayer)
    # per-sample numbers to compare provider against provider: the chord velocity of the one configuration
    settings = orm.Dict({"primitive_cell": relaxed_ab_bilayer.cell, "electrons_per_atom": 4.0, "estimator": "chord",
                         "k_radius_inv_angstrom": 0.05, "n_directions": 6})
    velocities = {}
    for provider in ("reference", "hedgenet"):
        inputs = {"structures": {"s0": sample}, "temperature_k": orm.Float(300.0), "settings": settings,
                  "hamiltonian_provider": orm.Str(provider)}
        if provider == "hedgenet":
            inputs["hamiltonian_model"] = model
        out, wc = run_get_node(ObservableWorkChain, **inputs)
        assert wc.is_finished_ok, wc.exit_message
        velocities[provider] = out["per_sample"]["s0"]["fermi_velocity_m_per_s"]
    v_ref, v_ml = velocities["reference"], velocities["hedgenet"]
    assert math.isfinite(v_ml) and v_ref > 1e5
    # a briefly trained tiny model: measured 21 % off the engine here (4.00e5 vs 3.31e5 m/s); the bound
    # leaves room for other BLAS/torch builds (an untrained model is off by far more)
    assert abs(v_ml - v_ref) / v_ref < 0.35, (v_ml, v_ref)

    # provenance: the predicted H(R) was made by a calcfunction that took the model as input
    qb = orm.QueryBuilder().append(type(model), filters={"uuid": model.uuid}, tag="m")
    qb.append(orm.CalcFunctionNode, with_incoming="m", tag="p",
              filters={"attributes.function_name": "predict_hedgenet_hamiltonian"})
    qb.append(orm.Data, with_incoming="p", project="attributes.num_atoms")
    assert qb.all(flat=True) == [len(sample.sites)]


def test_hedgenet_without_model_is_exit_302(relaxed_ab_bilayer):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.observable import ObservableWorkChain

    _, node = run_get_node(ObservableWorkChain, structures={"s0": relaxed_ab_bilayer}, temperature_k=orm.Float(0.0),
                           settings=orm.Dict({"primitive_cell": relaxed_ab_bilayer.cell}),
                           hamiltonian_provider=orm.Str("hedgenet"))
    assert node.exit_status == 302 and "hamiltonian_model" in node.exit_message
    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

    _, node = run_get_node(EpiLoopWorkChain, structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                           hamiltonian_provider=orm.Str("hedgenet"))
    assert node.exit_status == 302 and "hamiltonian_model" in node.exit_message
