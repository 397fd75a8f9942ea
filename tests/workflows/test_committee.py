"""Committee calcfunctions with real nodes: spreads, flags, the summary rows, the active-learning training set
and the round-0 / round-1 section. (The whole pipeline with a committee: tests/workflows/test_pipeline.py.)"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def cells():
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
    from aiida_mlepi.core.structures import graphene_bilayer

    return perturbed_configurations(graphene_bilayer("AB"), 3, PerturbationSettings(supercell=(2, 2)), seed=5)


def _forces(array):
    from aiida import orm

    node = orm.ArrayData()
    node.set_array("forces", np.asarray(array, dtype=float))
    node.set_array("energy", np.array([-1.0]))
    return node


def _average(v, relative):
    from aiida import orm

    return orm.Dict({"velocity_m_per_s": v, "velocity_m_per_s_relative": relative, "gamma1_ev": 0.38})


def test_committee_spread_identical_and_shifted_members(aiida_profile, cells):
    from aiida import orm

    from aiida_mlepi.calculations.committee import committee_spread, plot_committee, summarize_committee
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    engine = ReferenceEngine()
    h = [engine.hamiltonian(atoms) for atoms in cells[:2]]
    f = [np.random.default_rng(k).normal(size=(len(cells[0]), 3)) for k in range(2)]
    threshold = orm.Dict({"forces_ev_per_angstrom": 0.1, "hamiltonian_mev": 10.0})
    members = {}
    for k in range(2):  # identical members
        for s in range(2):
            members[f"forces_m{k}_sample_000{s}"] = _forces(f[s])
            members[f"hamiltonian_m{k}_sample_000{s}"] = HamiltonianData.from_hamiltonian(h[s])
        members[f"average_m{k}"] = _average(0.8e6, -0.01)
    same = committee_spread(orm.Float(300.0), threshold, **members).get_dict()
    assert same["flagged"] == [] and same["num_phonon_members"] == same["num_electron_members"] == 2
    for sample in same["samples"].values():
        assert sample["forces_std_ev_per_angstrom"] == 0.0 and sample["hamiltonian_std_mev"] == 0.0
    assert same["observables"]["velocity_m_per_s"]["std"] == 0.0

    # member 1: +0.3 eV/Å on every x force of sample 1, +20 meV on every H element of sample 0, another v0
    members["forces_m1_sample_0001"] = _forces(f[1] + [0.3, 0.0, 0.0])
    members["hamiltonian_m1_sample_0000"] = HamiltonianData.from_hamiltonian(
        dataclasses.replace(h[0], h_values=h[0].h_values + 0.020))
    members["average_m1"] = _average(0.7e6, -0.03)
    spread = committee_spread(orm.Float(300.0), threshold, **members)
    values = spread.get_dict()
    s0, s1 = values["samples"]["sample_0000"], values["samples"]["sample_0001"]
    assert s0["hamiltonian_std_mev"] == pytest.approx(20 / math.sqrt(2), rel=1e-9) and s0["exceeded"] == ["hamiltonian"]
    assert s1["forces_std_ev_per_angstrom"] == pytest.approx(0.3 / math.sqrt(2), rel=1e-12)
    assert s1["exceeded"] == ["forces"] and values["flagged"] == ["sample_0000", "sample_0001"]
    v = values["observables"]["velocity_m_per_s"]
    assert v["values"] == [0.8e6, 0.7e6] and v["std"] == pytest.approx(0.1e6 / math.sqrt(2))
    assert v["relative_std"] == pytest.approx(0.02 / math.sqrt(2))

    loop = orm.Dict({"headline": "velocity_m_per_s", "rows": [
        {"temperature_k": 300.0, "n_samples": 2, "velocity_m_per_s": 0.8e6, "velocity_m_per_s_stderr": 0.01e6,
         "velocity_m_per_s_relative": -0.01, "velocity_m_per_s_relative_stderr": 0.0125}]})
    summary_node = summarize_committee(loop, T_300K=spread)
    summary = summary_node.get_dict()
    row = summary["rows"][0]["parameters"]["velocity_m_per_s"]
    assert (row["value"], row["sampling_stderr"]) == (0.8e6, 0.01e6)
    assert row["committee_std"] == pytest.approx(0.1e6 / math.sqrt(2))
    assert summary["num_flagged"] == 2 and summary["flagged"] == {"300": ["sample_0000", "sample_0001"]}
    plot = plot_committee(summary_node, T_300K=spread)
    assert plot.get_content(mode="rb")[:4] == b"\x89PNG" and plot.filename == "committee_uncertainty.png"


def test_extend_configuration_set_for_active_learning(aiida_profile, cells):
    from aiida import orm

    from aiida_mlepi.calculations.committee import extend_configuration_set
    from aiida_mlepi.calculations.labelling import label_configurations
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.data.configuration_set import ConfigurationSetData
    from aiida_mlepi.data.layered_structure import LayeredStructureData

    engine = ReferenceEngine()
    base = ConfigurationSetData.from_configuration_set(label_configurations(cells[:2], engine, (2, 2, 1)),
                                                       material="AB", source="reference-engine")
    added = engine.compute(cells[2], kpts=(2, 2, 1))
    forces = _forces(added.forces)
    forces.set_array("energy", np.array([added.energy]))
    node = extend_configuration_set(base, structure_T_300K_sample_0001=LayeredStructureData.from_ase(cells[2]),
                                    forces_T_300K_sample_0001=forces)
    data = node.get_configuration_set()
    assert node.num_configurations == 3 and node.base.attributes.get("added_by_active_learning") == [
        "T_300K_sample_0001"]
    np.testing.assert_array_equal(data.forces[2], added.forces)
    assert data.energies[2] == added.energy and np.allclose(data.structures[2].positions, cells[2].positions)
    assert node.material == "AB" and node.creator.inputs.dataset.uuid == base.uuid


def test_active_learning_section_rounds():
    from aiida_mlepi.calculations.pipeline import active_learning_section

    assert active_learning_section({}, {}, None, None, None) is None
    stages = {"active_learning": {"requested": True, "performed": True, "labelled_samples": ["T_0K_sample_0001"]}}

    def loop(v):
        return {"headline": "velocity_m_per_s", "rows": [{"temperature_k": 0.0, "velocity_m_per_s": v,
                                                          "velocity_m_per_s_stderr": 1e4}]}

    def committee(std, flagged):
        return {"rows": [{"temperature_k": 0.0, "flagged": flagged, "max_forces_std_ev_per_angstrom": 0.2,
                          "max_hamiltonian_std_mev": 3.0, "parameters": {"velocity_m_per_s": {"committee_std": std}}}]}

    out = active_learning_section(stages, loop(0.65e6), committee(1e3, []), loop(0.6e6), committee(5e4, ["s"]))
    before, after = out["rounds"]
    assert (before[0]["value"], before[0]["committee_std"], before[0]["num_flagged"]) == (0.6e6, 5e4, 1)
    assert (after[0]["value"], after[0]["committee_std"], after[0]["num_flagged"]) == (0.65e6, 1e3, 0)
    assert out["labelled_samples"] == ["T_0K_sample_0001"] and out["headline"] == "velocity_m_per_s"
