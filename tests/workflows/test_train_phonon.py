"""HedgeNet-Phonon end to end through AiiDA: label → train (CalcJob on localhost) → resume → phonons.

The training runs as a real CalcJob: ``python -m aiida_mlepi.core.ml.run_training`` in a subprocess
of this interpreter (the ``code``), its files retrieved and parsed by ``mlepi.training``.
"""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TINY_MODEL = {"num_channels": 8, "radial_mlp": [16, 16], "max_ell": 1, "max_L": 0, "correlation": 2,
              "num_interactions": 1, "r_max_intra": 3.0, "r_max_inter": 4.5}


def training_parameters(epochs: int, lr: float = 0.01) -> dict:
    return {"model": TINY_MODEL,
            "training": {"epochs": epochs, "batch_size": 3, "lr": lr, "ema_decay": 0.5, "seed": 7},
            "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0}}


@pytest.fixture(scope="module")
def dataset(relaxed_ab_bilayer):
    from aiida import orm

    from aiida_mlepi.calculations.labelling import label_perturbed_configurations

    return label_perturbed_configurations(relaxed_ab_bilayer, orm.Int(10), orm.Dict({"supercell": [2, 2]}),
                                          orm.List([6, 6, 1]), orm.Dict({}), orm.Int(0))


@pytest.fixture
def python_code(aiida_code_installed):
    """This interpreter (it has aiida-mlepi installed) as a code on the ``aiida_localhost`` computer."""
    return aiida_code_installed(label="python-mlepi", filepath_executable=sys.executable,
                                default_calc_job_plugin="mlepi.train_phonon")


def run_training(code, dataset, parameters: dict, checkpoint=None):
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    builder = CalculationFactory("mlepi.train_phonon").get_builder()
    builder.code = code
    builder.dataset = dataset
    builder.training_parameters = orm.Dict(parameters)
    builder.metadata.options.environment_variables = {"OMP_NUM_THREADS": "1"}
    if checkpoint is not None:
        builder.checkpoint = checkpoint
    return run_get_node(builder)


_TRAINED: dict = {}


@pytest.fixture
def trained(python_code, dataset):
    """The 3-epoch training CalcJob, run once per module (the localhost fixtures are function-scoped)."""
    if dataset.uuid not in _TRAINED:
        _TRAINED[dataset.uuid] = run_training(python_code, dataset, training_parameters(epochs=3))
    return _TRAINED[dataset.uuid]


def test_labelled_dataset(dataset, relaxed_ab_bilayer):
    from aiida_mlepi.core.engine import ReferenceEngine

    assert dataset.num_configurations == 10 and dataset.base.attributes.get("source") == "reference-engine"
    data = dataset.get_configuration_set()
    assert set(data.num_atoms) == {16}
    # the stored labels are the engine's own numbers
    result = ReferenceEngine().compute(data.structures[3], kpts=(6, 6, 1))
    assert data.energies[3] == pytest.approx(result.energy, abs=1e-10)
    np.testing.assert_allclose(data.forces[3], result.forces, atol=1e-10)
    assert dataset.creator.inputs.structure.uuid == relaxed_ab_bilayer.uuid


def test_training_calcjob_outputs(trained, dataset):
    from aiida import orm

    from aiida_mlepi.core.ml import HedgeNetPhonon
    from aiida_mlepi.data.model import TrainedModelData

    results, node = trained
    assert node.is_finished_ok, node.exit_message
    metrics = results["metrics"].get_dict()
    assert metrics["epochs_run"] == 3 and [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    losses = [h["train_loss"] for h in metrics["history"]]
    assert all(math.isfinite(x) for x in losses) and min(losses[1:]) < losses[0]
    assert metrics["hyperparameters"]["lr"] == 0.01 and metrics["seed"] == 7
    assert 1 <= metrics["best_epoch"] <= 3 and metrics["split_sizes"] == {"train": 6, "validation": 2, "test": 2}
    model = results["model"]
    assert model.model_kind == "hedgenet-phonon" and model.base.attributes.get("relations") == ["intra", "inter"]
    assert model.base.attributes.get("cutoffs_angstrom") == {"intra": 3.0, "inter": 4.5}
    assert model.base.attributes.get("test_forces_mae_mev_per_angstrom") == pytest.approx(
        metrics["test"]["forces_mae_mev_per_angstrom"])
    network = model.load_model()
    assert isinstance(network, HedgeNetPhonon)
    assert network.num_parameters() == model.base.attributes.get("num_parameters") > 0
    # E0 fitted on the training configurations: mean energy per atom of the 16-atom cells
    split = metrics["split"]
    energies = dataset.get_configuration_set().energies
    assert network.config.atomic_energies[0] == pytest.approx(np.mean(energies[split["train"]]) / 16, rel=1e-9)
    # readout scale = RMS of the training forces; the fitted shift keeps the energy error at the
    # level of the per-atom energy spread (before: hundreds of meV/atom from the random readout)
    train_forces = np.concatenate([dataset.get_configuration_set().forces[i] for i in split["train"]])
    assert network.config.energy_scale == pytest.approx(np.sqrt(np.mean(train_forces ** 2)), rel=1e-6)
    e_atom = energies / 16
    spread = 1e3 * np.abs(e_atom[split["test"]] - e_atom[split["train"]].mean()).mean()
    assert metrics["test"]["energy_mae_mev_per_atom"] < 3 * spread + 1.0
    # queryable, and linked to its training set through the CalcJob
    qb = orm.QueryBuilder().append(type(dataset), filters={"uuid": dataset.uuid}, tag="d")
    qb.append(orm.CalcJobNode, with_incoming="d", tag="c")
    qb.append(TrainedModelData, with_incoming="c", filters={"attributes.model_kind": "hedgenet-phonon"},
              project="uuid")
    assert model.uuid in qb.all(flat=True)


def test_resume_from_checkpoint_continues_epochs(trained, python_code, dataset):
    first, _ = trained
    results, node = run_training(python_code, dataset, training_parameters(epochs=5),
                                 checkpoint=first["checkpoint"])
    assert node.is_finished_ok, node.exit_message
    history = results["metrics"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history[:3] == first["metrics"]["history"]  # the earlier epochs are carried over unchanged
    assert results["metrics"]["epochs_run"] == 5


def test_phonons_with_trained_model(trained, relaxed_ab_bilayer):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.core.units import THZ_TO_CM1
    from aiida_mlepi.workchains.phonons import PhononWorkChain

    model = trained[0]["model"]
    results, node = run_get_node(PhononWorkChain, structure=relaxed_ab_bilayer,
                                 supercell_matrix=orm.List([2, 2, 1]), force_provider=orm.Str("hedgenet"),
                                 model=model)
    # a 3-epoch toy model may leave a few soft modes imaginary (exit 410); the modes are still output
    assert node.exit_status in (0, 410), node.exit_message
    modes = results["modes"].get_modes()
    freqs = np.sort(np.abs(modes.frequencies_thz * THZ_TO_CM1))
    assert freqs.size == 48
    assert np.all(freqs[:3] < 1e-3) and freqs[3] > 1.0  # exactly three acoustic zeros (sum rule)
    # provenance: the forces come from one calcfunction that took the model as input
    qb = orm.QueryBuilder().append(type(model), filters={"uuid": model.uuid}, tag="m")
    qb.append(orm.CalcFunctionNode, with_incoming="m", tag="f",
              filters={"attributes.function_name": "compute_model_forces"}, project="*")
    qb.append(orm.WorkChainNode, with_outgoing="f", filters={"id": node.pk})
    assert qb.count() == 1
    calc = qb.all()[0][0]
    structures = [link for link in calc.base.links.get_incoming().all() if link.link_label.startswith("displacement_")]
    forces = calc.base.links.get_outgoing().all()
    assert len(structures) == len(forces) >= 2  # one batched call for all displaced supercells


def test_hedgenet_without_model_is_exit_302(relaxed_ab_bilayer):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain
    from aiida_mlepi.workchains.phonons import PhononWorkChain

    _, node = run_get_node(PhononWorkChain, structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                           force_provider=orm.Str("hedgenet"))
    assert node.exit_status == 302 and "needs a trained model" in node.exit_message
    _, node = run_get_node(EpiLoopWorkChain, structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                           force_provider=orm.Str("hedgenet"))
    assert node.exit_status == 302 and "phonon_model" in node.exit_message


# ------------------------------------------------------------------ parser exit codes
def _parse(computer, files: dict[str, bytes]):
    from aiida import orm
    from aiida.common.links import LinkType
    from aiida.plugins import ParserFactory

    node = orm.CalcJobNode(computer=computer, process_type="aiida.calculations:mlepi.train_phonon")
    node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
    node.store()
    retrieved = orm.FolderData()
    for name, content in files.items():
        retrieved.base.repository.put_object_from_filelike(io.BytesIO(content), name)
    retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
    retrieved.store()
    results, calcfunction = ParserFactory("mlepi.training").parse_from_node(node, store_provenance=False)
    return results, calcfunction.exit_status


def test_parser_exit_codes(trained, aiida_localhost):
    _, node = trained
    retrieved = node.outputs.retrieved
    files = {name: retrieved.base.repository.get_object_content(name, mode="rb")
             for name in ("model.pt", "metrics.json", "checkpoint.pt")}
    results, status = _parse(aiida_localhost, files)
    assert status == 0 and results["model"].model_kind == "hedgenet-phonon"
    assert _parse(aiida_localhost, {})[1] == 300
    assert _parse(aiida_localhost, {k: v for k, v in files.items() if k != "model.pt"})[1] == 300
    assert _parse(aiida_localhost, {**files, "metrics.json": b"{not json"})[1] == 301
    assert _parse(aiida_localhost, {**files, "model.pt": files["model.pt"][: len(files["model.pt"]) // 2]})[1] == 302
    assert _parse(aiida_localhost, {**files, "model.pt": files["checkpoint.pt"]})[1] == 302  # not a model file
    diverged = {"status": "diverged", "epoch": 2, "message": "nan",
                "history": [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0},
                            {"epoch": 2, "train_loss": float("nan"), "val_loss": float("nan")}]}
    results, status = _parse(aiida_localhost, {"metrics.json": json.dumps(diverged).encode(),
                                               "checkpoint.pt": files["checkpoint.pt"]})
    assert status == 400 and results["metrics"]["history"][1]["train_loss"] is None and "checkpoint" in results
    error = {"status": "error", "message": "TrainingError: unknown training settings"}
    assert _parse(aiida_localhost, {"metrics.json": json.dumps(error).encode()})[1] == 303


def test_invalid_parameters_are_rejected_before_submission(aiida_profile):
    from aiida import orm
    from aiida.plugins import CalculationFactory

    cls = CalculationFactory("mlepi.train_phonon")
    message = cls.validate_training_parameters({"training": {"learning_rate": 0.1}})
    assert "unknown training settings" in message
    assert "unknown sections" in cls.validate_training_parameters({"optimizer": {}})
    assert cls.validate_training_parameters(training_parameters(2)) is None
    builder = cls.get_builder()
    with pytest.raises(ValueError, match="unknown model settings \\['channels'\\]"):
        builder.training_parameters = orm.Dict({"model": {"channels": 4}})
