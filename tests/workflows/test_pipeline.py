"""`MlepiWorkChain` end to end at the 'fast' protocol (reference engine): structure → datasets → both
networks trained as CalcJobs on localhost → EPI loop with them → ground-truth check → summary."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

N_CHECK, TEMPERATURES, N_SAMPLES, SUPERCELL_ATOMS = 4, [0.0, 300.0], 4, 36


@pytest.fixture(scope="module")
def python_code(aiida_profile):
    from aiida_mlepi.codes import ensure_local_python_code

    return ensure_local_python_code()


@pytest.fixture(scope="module")
def pipeline(relaxed_ab_bilayer, python_code):
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    builder = MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, protocol="fast", code=python_code)
    return run_get_node(builder)


# ------------------------------------------------------------------ plain functions
def test_mode_differences_of_shifted_and_imaginary_spectra():
    from aiida_mlepi.calculations.pipeline import mode_differences

    engine = np.array([0.0, 0.0, 0.0, 100.0, 200.0, 300.0])
    same = mode_differences(engine[::-1], engine)  # the order of the input does not matter: sorted
    assert same["mean_abs_difference_cm1"] == 0.0 and same["max_abs_difference_cm1"] == 0.0
    ml = np.array([-20.0, 0.0, 0.0, 0.0, 110.0, 310.0])  # one imaginary mode, the rest +10 cm⁻¹ or equal
    out = mode_differences(ml, engine)
    # sorted: ml = [-20, 0, 0, 0, 110, 310] vs [0, 0, 0, 100, 200, 300] → |Δ| = 20, 0, 0, 100, 90, 10
    assert out["abs_difference_cm1"] == [20.0, 0.0, 0.0, 100.0, 90.0, 10.0]
    assert out["mean_abs_difference_cm1"] == pytest.approx(220.0 / 6) and out["max_abs_difference_cm1"] == 100.0
    assert (out["num_imaginary_ml"], out["num_imaginary_engine"]) == (1, 0)
    with pytest.raises(ValueError, match="not the same supercell"):
        mode_differences(ml[:5], engine)


def test_checked_samples_are_deterministic_and_keep_pairs():
    from aiida_mlepi.workchains.pipeline import choose_checked_samples

    labels = [f"sample_{k:04d}" for k in range(8)]
    picked = choose_checked_samples(labels, 4, True, seed=5, index=0)
    assert picked == choose_checked_samples(labels[::-1], 4, True, seed=5, index=0)
    assert len(picked) == 4 and all(int(a[-4:]) % 2 == 0 and int(b[-4:]) == int(a[-4:]) + 1
                                    for a, b in zip(picked[::2], picked[1::2]))
    others = {tuple(choose_checked_samples(labels, 4, True, seed=5, index=i)) for i in range(6)}
    assert len(others) > 1  # the temperature index changes the choice
    assert len(set(choose_checked_samples(labels, 3, False, seed=0, index=0))) == 3
    with pytest.raises(ValueError):
        choose_checked_samples(labels, 10, False, seed=0, index=0)


def test_renormalisation_check_combines_the_errors():
    from aiida_mlepi.calculations.pipeline import renormalisation_check

    def average(value, static, stderr):
        return {"temperature_k": 300.0, "n_samples": 4, "headline": "velocity_m_per_s", "velocity_m_per_s": value,
                "velocity_m_per_s_stderr": None if stderr is None else stderr * static, "static_velocity_m_per_s": static,
                "velocity_m_per_s_relative": value / static - 1, "velocity_m_per_s_relative_stderr": stderr}

    row = renormalisation_check(average(0.97e6, 1.0e6, 0.03), average(0.66e6, 0.7e6, 0.04))["parameters"]
    v = row["velocity_m_per_s"]
    # ML −3 %, engine −5.714 %: difference +2.714 %, combined error √(3² + 4²) = 5 %
    assert v["relative_difference"] == pytest.approx(-0.03 + 0.04 / 0.7, rel=1e-12)
    assert v["combined_stderr"] == pytest.approx(0.05) and v["agree"] is True
    far = renormalisation_check(average(0.80e6, 1.0e6, 0.01), average(0.7e6, 0.7e6, 0.01))["parameters"]
    assert far["velocity_m_per_s"]["agree"] is False  # −20 % vs 0 % with a 1.4 % error bar
    none = renormalisation_check(average(0.8e6, 1.0e6, None), average(0.7e6, 0.7e6, 0.01))["parameters"]
    assert none["velocity_m_per_s"]["combined_stderr"] is None and none["velocity_m_per_s"]["agree"] is None


# ------------------------------------------------------------------ the pipeline
def test_pipeline_finishes_with_summary(pipeline):
    results, node = pipeline
    assert node.is_finished_ok, node.exit_message
    summary = results["summary"].get_dict()
    assert summary["observable"] == "mlepi_pipeline_summary" and summary["material"] == "AB-bilayer-graphene"
    assert summary["temperatures_k"] == TEMPERATURES and summary["num_atoms"] == SUPERCELL_ATOMS
    for row in summary["ml"]:
        assert row["n_samples"] == N_SAMPLES
        assert 0.3e6 < row["velocity_m_per_s"] < 1.2e6  # m/s: physically sane for a graphene-like band
    datasets = summary["datasets"]
    assert datasets["phonon"]["num_configurations"] == 12 and datasets["phonon"]["num_atoms"] == [16]
    assert datasets["electron"] == {"source": "shared", "num_configurations": 12, "num_atoms": [16]}
    assert summary["training"]["phonon"]["epochs_run"] == 20
    assert summary["training"]["phonon"]["split_sizes"] == {"train": 8, "validation": 2, "test": 2}
    assert math.isfinite(summary["training"]["phonon"]["test"]["forces_mae_mev_per_angstrom"])
    assert math.isfinite(summary["training"]["electron"]["test"]["h_mae_mev"])
    wall = summary["wall_time_s"]
    assert all(wall[stage] > 0 for stage in ("datasets", "training", "loop", "ground_truth"))
    assert wall["loop"] < node.mtime.timestamp() - node.ctime.timestamp()
    assert "plot" in node.outputs.loop and node.outputs.loop.plot.get_content(mode="rb")[:4] == b"\x89PNG"


def test_ground_truth_section(pipeline):
    results, node = pipeline
    truth = results["summary"]["ground_truth"]
    assert [row["temperature_k"] for row in truth["renormalisation"]] == TEMPERATURES
    for row in truth["renormalisation"]:
        assert row["n_checked"] == row["n_checked_engine"] == N_CHECK
        v = row["parameters"]["velocity_m_per_s"]
        assert 0.3e6 < v["ml"] < 1.2e6 and 0.3e6 < v["engine"] < 1.2e6
        assert 0.3e6 < v["engine_static"] < 1.2e6
        assert v["relative_difference"] == pytest.approx(v["ml_relative"] - v["engine_relative"])
        # two ± pairs checked: the difference has an error bar, and `agree` is decided by it
        assert v["combined_stderr"] is not None and v["combined_stderr"] > 0
        assert v["agree"] == (abs(v["relative_difference"]) <= v["combined_stderr"])
    phonons = truth["phonons"]
    assert phonons["num_modes"] == 3 * SUPERCELL_ATOMS
    assert math.isfinite(phonons["mean_abs_difference_cm1"]) and 0 < phonons["mean_abs_difference_cm1"] \
        <= phonons["max_abs_difference_cm1"] < 2000
    ml_modes = node.outputs.loop.modes
    engine_modes = results["ground_truth"]["phonons"].creator.inputs.engine_modes
    assert phonons["num_imaginary_ml"] == ml_modes.base.attributes.get("num_imaginary")
    assert phonons["num_imaginary_engine"] == engine_modes.base.attributes.get("num_imaginary")
    # the engine's spectrum: three acoustic zeros and the graphene optical band near 1600 cm⁻¹
    assert 1300 < phonons["max_frequency_engine_cm1"] < 2000


def test_ml_check_repeats_the_loop_on_the_same_samples(pipeline):
    """The checked samples are loop samples; their ML spectra in the check equal the loop's own ones."""
    from aiida_mlepi.workchains.observable import ObservableWorkChain

    _, node = pipeline
    loop = node.outputs.loop
    checks = [n for n in node.called if n.process_class is ObservableWorkChain and not _call_label(n).startswith("committee")]
    assert len(checks) == 2 * len(TEMPERATURES)
    loop_node = loop.summary.creator.caller  # the EpiLoopWorkChain
    loop_obs = {n.inputs.temperature_k.value: n for n in loop_node.called if n.process_class is ObservableWorkChain}
    for check in checks:
        labels = sorted(check.inputs.structures)
        assert len(labels) == N_CHECK
        source = loop_obs[check.inputs.temperature_k.value]
        assert all(check.inputs.structures[k].uuid == source.inputs.structures[k].uuid for k in labels)
        if check.inputs.hamiltonian_provider.value == "hedgenet":
            for label in labels:
                ours, theirs = check.outputs.per_sample[label], source.outputs.per_sample[label]
                for name in ours.get_arraynames():
                    np.testing.assert_allclose(ours.get_array(name), theirs.get_array(name), rtol=1e-10, atol=1e-12)


def _call_label(node) -> str:
    """The link label under which the caller called ``node`` (a sub-workflow or a calcfunction)."""
    from aiida.common.links import LinkType

    return node.base.links.get_incoming(link_type=(LinkType.CALL_WORK, LinkType.CALL_CALC)).one().link_label


def test_provenance_dataset_models_samples_observables_summary(pipeline):
    from aiida import orm

    from aiida_mlepi.data.configuration_set import ConfigurationSetData
    from aiida_mlepi.data.hamiltonian import HamiltonianData
    from aiida_mlepi.data.model import TrainedModelData
    from aiida_mlepi.workchains.observable import ObservableWorkChain
    from aiida_mlepi.workchains.phonons import PhononWorkChain

    results, node = pipeline
    phonon_model, electron_model = results["phonon_model"], results["hamiltonian_model"]
    # dataset → training CalcJob → model
    qb = orm.QueryBuilder().append(ConfigurationSetData, tag="d").append(orm.CalcJobNode, with_incoming="d", tag="c")
    qb.append(TrainedModelData, with_incoming="c", filters={"id": phonon_model.pk})
    assert qb.count() == 1
    qb = orm.QueryBuilder().append(HamiltonianData, tag="h").append(orm.CalcJobNode, with_incoming="h", tag="c",
                                                                     project="id")
    qb.append(TrainedModelData, with_incoming="c", filters={"id": electron_model.pk})
    assert len(set(qb.all(flat=True))) == 1 and qb.count() == 12  # the 12 H(R) of the shared dataset
    # the phonon model is an input of the loop's PhononWorkChain (and of nothing with reference forces)
    qb = orm.QueryBuilder().append(TrainedModelData, filters={"id": phonon_model.pk}, tag="m")
    qb.append(orm.WorkChainNode, with_incoming="m", filters={"attributes.process_label": "PhononWorkChain"})
    assert qb.count() == 1
    # H(R) predicted by the electron model: every loop sample, the static lattice, and the checked samples
    n_t = len(TEMPERATURES)
    qb = orm.QueryBuilder().append(TrainedModelData, filters={"id": electron_model.pk}, tag="m")
    qb.append(orm.CalcFunctionNode, with_incoming="m", tag="p",
              filters={"attributes.function_name": "predict_hedgenet_hamiltonian"})
    qb.append(HamiltonianData, with_incoming="p", project="attributes.num_atoms")
    predicted = qb.all(flat=True)
    assert predicted == [SUPERCELL_ATOMS] * (n_t * N_SAMPLES + 1 + n_t * N_CHECK)
    # ground truth: the engine H(R) of the checked samples and of the static lattice, each through the engine's own
    # dataset process (for the reference engine the calcfunction reference_single_point), called by the pipeline
    qb = orm.QueryBuilder().append(orm.WorkflowNode, filters={"id": node.pk}, tag="w")
    qb.append(orm.CalcFunctionNode, with_incoming="w", filters={"attributes.function_name": "reference_single_point"},
              tag="e", edge_filters={"label": {"like": "check_engine_h_%"}})
    qb.append(HamiltonianData, with_incoming="e", project="attributes.num_atoms")
    assert qb.all(flat=True) == [SUPERCELL_ATOMS] * (n_t * N_CHECK + 1)
    engine_checks = [n for n in node.called if n.process_class is ObservableWorkChain
                     and n.inputs.hamiltonian_provider.value == "engine"]
    assert len(engine_checks) == n_t and all(
        sorted(check.inputs.hamiltonians) == sorted(check.inputs.structures) for check in engine_checks)
    assert not [c for check in engine_checks for c in check.called if c.process_label == "compute_engine_hamiltonian"]
    # the engine phonons use the engine's forces (one reference_single_point per displaced supercell), no model
    engine_phonons = [n for n in node.called if n.process_class is PhononWorkChain]
    assert len(engine_phonons) == 1 and engine_phonons[0].inputs.force_provider.value == "engine"
    assert engine_phonons[0].inputs.engine.value == "reference"
    assert {c.process_label for c in engine_phonons[0].called} >= {"reference_single_point"}
    assert "model" not in engine_phonons[0].inputs
    # the summary was made from the loop's summary and the comparisons
    creator = results["summary"].creator
    assert creator.inputs.loop_summary.uuid == node.outputs.loop.summary.uuid
    assert {f"T_{t:g}K" for t in TEMPERATURES} <= set(creator.inputs)


# ------------------------------------------------------------------ user mistakes
@pytest.mark.parametrize("overrides, words", [
    ({"n_check": 3}, "n_check must be between 0 and the 4 samples per temperature and even"),
    ({"production": {"sampler": "zg"}, "n_check": 4}, "n_check must be between 0 and the 2 samples"),
    ({"production": {"sampler": "metropolis"}}, "sampler 'metropolis' is not one of"),
    ({"production": {"temperatures_k": [0, -5]}}, "temperatures must be ≥ 0 K"),
    ({"datasets": {"phonon": {"overrides": {"num_configurations": 2}}}}, "num_configurations must be ≥ 3"),
    ({"committee": {"phonon": 0}}, "committee.phonon must be an integer between 1 and 16, got 0"),
    ({"committee": {"phonons": 2}}, "committee: unknown networks ['phonons']"),
    ({"committee_threshold": {"forces": 0.1}}, "unknown committee_threshold keys ['forces']"),
    ({"active_learning": True, "committee": {"phonon": 1, "electron": 1}}, "active learning needs a committee"),
])
def test_bad_input_is_exit_302_before_any_stage(relaxed_ab_bilayer, python_code, overrides, words):
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    builder = MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, protocol="fast", code=python_code,
                                                       overrides=overrides)
    _, node = run_get_node(builder)
    assert node.exit_status == 302 and words in node.exit_message, node.exit_message
    assert not node.called


def test_missing_code_and_other_engine_are_named(relaxed_ab_bilayer):
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    _, node = run_get_node(MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, protocol="fast"))
    assert node.exit_status == 302 and "needs `code`" in node.exit_message
    _, node = run_get_node(MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, engine="nonsense",
                                                                    protocol="fast"))
    assert node.exit_status == 302 and "unknown engine 'nonsense'; registered: " in node.exit_message
    with pytest.raises(ValueError, match="unknown protocol 'quick'"):
        MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, protocol="quick")


def test_cli_table_of_the_summary(pipeline):
    from aiida_mlepi.cli.tables import pipeline_table

    results, _ = pipeline
    summary = results["summary"].get_dict()
    text = pipeline_table(summary)
    assert "ground-truth check" in text and f"phonons of the production supercell ({3 * SUPERCELL_ATOMS} modes" in text
    truth = summary["ground_truth"]["renormalisation"]
    for row in truth:  # one line per temperature with the checked count and the two v0 (10^6 m/s)
        v = row["parameters"]["velocity_m_per_s"]
        line = rf"^\s+{row['temperature_k']:.1f}\s+{N_CHECK}\s+{v['ml'] / 1e6:.5f} ± \S+\s+{v['engine'] / 1e6:.5f} ± "
        assert re.search(line, text, re.M), line


def test_results_command_shows_the_stored_pipeline(pipeline):
    """``aiida-mlepi results`` finds the pipeline's summary with the QueryBuilder and prints its table.

    Run as its own process on this session's profile: the command configures logging and loads profiles as a
    command line does, which must not happen inside the test session."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config

    from aiida_mlepi.cli.tables import pipeline_table

    results, _ = pipeline
    summary = results["summary"]
    env = {**os.environ, "AIIDA_PATH": str(Path(get_config().dirpath).parent)}
    shown = subprocess.run([sys.executable, "-m", "aiida_mlepi.cli", "-p", get_manager().get_profile().name,
                            "results", "--material", summary["material"], "--last", "5"],
                           capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"--- pipeline summary node {summary.pk} " in shown.stdout
    assert pipeline_table(summary.get_dict()) in shown.stdout


# ------------------------------------------------------------------ committee uncertainty
COMMITTEE = 2


def test_committee_spread_in_the_summary(pipeline):
    """Two members per network with different seeds: per-sample spreads > 0, the observable's committee std
    from the members' own averages, member 0 = the loop's number."""
    results, node = pipeline
    summary = results["summary"].get_dict()
    assert summary["committee_size"] == {"phonon": COMMITTEE, "electron": COMMITTEE}
    for which in ("phonon", "electron"):
        members = summary["training"][which]["committee"]
        assert len(members) == COMMITTEE and len({m["model_pk"] for m in members}) == COMMITTEE
    assert [m["seed"] for m in summary["training"]["phonon"]["committee"]] == [7, 8]  # fast: seed 7, + k
    spread = summary["uncertainty"]
    assert (spread["num_phonon_members"], spread["num_electron_members"]) == (COMMITTEE, COMMITTEE)
    threshold = spread["threshold"]
    for row, loop_row in zip(spread["rows"], summary["ml"]):
        v = row["parameters"]["velocity_m_per_s"]
        assert v["value"] == loop_row["velocity_m_per_s"] == v["member_values"][0]
        assert v["sampling_stderr"] == loop_row["velocity_m_per_s_stderr"]
        # two members: the std is |v_0 − v_1| / √2
        assert v["committee_std"] == pytest.approx(abs(v["member_values"][0] - v["member_values"][1]) / math.sqrt(2))
        assert 0 < v["committee_std"] < 0.5e6 and 0.3e6 < v["member_values"][1] < 1.2e6
        assert row["max_forces_std_ev_per_angstrom"] > 0 and row["max_hamiltonian_std_mev"] > 0
    per_t = results["committee"]
    for t in TEMPERATURES:
        values = per_t[f"T_{t:g}K"].get_dict()
        assert len(values["samples"]) == N_SAMPLES
        for label, sample in values["samples"].items():
            assert 0 < sample["forces_std_ev_per_angstrom"] < 10 and 0 < sample["hamiltonian_std_mev"] < 1e4
            above = (sample["forces_std_ev_per_angstrom"] > threshold["forces_ev_per_angstrom"]
                     or sample["hamiltonian_std_mev"] > threshold["hamiltonian_mev"])
            assert (label in values["flagged"]) == above
        assert spread["flagged"][f"{t:g}"] == values["flagged"]
    assert node.outputs.committee_plot.get_content(mode="rb")[:4] == b"\x89PNG"
    assert node.outputs.committee_plot.creator.inputs.summary.uuid == per_t["summary"].uuid


def test_committee_provenance(pipeline):
    """model → H → unfolded spectrum → average → committee spread → committee summary → pipeline summary, and
    model → forces → committee spread, for the second member of each committee."""
    from aiida import orm

    from aiida_mlepi.data.hamiltonian import HamiltonianData
    from aiida_mlepi.data.model import TrainedModelData

    results, node = pipeline
    summary = results["summary"].get_dict()
    second_h = summary["training"]["electron"]["committee"][1]["model_pk"]
    second_f = summary["training"]["phonon"]["committee"][1]["model_pk"]

    def function(name):
        return {"attributes.function_name": name}

    qb = orm.QueryBuilder().append(TrainedModelData, filters={"id": second_h}, tag="m")
    qb.append(orm.CalcFunctionNode, with_incoming="m", filters=function("predict_hedgenet_hamiltonian"), tag="p")
    qb.append(HamiltonianData, with_incoming="p", tag="h")
    qb.append(orm.CalcFunctionNode, with_incoming="h", filters=function("compute_unfolded_spectrum"), tag="u")
    qb.append(orm.ArrayData, with_incoming="u", tag="s")
    qb.append(orm.CalcFunctionNode, with_incoming="s", filters=function("average_unfolded_spectra"), tag="a")
    qb.append(orm.Dict, with_incoming="a", tag="e")
    qb.append(orm.CalcFunctionNode, with_incoming="e", filters=function("committee_spread"), tag="c")
    qb.append(orm.Dict, with_incoming="c", tag="spread", project="id")
    qb.append(orm.CalcFunctionNode, with_incoming="spread", filters=function("summarize_committee"), tag="k")
    qb.append(orm.Dict, with_incoming="k", tag="committee")
    qb.append(orm.CalcFunctionNode, with_incoming="committee", filters=function("summarize_pipeline"), tag="z")
    qb.append(orm.Dict, with_incoming="z", filters={"id": results["summary"].pk})
    # per temperature one path per sample and one through the member's static lattice (an input of each average)
    assert qb.count() == len(TEMPERATURES) * (N_SAMPLES + 1)
    assert sorted(set(qb.all(flat=True))) == sorted(results["committee"][f"T_{t:g}K"].pk for t in TEMPERATURES)
    qb = orm.QueryBuilder().append(TrainedModelData, filters={"id": second_f}, tag="m")
    qb.append(orm.CalcFunctionNode, with_incoming="m", filters=function("compute_model_forces"), tag="f")
    qb.append(orm.ArrayData, with_incoming="f", tag="forces")
    qb.append(orm.CalcFunctionNode, with_incoming="forces", filters=function("committee_spread"), project="id")
    assert qb.count() == len(TEMPERATURES) * N_SAMPLES
    # the committee's observables are the loop's samples, with the second model
    committee = [n for n in node.called if isinstance(n, orm.WorkChainNode)
                 and _call_label(n).startswith("committee_observable")]
    assert sorted(_call_label(n) for n in committee) == sorted(f"committee_observable_m1_T_{t:g}K" for t in TEMPERATURES)
    assert all(n.inputs.hamiltonian_model.pk == second_h for n in committee)


def test_cli_uncertainty_table(pipeline):
    from aiida_mlepi.cli.tables import pipeline_table

    results, _ = pipeline
    summary = results["summary"].get_dict()
    text = pipeline_table(summary)
    assert f"committee of {COMMITTEE} HedgeNet-Phonon and {COMMITTEE} HedgeNet-Electron members" in text
    for row in summary["uncertainty"]["rows"]:
        v = row["parameters"]["velocity_m_per_s"]
        line = (rf"^\s+{row['temperature_k']:.1f}\s+{N_SAMPLES}\s+{v['value'] / 1e6:.5f} ± "
                rf"{v['sampling_stderr'] / 1e6:.5f} ± {v['committee_std'] / 1e6:.5f}\s")
        assert re.search(line, text, re.M), line
    assert "samples above the threshold" in text


@pytest.mark.slow
def test_active_learning_round(relaxed_ab_bilayer, python_code):
    """One round at tiny size (1 temperature × 2 samples, thresholds 0: every sample is flagged): the engine
    labels both, both training sets grow by 2, four members are retrained, the loop reruns on the new models;
    the summary has round 0 and round 1. (The calcfunctions: tests/workflows/test_committee.py.)"""
    from aiida.engine import run_get_node

    from aiida_mlepi.data.configuration_set import ConfigurationSetData
    from aiida_mlepi.workchains.pipeline import MlepiWorkChain

    overrides = {"production": {"temperatures_k": [300.0], "n_samples": 2}, "n_check": 0, "active_learning": True,
                 "committee_threshold": {"forces_ev_per_angstrom": 0.0, "hamiltonian_mev": 0.0}}
    builder = MlepiWorkChain.get_builder_from_protocol(relaxed_ab_bilayer, protocol="fast", code=python_code,
                                                       overrides=overrides)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    learning = results["summary"]["active_learning"]
    assert learning["performed"] and learning["labelled_samples"] == ["T_300K_sample_0000", "T_300K_sample_0001"]
    assert learning["datasets"]["phonon"]["num_configurations"] == 14
    assert learning["datasets"]["phonon"]["num_atoms"] == [16, SUPERCELL_ATOMS]
    assert learning["datasets"]["electron"]["num_configurations"] == 14
    before, after = learning["rounds"]
    assert before[0]["num_flagged"] == 2 and before[0]["value"] != after[0]["value"]
    assert after[0]["value"] == results["summary"]["ml"][0]["velocity_m_per_s"]
    # round-1 models were trained on the extended set; the loop's models are round-1 member 0
    job = results["hamiltonian_model"].creator
    assert len(job.inputs.hamiltonians) == 14
    dataset = results["phonon_model"].creator.inputs.dataset
    assert isinstance(dataset, ConfigurationSetData) and dataset.num_configurations == 14
    assert dataset.creator.process_label == "extend_configuration_set"
