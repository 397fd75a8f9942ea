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


def test_gpaw_dataset_2x2_bilayer(ab_unit_cell, aiida_code_installed):
    """End to end on the free DFT engine: 3 perturbed 2×2 supercells (16 atoms), GPAW LCAO CalcJobs."""
    import sys

    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.dataset import DatasetWorkChain
    from tests.core.test_gpaw_engine import require_gpaw

    require_gpaw()
    code = aiida_code_installed(default_calc_job_plugin="mlepi.gpaw", filepath_executable=sys.executable)
    builder = DatasetWorkChain.get_builder_from_protocol(
        ab_unit_cell, engine="gpaw", protocol="fast", engine_inputs={"code": code},
        overrides={"num_configurations": 3, "max_concurrent": 2, "kpoints_mesh": [2, 2, 1],
                   "engines": {"gpaw": {"parameters": {"grid_spacing_angstrom": 0.3,
                                                       "density_convergence": 1e-3}}}})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert dataset.num_configurations == 3 and dataset.base.attributes.get("source") == "gpaw"
    configurations = dataset.get_configuration_set()
    assert all(len(atoms) == 16 for atoms in configurations.structures)
    # the same 2×2 supercell, different perturbations: measured energies −131.84, −130.37, −130.81 eV
    assert np.ptp(configurations.energies) < 3.0 and np.all(configurations.energies < -100.0)
    assert all(0.2 < np.abs(f).max() < 10.0 for f in configurations.forces)
    calcs = [c for c in node.called if c.process_type.endswith("GpawLcaoCalculation")]
    assert len(calcs) == 3 and all(c.is_finished_ok for c in calcs)
    assert calcs[0].outputs.output_parameters["gpaw_version"] == "25.7.0"
