"""The EPI loop as WorkChains on a small (3×3) AB bilayer: provenance, queries, numbers, exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlepi import queries
from aiida_mlepi.core.structures import graphene_monolayer
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

TEMPERATURES = [0.0, 300.0]
N_SAMPLES = 4


@pytest.fixture(scope="module")
def finished_loop(relaxed_ab_bilayer):
    _, node = run_get_node(
        EpiLoopWorkChain,
        structure=relaxed_ab_bilayer,
        supercell_matrix=orm.List([3, 3, 1]),
        temperatures_k=orm.List(TEMPERATURES),
        n_samples=orm.Int(N_SAMPLES),
        seed=orm.Int(7),
        antithetic=orm.Bool(True),
    )
    return node


def test_loop_finishes_with_all_outputs(finished_loop):
    assert finished_loop.is_finished_ok, finished_loop.exit_message
    assert set(finished_loop.outputs.averages) == {"T_0K", "T_300K"}
    summary = finished_loop.outputs.summary.get_dict()
    assert summary["temperatures_k"] == TEMPERATURES
    assert summary["n_samples"] == [N_SAMPLES, N_SAMPLES]
    assert finished_loop.outputs.plot.get_content(mode="rb")[:8] == b"\x89PNG\r\n\x1a\n"
    modes = finished_loop.outputs.modes
    assert modes.base.attributes.get("num_modes") == 3 * 36
    assert modes.base.attributes.get("num_imaginary") == 0


def test_every_sample_is_a_queryable_node(finished_loop):
    material = finished_loop.inputs.structure.material
    for temperature in TEMPERATURES:
        samples = queries.sampled_configurations(material, temperature)
        assert [s.base.attributes.get("sample_index") for s in samples] == list(range(N_SAMPLES))
        assert all(len(s.sites) == 36 and s.num_layers == 2 for s in samples)
        # antithetic pairs: the displacements of sample 2k and 2k+1 are opposite
        p0, p1 = (np.array(samples[i].get_ase().positions) for i in (0, 1))
        reference = finished_loop.outputs.modes.get_modes().supercell.positions
        np.testing.assert_allclose(p0 - reference, -(p1 - reference), atol=1e-10)


def test_query_per_sample_observable_through_provenance(finished_loop):
    material = finished_loop.inputs.structure.material
    rows = queries.sample_fermi_velocity(material, 300.0, 3)
    assert len(rows) == 1
    vf, structure = rows[0]
    assert structure.base.attributes.get("sample_index") == 3
    assert vf["sample_index"] == 3 and vf["temperature_k"] == 300.0
    assert 1e5 < vf["fermi_velocity_m_per_s"] < 2e6


def test_thermal_average_matches_per_sample_values(finished_loop):
    material = finished_loop.inputs.structure.material
    table = queries.fermi_velocity_vs_temperature(material)
    assert [row[0] for row in table] == TEMPERATURES
    for temperature, mean, stderr, n in table:
        key = f"T_{temperature:g}K"
        per_sample = finished_loop.outputs.averages[key].creator.inputs
        values = [per_sample[label]["fermi_velocity_m_per_s"] for label in per_sample if label.startswith("sample_")]
        assert n == len(values) == N_SAMPLES
        assert mean == pytest.approx(np.mean(values), rel=1e-12)
        # thermal disorder renormalises vF: every sampled value differs from the static lattice
        static = finished_loop.outputs.static_lattice["fermi_velocity_m_per_s"]
        assert all(abs(v - static) > 0 for v in values)
        assert stderr >= 0


def _run_expecting(exit_status: int, **inputs):
    _, node = run_get_node(EpiLoopWorkChain, **inputs)
    assert node.exit_status == exit_status, node.exit_message
    return node


def test_single_layer_fails_with_named_exit_code(aiida_profile):
    structure = LayeredStructureData.from_ase(graphene_monolayer(), material="graphene")
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_SINGLE_LAYER.status, structure=structure)
    assert "1 layer" in node.exit_message


def test_unknown_element_fails_with_named_exit_code(relaxed_ab_bilayer):
    atoms = relaxed_ab_bilayer.get_ase()
    atoms.symbols[0] = "Si"
    structure = LayeredStructureData.from_ase(atoms, material="Si-doped")
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_UNSUPPORTED_ELEMENT.status, structure=structure)
    assert "Si" in node.exit_message


def test_negative_temperature_fails_with_named_exit_code(relaxed_ab_bilayer):
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_NEGATIVE_TEMPERATURE.status,
                          structure=relaxed_ab_bilayer, temperatures_k=orm.List([300.0, -5.0]))
    assert "-5.0" in node.exit_message


def _with_kind_names(structure: LayeredStructureData, material: str, first_symbol: str | None = None):
    """The same sites with ASE tags 1, 2, 1, 2, … → AiiDA kinds named e.g. C1, C2 (both carbon)."""
    atoms = structure.get_ase()
    atoms.set_tags([1 + (n % 2) for n in range(len(atoms))])
    if first_symbol:
        atoms.symbols[0] = first_symbol
    return LayeredStructureData.from_ase(atoms, material=material)


def test_kinds_named_c1_c2_are_carbon(relaxed_ab_bilayer):
    structure = _with_kind_names(relaxed_ab_bilayer, "AB-kinds")
    assert structure.get_kind_names() == ["C1", "C2"]
    # the element check passes: validation goes on to the sample count (odd with antithetic pairs → 304)
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_INVALID_SAMPLE_COUNT.status, structure=structure,
                          n_samples=orm.Int(3))
    assert "got 3" in node.exit_message


def test_unsupported_element_named_by_symbol_not_kind_name(relaxed_ab_bilayer):
    structure = _with_kind_names(relaxed_ab_bilayer, "Mo-doped-kinds", first_symbol="Mo")
    assert "Mo1" in structure.get_kind_names()
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_UNSUPPORTED_ELEMENT.status, structure=structure)
    assert node.exit_message == "The reference engine has no parameters for the element(s) Mo."


@pytest.mark.parametrize("values, bad", [(["abc"], "'abc'"), ([300.0, "300"], "'300'"), ([0.0, True], "True")])
def test_non_numeric_temperature_is_exit_302_naming_it(relaxed_ab_bilayer, values, bad):
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_INVALID_INPUT.status, structure=relaxed_ab_bilayer,
                          temperatures_k=orm.List(values))
    assert f"temperatures_k must be finite numbers (K), got {bad}" in node.exit_message


def test_empty_temperature_list_asks_for_one(relaxed_ab_bilayer):
    node = _run_expecting(EpiLoopWorkChain.exit_codes.ERROR_INVALID_INPUT.status, structure=relaxed_ab_bilayer,
                          temperatures_k=orm.List([]))
    assert "at least one temperature" in node.exit_message
