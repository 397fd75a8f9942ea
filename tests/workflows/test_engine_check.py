"""The engine-generic ground-truth path: H(R) and phonon forces through a dataset engine's own processes.

CI-sized with the reference engine (its dataset process is the calcfunction ``reference_single_point``): the
generic path must give exactly the numbers of the in-process reference calcfunctions it replaces. The GPAW
evidence (CalcJobs, minutes each) is ``benchmarks/pipeline_gpaw.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_engine_hamiltonian_equals_the_reference_calcfunction(relaxed_ab_bilayer):
    """H(R), S(R) of a displaced 2×2 supercell from the engine's dataset process (k mesh given) equal the
    real-space reference H(R) of compute_engine_hamiltonian (no k mesh) element by element."""
    from aiida import orm

    from aiida_mlepi.calculations.engine import compute_engine_hamiltonian
    from aiida_mlepi.data.layered_structure import LayeredStructureData
    from aiida_mlepi.engines.base import get_engine
    from aiida_mlepi.workchains.engine_jobs import engine_result

    atoms = relaxed_ab_bilayer.get_ase().repeat((2, 2, 1))
    atoms.positions += np.random.default_rng(1).normal(scale=0.03, size=atoms.positions.shape)  # Å
    structure = LayeredStructureData.from_ase(atoms, material="AB-bilayer-graphene").store()
    engine = get_engine("reference")
    process, inputs = engine.process_inputs(structure, orm.Dict({}), orm.List([3, 3, 1]), True, {})
    _, node = process.run_get_node(**inputs)
    generic, reason = engine_result(engine, node, hamiltonian=True)
    assert reason == "" and generic is not None
    direct = compute_engine_hamiltonian(structure, orm.Dict({}))
    a, b = generic.get_hamiltonian(), direct.get_hamiltonian()
    assert len(a.edges) > 16  # on-site and bond blocks of 16 atoms
    # the two paths list the pairs within different cutoffs (the extra ones carry zero blocks), so compare the
    # Bloch sums H(k) (eV) at random k: the same operator
    rec = 2 * np.pi * np.linalg.inv(a.cell).T
    for k_frac in np.random.default_rng(2).random((4, 3)) * [1, 1, 0]:
        k = k_frac @ rec
        np.testing.assert_allclose(a.hk(k).toarray(), b.hk(k).toarray(), atol=1e-12)
    assert np.abs(b.hk(np.zeros(3)).toarray()).max() > 1.0  # eV: real hoppings


def test_engine_phonons_equal_reference_phonons(relaxed_ab_bilayer):
    """PhononWorkChain with force_provider='engine' (engine='reference', one dataset process per displaced
    supercell, 2 at a time) gives the modes of force_provider='reference' to 1e-8 cm⁻¹."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.phonons import PhononWorkChain

    common = dict(structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                  kpoints_mesh=orm.List([6, 6, 1]))
    _, reference = run_get_node(PhononWorkChain, **common, force_provider=orm.Str("reference"))
    _, generic = run_get_node(PhononWorkChain, **common, force_provider=orm.Str("engine"),
                              engine=orm.Str("reference"), max_concurrent=orm.Int(2))
    assert reference.is_finished_ok and generic.is_finished_ok, generic.exit_message
    from aiida_mlepi.data.phonon_modes import THZ_TO_CM1

    ours, theirs = (node.outputs.modes.get_modes().frequencies_thz * THZ_TO_CM1 for node in (generic, reference))
    assert ours.size == 3 * 16
    np.testing.assert_allclose(ours, theirs, atol=1e-8)
    assert np.max(ours) > 1300  # the graphene optical band (cm⁻¹): the forces are real, not zeros
    labels = sorted(c.process_label for c in generic.called if c.process_label != "generate_displacements")
    n_displaced = len([c for c in reference.called if c.process_label == "compute_engine_forces"])
    assert labels.count("reference_single_point") == n_displaced >= 2


def test_engine_phonons_bad_engine_input_is_302(relaxed_ab_bilayer):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.phonons import PhononWorkChain

    _, node = run_get_node(PhononWorkChain, structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                           force_provider=orm.Str("engine"), engine=orm.Str("gpaw"))
    assert node.exit_status == 302 and "engine_inputs.code" in node.exit_message, node.exit_message
    _, node = run_get_node(PhononWorkChain, structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                           force_provider=orm.Str("engine"), engine=orm.Str("vasp"))
    assert node.exit_status == 302 and "gives no forces node" in node.exit_message, node.exit_message


def _hbn_bilayer():
    from aiida_mlepi.core.catalogue import load_catalogue
    from aiida_mlepi.data.layered_structure import LayeredStructureData

    return LayeredStructureData.from_ase(load_catalogue()["aa-prime-bilayer-hbn"].build(),
                                         material="aa-prime-bilayer-hbn")


def test_pipeline_check_engine_validation(relaxed_ab_bilayer, aiida_profile):
    """Clear 302/301 messages: an engine without H(R) cannot do the check; GPAW needs its code; GPAW's
    non-orthogonal H(R) no longer stop the pipeline (they are Löwdin-orthogonalised before training: the run
    gets past that check to a later one, the committee size); B and N are refused with the carbon-only
    reference engine but pass the element check with GPAW."""
    from aiida.engine import run_get_node

    from aiida_mlepi.codes import ensure_local_python_code
    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    code = ensure_local_python_code()
    _, node = run_get_node(MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, engine="vasp",
                                                                    protocol="fast", code=code))
    assert node.exit_status == 302 and "engine 'vasp' gives no H(R): set n_check = 0" in node.exit_message
    _, node = run_get_node(MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, engine="gpaw",
                                                                    protocol="gpaw_cpu", code=code))
    assert node.exit_status == 302 and "ground-truth check: engine_inputs.code" in node.exit_message, \
        node.exit_message
    too_big = {"committee": {"phonon": 99}}  # checked after the basis: a 302 here means the basis passed
    _, node = run_get_node(MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, engine="gpaw",
                                                                    protocol="gpaw_cpu", code=code, overrides=too_big,
                                                                    engine_inputs={"code": code}))
    assert node.exit_status == 302 and "committee.phonon must be an integer" in node.exit_message, node.exit_message
    assert not node.called  # refused before the (GPAW) datasets
    hbn = _hbn_bilayer()
    _, node = run_get_node(MlepiWorkChain.get_builder_from_protocol(hbn, protocol="fast", code=code))
    assert node.exit_status == 301 and "B, N" in node.exit_message
    builder = MlepiWorkChain.get_builder_from_protocol(hbn, engine="gpaw", protocol="gpaw_cpu", code=code,
                                                       overrides={"n_check": 0, **too_big})
    _, node = run_get_node(builder)  # B and N pass the engine's element check and the basis check
    assert node.exit_status == 302 and "committee.phonon must be an integer" in node.exit_message, node.exit_message


def test_gpaw_protocol_builder(relaxed_ab_bilayer, aiida_profile):
    """The gpaw_cpu protocol: forces from szp(dzp), h 0.20 Å, D3(BJ) on 2×2 cells (6×6 unit-cell k → 3×3); H(R) from a
    separate sz(dzp) dataset of 12 cells on a 12×12 unit-cell mesh (6×6 on 2×2; exact needs 9×9, the rest is room for the
    displacements); the electron network predicts the 6/7 Å blocks that the orthogonalisation keeps; 4×4 k on the
    3×3 production supercell; the code passed on."""
    from aiida_mlepi.codes import ensure_local_python_code
    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    code = ensure_local_python_code()
    builder = MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, engine="gpaw", protocol="gpaw_cpu",
                                                       code=code, engine_inputs={"code": code})
    parameters = builder.phonon_data.engine_parameters.get_dict()
    assert (parameters["basis"], parameters["grid_spacing_angstrom"], parameters["dispersion"]) == \
        ("szp(dzp)", 0.2, "d3bj")
    assert builder.phonon_data.kpoints_mesh.get_list() == [3, 3, 1]
    assert builder.phonon_data.engine_inputs["code"].uuid == code.uuid
    electron = builder.electron_data.engine_parameters.get_dict()
    assert electron["basis"] == "sz(dzp)" and builder.electron_data.hamiltonian.value
    assert builder.electron_data.kpoints_mesh.get_list() == [6, 6, 1]
    assert builder.electron_data.num_configurations.value == 12
    model = builder.electron_training.training_parameters["model"]
    assert (model["block_cutoff_intra"], model["block_cutoff_inter"]) == (6.0, 7.0)
    assert builder.supercell_matrix.get_list() == [3, 3, 1] and builder.n_check.value == 4
    assert builder.check.kpoints_mesh.get_list() == [4, 4, 1] and builder.check.max_concurrent.value == 2


def test_builder_gives_hedgenet_phonon_the_structure_species(relaxed_ab_bilayer, aiida_profile):
    """HedgeNet-Phonon's default species is carbon only: the builder sets atomic_numbers from the structure
    (B, N for hBN; the training rejected the hBN GPAW dataset with the default, measured)."""
    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    for structure, numbers in ((relaxed_ab_bilayer, [6]), (_hbn_bilayer(), [5, 7])):
        builder = MlepiWorkChain.get_builder_from_protocol(structure, engine="gpaw", protocol="gpaw_cpu")
        assert builder.phonon_training.training_parameters["model"]["atomic_numbers"] == numbers
    model = {"atomic_numbers": [6, 7], "atomic_energies": [0.0, 0.0]}
    builder = MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, protocol="fast", overrides={
        "phonon_training": {"training_parameters": {"model": model}}})
    assert builder.phonon_training.training_parameters["model"]["atomic_numbers"] == [6, 7]  # given: kept


def test_engine_only_loop_through_the_engine_processes_equals_the_reference_loop(relaxed_ab_bilayer):
    """EpiLoopWorkChain with force_provider = hamiltonian_provider = 'engine' (engine='reference': the dataset
    engine's own processes, the path GPAW takes with CalcJobs) gives the same static lattice and thermal averages
    as the in-process reference providers (1e-8 relative), with one engine H(R) per sample plus the static one."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

    common = dict(structure=relaxed_ab_bilayer, supercell_matrix=orm.List([1, 1, 1]),
                  temperatures_k=orm.List([0.0, 300.0]), n_samples=orm.Int(2), seed=orm.Int(3),
                  observable_settings=orm.Dict({"spectral": {"line_points": 0}}))
    _, reference = run_get_node(EpiLoopWorkChain, **common)
    _, engine = run_get_node(EpiLoopWorkChain, **common, force_provider=orm.Str("engine"),
                             hamiltonian_provider=orm.Str("engine"), engine=orm.Str("reference"))
    assert reference.is_finished_ok and engine.is_finished_ok, engine.exit_message
    labels = [link.link_label for link in engine.base.links.get_outgoing().all()
              if link.link_label.startswith("engine_h_")]
    assert sorted(labels) == sorted(["engine_h_static"] + [f"engine_h_{t}_sample_{k:04d}" for t in ("T_0K", "T_300K")
                                                          for k in range(2)])
    a, b = reference.outputs.summary.get_dict(), engine.outputs.summary.get_dict()
    for row_a, row_b in zip(a["rows"], b["rows"]):
        for key in ("velocity_m_per_s", "gamma1_ev"):
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-8), key
    assert b["static_lattice"]["velocity_m_per_s"] == pytest.approx(a["static_lattice"]["velocity_m_per_s"], rel=1e-8)
    # a bad engine is a clear 302 before anything runs
    _, node = run_get_node(EpiLoopWorkChain, **common, hamiltonian_provider=orm.Str("engine"), engine=orm.Str("nope"))
    assert node.exit_status == 302 and "unknown engine 'nope'" in node.exit_message and not node.called


def test_imaginary_rigid_layer_modes_are_tolerated_only_when_not_sampled(relaxed_ab_bilayer):
    """The AB bilayer 2×2 with a coarse 3×3 supercell k mesh has an imaginary Γ shear pair (measured −3.1 cm⁻¹);
    the loop does not sample rigid-layer modes, so its phonon stage finishes (and reports them); with the
    rigid-layer modes sampled it stops with 410, as before."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.phonons import PhononWorkChain, imaginary_rigid_layer_modes

    common = dict(structure=relaxed_ab_bilayer, supercell_matrix=orm.List([2, 2, 1]),
                  kpoints_mesh=orm.List([3, 3, 1]))
    _, strict = run_get_node(PhononWorkChain, **common)
    assert strict.exit_status == 410, strict.exit_message
    modes = strict.outputs.modes
    count = modes.base.attributes.get("num_imaginary")
    assert count == 2 and imaginary_rigid_layer_modes(modes.get_modes()) == count
    _, tolerant = run_get_node(PhononWorkChain, **common, tolerate_imaginary_rigid_layer_modes=orm.Bool(True))
    assert tolerant.is_finished_ok and tolerant.outputs.modes.base.attributes.get("num_imaginary") == 2
    assert any("all Γ rigid-layer modes" in line for line in _reports(tolerant))


def _reports(node) -> list[str]:
    from aiida.orm import Log

    return [log.message for log in Log.collection.get_logs_for(node)]
