"""DatasetWorkChain (mlepi.dataset): perturbed supercells labelled by the reference engine and by GPAW."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def ab_unit_cell(aiida_profile):
    from aiida_mlepi.core.structures import graphene_bilayer
    from aiida_mlepi.data.layered_structure import LayeredStructureData

    return LayeredStructureData.from_ase(graphene_bilayer("AB"), material="AB-bilayer-graphene")


def _reference_builder(structure, **overrides):
    from aiida_mlepi.workchains.dataset import DatasetWorkChain

    return DatasetWorkChain.get_builder_from_protocol(structure, engine="reference", protocol="fast",
                                                      overrides=overrides)


def test_protocol_builder(ab_unit_cell):
    builder = _reference_builder(ab_unit_cell, num_configurations=3, perturbations={"supercell": [3, 3]})
    assert builder.num_configurations.value == 3
    assert builder.perturbations.get_dict()["supercell"] == [3, 3]
    assert builder.perturbations.get_dict()["displacement_std_angstrom"] == 0.05
    assert builder.kpoints_mesh.get_list() == [2, 2, 1]  # fast: 6×6 unit-cell mesh / 3×3 supercell


def test_reference_dataset_matches_direct_engine(ab_unit_cell):
    from aiida.engine import run_get_node

    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    builder = _reference_builder(ab_unit_cell, num_configurations=3, hamiltonian=True, seed=7, max_concurrent=2)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert dataset.num_configurations == 3
    assert dataset.base.attributes.get("failed_members") == []
    assert dataset.base.attributes.get("source") == "reference"
    assert sorted(results["hamiltonians"]) == ["m0000", "m0001", "m0002"]
    assert all(isinstance(h, HamiltonianData) for h in results["hamiltonians"].values())
    assert results["failures"].get_dict() == {}

    # the same numbers as the engine called directly on the same configurations (seed 7)
    settings = PerturbationSettings.from_dict(builder.perturbations.get_dict())
    expected = perturbed_configurations(ab_unit_cell.get_ase(), 3, settings, seed=7)
    configurations = dataset.get_configuration_set()
    engine = ReferenceEngine()
    for atoms, got_atoms, energy, forces in zip(expected, configurations.structures, configurations.energies,
                                                configurations.forces):
        np.testing.assert_allclose(got_atoms.positions, atoms.positions, atol=1e-10)
        direct = engine.compute(atoms, kpts=tuple(builder.kpoints_mesh.get_list()))
        assert energy == pytest.approx(direct.energy, abs=1e-8)
        np.testing.assert_allclose(forces, direct.forces, atol=1e-8)
    assert len(configurations.structures[0]) == 16  # 2×2 supercell of a 4-atom bilayer
    assert np.abs(configurations.forces[0]).max() > 0.1  # perturbed: real forces, eV/Å


def test_failed_members_are_recorded_not_lost(ab_unit_cell):
    from aiida import orm
    from aiida.engine import run_get_node

    # reference-engine |F|max of these four configurations (seed 0): 5.8, 12.2, 11.4, 7.9 eV/Å
    builder = _reference_builder(ab_unit_cell, num_configurations=4, max_force_ev_per_angstrom=10.0,
                                 max_failure_fraction=1.0)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    failures = results["failures"].get_dict()
    dataset = results["dataset"]
    assert sorted(failures) == ["m0001", "m0002"]
    assert dataset.num_configurations + len(failures) == 4
    assert dataset.base.attributes.get("failed_members") == sorted(failures)
    assert all("max_force_ev_per_angstrom" in reason for reason in failures.values())
    assert len(results["structures"]) == 4  # every configuration is kept as a node
    reports = [log.message for log in orm.Log.collection.get_logs_for(node) if "failed and is excluded" in log.message]
    assert len(reports) == len(failures)

    # too many failures → exit code 410
    builder = _reference_builder(ab_unit_cell, num_configurations=4, max_force_ev_per_angstrom=10.0,
                                 max_failure_fraction=0.0)
    _, node = run_get_node(builder)
    assert node.exit_status == 410


def test_invalid_engine_and_inputs(ab_unit_cell):
    from aiida.engine import run_get_node

    builder = _reference_builder(ab_unit_cell)
    builder.engine = __import__("aiida").orm.Str("no-such-engine")
    _, node = run_get_node(builder)
    assert node.exit_status == 300
    builder = _reference_builder(ab_unit_cell, engines={"reference": {"parameters": {"not_a_parameter": 1.0}}})
    _, node = run_get_node(builder)
    assert node.exit_status == 301


def test_rerun_with_caching_reuses_members(ab_unit_cell):
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import enable_caching

    builder = _reference_builder(ab_unit_cell, num_configurations=2, seed=11)
    _, first = run_get_node(builder)
    assert first.is_finished_ok
    with enable_caching():
        builder = _reference_builder(ab_unit_cell, num_configurations=2, seed=11)
        _, second = run_get_node(builder)
    assert second.is_finished_ok
    members = [c for c in second.called if c.base.links.get_incoming().all() and
               c.process_label == "reference_single_point"]
    assert len(members) == 2
    first_members = {c.pk for c in first.called if c.process_label == "reference_single_point"}
    for member in members:
        source = member.base.caching.get_cache_source()
        assert source is not None, "member was recomputed, not cloned from the cache"
        assert orm.load_node(source).pk in first_members
    np.testing.assert_allclose(second.outputs.dataset.get_array("energies"),
                               first.outputs.dataset.get_array("energies"))


# ------------------------------------------------------------------ the free engine (GPAW LCAO), end to end
#: CI-cheap but real GPAW settings: dzp, PBE, coarse grid, loose density criterion, 2×2 k on the 2×2 supercell
GPAW_CI_PARAMETERS = {"grid_spacing_angstrom": 0.3, "density_convergence": 1e-3}
#: the smallest HedgeNet-Phonon that trains (as in tests/workflows/test_train_phonon.py)
TINY_PHONON_MODEL = {"num_channels": 8, "radial_mlp": [16, 16], "max_ell": 1, "max_L": 0, "correlation": 2,
                     "num_interactions": 1, "r_max_intra": 3.0, "r_max_inter": 4.5}


@pytest.fixture(scope="module")
def python_code(aiida_profile, tmp_path_factory):
    """This interpreter (GPAW, torch and aiida-mlepi installed) as a code on a local computer, once per module."""
    import sys

    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer("localhost-mlepi-dataset")
    except NotExistent:
        computer = orm.Computer(label="localhost-mlepi-dataset", hostname="localhost", transport_type="core.local",
                                scheduler_type="core.direct",
                                workdir=str(tmp_path_factory.mktemp("dataset-workdir"))).store()
        computer.set_minimum_job_poll_interval(0)
        computer.set_default_mpiprocs_per_machine(1)
        computer.configure(safe_interval=0.0)
    return orm.InstalledCode(computer=computer, filepath_executable=sys.executable, label="python-mlepi").store()


@pytest.fixture(scope="module")
def gpaw_dataset(aiida_profile, python_code):
    """DatasetWorkChain on GPAW: 3 perturbed 2×2 AB supercells (16 atoms), 2 CalcJobs at once; run once per module."""
    from aiida.engine import run_get_node

    from aiida_mlepi.core.structures import graphene_bilayer
    from aiida_mlepi.data.layered_structure import LayeredStructureData
    from aiida_mlepi.workchains.dataset import DatasetWorkChain
    from tests.core.test_gpaw_engine import require_gpaw

    require_gpaw()
    unit_cell = LayeredStructureData.from_ase(graphene_bilayer("AB"), material="AB-bilayer-graphene")
    builder = DatasetWorkChain.get_builder_from_protocol(
        unit_cell, engine="gpaw", protocol="fast", engine_inputs={"code": python_code},
        overrides={"num_configurations": 3, "max_concurrent": 2, "kpoints_mesh": [2, 2, 1],
                   "engines": {"gpaw": {"parameters": GPAW_CI_PARAMETERS}}})
    return run_get_node(builder)


def test_gpaw_dataset_2x2_bilayer(gpaw_dataset):
    """End to end on the free DFT engine: 3 GPAW LCAO CalcJobs in two batches, their labels collected."""
    from aiida_mlepi.core.engine import ReferenceEngine

    results, node = gpaw_dataset
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert dataset.num_configurations == 3 and dataset.base.attributes.get("source") == "gpaw"
    assert dataset.base.attributes.get("failed_members") == [] and results["failures"].get_dict() == {}
    configurations = dataset.get_configuration_set()
    assert all(len(atoms) == 16 for atoms in configurations.structures)
    # measured (GPAW 25.7.0, these settings): −131.835, −130.371, −130.808 eV
    np.testing.assert_allclose(configurations.energies, [-131.835, -130.371, -130.808], atol=0.02)
    # |F|max measured 5.96, 11.54, 11.06 eV/Å; the reference engine gives 6.13, 12.45, 11.50 on the same cells
    reference = [ReferenceEngine().compute(atoms, kpts=(2, 2, 1)).forces for atoms in configurations.structures]
    for forces, ref, expected in zip(configurations.forces, reference, [5.96, 11.54, 11.06]):
        assert np.abs(forces).max() == pytest.approx(expected, abs=0.05)
        # two different physical models, the same perturbation: the forces point the same way
        assert np.corrcoef(forces.ravel(), ref.ravel())[0, 1] > 0.9
    calcs = [c for c in node.called if c.process_label == "GpawLcaoCalculation"]
    assert len(calcs) == 3 and all(c.is_finished_ok for c in calcs)
    assert calcs[0].outputs.output_parameters["gpaw_version"] == "25.7.0"
    # two batches: the third CalcJob was created after the first two had finished (max_concurrent = 2)
    calcs.sort(key=lambda c: c.ctime)
    assert calcs[2].ctime > max(c.mtime for c in calcs[:2])


def test_gpaw_dataset_trains_phonon_network(gpaw_dataset, python_code):
    """The GPAW dataset node is the training set of mlepi.train_phonon: a 2-epoch training, model ← dataset."""
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    from aiida_mlepi.data.model import TrainedModelData

    results, node = gpaw_dataset
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    builder = CalculationFactory("mlepi.train_phonon").get_builder()
    builder.code = python_code
    builder.dataset = dataset
    builder.training_parameters = orm.Dict({
        "model": TINY_PHONON_MODEL,
        "training": {"epochs": 2, "batch_size": 1, "lr": 0.01, "ema_decay": 0.5, "seed": 7},
        "split": {"fractions": [0.34, 0.33, 0.33], "seed": 0}})  # 1 / 1 / 1 of the 3 configurations
    builder.metadata.options.environment_variables = {"OMP_NUM_THREADS": "1"}
    outputs, training = run_get_node(builder)
    assert training.is_finished_ok, training.exit_message
    metrics = outputs["metrics"].get_dict()
    assert metrics["epochs_run"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in metrics["history"])
    assert metrics["split_sizes"] == {"train": 1, "validation": 1, "test": 1}
    model = outputs["model"]
    assert isinstance(model, TrainedModelData) and model.model_kind == "hedgenet-phonon"
    # E0 is fitted on the GPAW energies: the training configuration's energy per atom (16 atoms)
    energies = dataset.get_configuration_set().energies
    network = model.load_model()
    assert network.config.atomic_energies[0] == pytest.approx(energies[metrics["split"]["train"][0]] / 16, rel=1e-9)
    # provenance: GPAW CalcJobs → dataset → training CalcJob → model
    assert training.inputs.dataset.uuid == dataset.uuid and model.creator.uuid == training.uuid
    qb = orm.QueryBuilder().append(TrainedModelData, filters={"uuid": model.uuid}, tag="model")
    qb.append(orm.CalcJobNode, with_descendants="model", project="attributes.process_label")
    labels = sorted(qb.all(flat=True))
    assert labels.count("GpawLcaoCalculation") == 3 and labels.count("HedgeNetPhononTrainingCalculation") == 1
    qb = orm.QueryBuilder().append(TrainedModelData, filters={"uuid": model.uuid}, tag="model")
    qb.append(type(dataset), with_descendants="model", project="uuid")
    assert dataset.uuid in qb.all(flat=True)


# ------------------------------------------------------------------ GPAW parser exit codes, on real GPAW files
def _parse_gpaw(computer, files: dict[str, bytes]):
    """Run the mlepi.gpaw parser on ``files`` as the retrieved folder of a (stored, empty) GPAW CalcJob node."""
    import io

    from aiida import orm
    from aiida.common.links import LinkType
    from aiida.plugins import ParserFactory

    node = orm.CalcJobNode(computer=computer, process_type="aiida.calculations:mlepi.gpaw")
    node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
    node.store()
    retrieved = orm.FolderData()
    for name, content in files.items():
        retrieved.base.repository.put_object_from_filelike(io.BytesIO(content), name)
    retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
    retrieved.store()
    results, calcfunction = ParserFactory("mlepi.gpaw").parse_from_node(node, store_provenance=False)
    return results, calcfunction.exit_status, calcfunction.exit_message


def test_gpaw_parser_exit_codes_on_real_runs(gpaw_dataset, python_code, tmp_path):
    """0, 300, 301 on the files of a dataset CalcJob (intact, damaged); 310 from a real CalcJob whose SCF is
    capped; 311, 312 from the job's runner (``run_files``, what the CalcJob executes) run here for real."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.calculations.gpaw import GpawLcaoCalculation
    from aiida_mlepi.core.engine.gpaw_lcao import (ERROR_FILENAME, LOG_FILENAME, OUTPUT_FILENAME, GpawLcaoSettings,
                                                   run_files, write_input)
    from aiida_mlepi.core.structures import graphene_bilayer
    from aiida_mlepi.data.layered_structure import LayeredStructureData

    computer = python_code.computer
    results, node = gpaw_dataset
    calc = next(c for c in node.called if c.process_label == "GpawLcaoCalculation")
    retrieved = calc.outputs.retrieved
    files = {name: retrieved.base.repository.get_object_content(name, mode="rb")
             for name in retrieved.base.repository.list_object_names()}
    assert OUTPUT_FILENAME in files and ERROR_FILENAME not in files

    # 0: the intact files give the stored numbers again
    outputs, status, _ = _parse_gpaw(computer, files)
    assert status == 0
    assert float(outputs["forces"].get_array("energy")[0]) == calc.outputs.forces.get_array("energy")[0]
    np.testing.assert_array_equal(outputs["forces"].get_array("forces"), calc.outputs.forces.get_array("forces"))
    # 301: the .npz cut in half (a job killed while writing it)
    damaged = {**files, OUTPUT_FILENAME: files[OUTPUT_FILENAME][:len(files[OUTPUT_FILENAME]) // 2]}
    _, status, message = _parse_gpaw(computer, damaged)
    assert status == 301 and "truncated" in message
    # 300: killed during the SCF: only the beginning of GPAW's log and the (empty) stdout came back
    partial = {LOG_FILENAME: files[LOG_FILENAME][:len(files[LOG_FILENAME]) // 3], "aiida.out": b""}
    assert _parse_gpaw(computer, partial)[1] == 300

    unit_cell = graphene_bilayer("AB")
    # 310: a real CalcJob with the SCF capped at 2 iterations (GPAW raises KohnShamConvergenceError)
    _, failed = run_get_node(GpawLcaoCalculation, code=python_code,
                             structure=LayeredStructureData.from_ase(unit_cell, material="AB-bilayer-graphene"),
                             parameters=orm.Dict({"grid_spacing_angstrom": 0.3, "max_scf_iterations": 2}),
                             kpoints_mesh=orm.List([1, 1, 1]),
                             metadata={"options": {"environment_variables": {"OMP_NUM_THREADS": "1"}}})
    assert failed.exit_status == 310 and "Did not converge" in failed.exit_message
    assert "forces" not in failed.outputs

    def runner_files(settings: GpawLcaoSettings, kpts, hamiltonian: bool) -> dict[str, bytes]:
        work = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        work.mkdir()
        write_input(work / "aiida_input.json", unit_cell, kpts, settings, hamiltonian)
        assert run_files(work / "aiida_input.json", work / OUTPUT_FILENAME, work / ERROR_FILENAME,
                         work / LOG_FILENAME) == 1
        return {p.name: p.read_bytes() for p in work.iterdir() if p.name != "aiida_input.json"}

    # 311: H(R) asked for on a Γ-only mesh: the SCF converges, then the exact H(R) is refused
    _, status, message = _parse_gpaw(computer, runner_files(GpawLcaoSettings(**GPAW_CI_PARAMETERS), (1, 1, 1), True))
    assert status == 311 and "too coarse for an exact H(R)" in message
    # 312: any other GPAW error, here a basis set that does not exist
    _, status, message = _parse_gpaw(computer, runner_files(GpawLcaoSettings(basis="nosuchbasis"), (1, 1, 1), False))
    assert status == 312 and "FileNotFoundError" in message and "C.nosuchbasis.basis" in message
