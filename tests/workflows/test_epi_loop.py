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
    # a material name of its own: the queries below must find this loop's nodes only, whatever other tests
    # of the session stored for AB bilayer graphene
    structure = LayeredStructureData.from_ase(relaxed_ab_bilayer.get_ase(), material="AB-bilayer-graphene-loop-test")
    _, node = run_get_node(
        EpiLoopWorkChain,
        structure=structure,
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
    assert summary["observable"] == "band_renormalisation_summary"
    assert summary["estimator"] == "spectral:ab-bilayer" and summary["sampler"] == "mc"
    assert summary["temperatures_k"] == TEMPERATURES
    assert [row["n_samples"] for row in summary["rows"]] == [N_SAMPLES, N_SAMPLES]
    assert summary["supercell_cells"] == 9 and summary["k_window_inv_angstrom"] == [0.04, 0.12]
    for name in ("plot", "spectral_plot"):
        assert finished_loop.outputs[name].get_content(mode="rb")[:8] == b"\x89PNG\r\n\x1a\n"
    modes = finished_loop.outputs.modes
    assert modes.base.attributes.get("num_modes") == 3 * 36
    assert modes.base.attributes.get("num_imaginary") == 0


def test_static_lattice_goes_through_the_same_estimator(finished_loop):
    """The undisplaced 3×3 supercell unfolds exactly onto the unit cell's bands: its fitted v0 and γ1 equal
    those of the unit cell's own H(R) through the same estimator (1×1, computed here without AiiDA)."""
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.spectral_estimators import SpectralSettings, configuration_spectrum, estimate

    unit = finished_loop.inputs.structure.get_ase()
    settings = SpectralSettings(model="ab-bilayer")
    spectrum = configuration_spectrum(ReferenceEngine().hamiltonian(unit), unit, 4 * len(unit), settings)
    direct = estimate(spectrum, [spectrum], settings).values
    static = finished_loop.outputs.static_lattice.get_dict()
    assert static["velocity_m_per_s"] == pytest.approx(direct["velocity_m_per_s"], rel=1e-9)
    assert static["gamma1_ev"] == pytest.approx(direct["gamma1_ev"], rel=1e-9)
    assert 5e5 < static["velocity_m_per_s"] < 8e5 and 0.2 < static["gamma1_ev"] < 0.45
    assert static["folded_gap_ev"] < 1e-9  # no disorder: no gap at the folded K


def test_query_per_sample_spectrum_through_provenance(finished_loop):
    material = finished_loop.inputs.structure.material
    rows = queries.sample_unfolded_spectrum(material, 300.0, 3, sampler="mc")
    assert len(rows) == 1
    spectrum, structure = rows[0]
    assert structure.base.attributes.get("sample_index") == 3
    attrs = spectrum.base.attributes
    assert attrs.get("sample_index") == 3 and attrs.get("temperature_k") == 300.0 and attrs.get("sampler") == "mc"
    assert attrs.get("supercell_cells") == 9 and attrs.get("folded_gap_ev") > 0  # disorder opens a gap
    energies, weights = spectrum.get_array("energies"), spectrum.get_array("weights")
    assert energies.shape[:2] == (6, 5) and weights.shape == energies.shape
    # a state's weight on one primitive k is a projection: within [0, 1] (orthogonal basis)
    assert weights.min() > -1e-12 and weights.max() < 1 + 1e-12


def test_thermal_average_is_the_mean_of_the_stored_spectra(finished_loop):
    """The stored A(k, E) is the mean of the per-sample spectral functions, recomputed from their nodes."""
    from aiida_mlepi.calculations.spectral import spectrum_from_node
    from aiida_mlepi.core.spectral_estimators import (SpectralSettings, energy_grid,
                                                      per_configuration_spectral_function)

    material = finished_loop.inputs.structure.material
    table = queries.band_renormalisation_vs_temperature(material, sampler="mc", supercell_cells=9)
    assert [row[0] for row in table] == TEMPERATURES
    for temperature, v0, stderr, relative, rel_err, n, cells, sampler in table:
        key = f"T_{temperature:g}K"
        average = finished_loop.outputs.spectral_functions[key]
        inputs = finished_loop.outputs.averages[key].creator.inputs
        samples = [inputs[label] for label in sorted(inputs) if label.startswith("sample_")]
        assert n == len(samples) == N_SAMPLES and cells == 9 and sampler == "mc"
        settings = SpectralSettings(model="ab-bilayer")
        spectra = [spectrum_from_node(node) for node in samples]
        grid = energy_grid(finished_loop.outputs.static_spectrum.base.attributes.get("fermi_level_ev"), settings)
        mean = np.mean([per_configuration_spectral_function(s, grid, settings) for s in spectra], axis=0)
        np.testing.assert_allclose(average.get_array("spectral_function"), mean, rtol=1e-10, atol=1e-10)
        static = finished_loop.outputs.static_lattice["velocity_m_per_s"]
        assert relative == pytest.approx(v0 / static - 1, rel=1e-9)
        assert stderr is not None and stderr > 0  # 2 independent ± pairs
        assert queries.spectral_function_averages(material, temperature)[-1].uuid == average.uuid


def test_legacy_chord_estimator_still_available(finished_loop):
    """``estimator='chord'`` through ObservableWorkChain on two stored samples: the old per-sample vF nodes."""
    from aiida_mlepi.workchains.observable import ObservableWorkChain

    sampling = [n for n in finished_loop.called if n.process_label == "ThermalSamplingWorkChain"][0]
    samples = {label: sampling.outputs.samples[label] for label in ("sample_0000", "sample_0001")}
    settings = orm.Dict({"primitive_cell": finished_loop.inputs.structure.cell, "estimator": "chord",
                         "k_radius_inv_angstrom": 0.05, "n_directions": 6})
    _, node = run_get_node(ObservableWorkChain, structures=samples, temperature_k=orm.Float(0.0), settings=settings,
                           antithetic=orm.Bool(True))
    assert node.is_finished_ok, node.exit_message
    values = [node.outputs.per_sample[label]["fermi_velocity_m_per_s"] for label in sorted(samples)]
    assert node.outputs.average["mean_m_per_s"] == pytest.approx(np.mean(values), rel=1e-12)
    assert all(2e5 < v < 5e5 for v in values)  # the chord of the bilayer's low band at k_r = 0.05 Å⁻¹


def test_spectral_estimator_needs_the_static_spectrum(finished_loop):
    from aiida_mlepi.workchains.observable import ObservableWorkChain

    sampling = [n for n in finished_loop.called if n.process_label == "ThermalSamplingWorkChain"][0]
    _, node = run_get_node(ObservableWorkChain, structures={"sample_0000": sampling.outputs.samples.sample_0000},
                           temperature_k=orm.Float(0.0),
                           settings=orm.Dict({"primitive_cell": finished_loop.inputs.structure.cell}))
    assert node.exit_status == 302 and "static_spectrum" in node.exit_message


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
