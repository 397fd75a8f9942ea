"""Batched HedgeNet inference as CalcJobs (``mlepi.predict_hamiltonians``, ``mlepi.predict_forces``), run on
localhost by this interpreter, against the in-process calcfunctions: same H(R), same forces, same observable;
clear exit codes for an absent GPU (304) and a model file that does not load (302); no duplicate job when a
step is rerun.

Models are tiny and untrained (deterministic weights): these tests compare two paths of the same network.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from aiida import orm
from aiida.engine import ToContext, WorkChain, run_get_node

from aiida_mlepi.calculations.electron import predict_hedgenet_hamiltonian
from aiida_mlepi.calculations.inference import HedgeNetForcesCalculation, HedgeNetHamiltonianCalculation
from aiida_mlepi.calculations.model_forces import compute_model_forces
from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData
from aiida_mlepi.workchains.resume import labelled_calls, resumable_submit

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TINY_ELECTRON = {"num_layers": 1, "num_scalars": 8, "num_vectors": 2, "num_tensors": 1, "radial_hidden": 16,
                 "num_basis": 6}
ELECTRON_LOADER = "aiida_mlepi.core.ml.hedgenet_electron:load_model"
PHONON_LOADER = "aiida_mlepi.core.ml.hedgenet_phonon:load_model"
N_SAMPLES = 3


def _electron_node(dtype: str = "float32") -> TrainedModelData:
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig, save_model

    torch.manual_seed(5)
    model = HedgeNetElectron(HedgeNetElectronConfig(dtype=dtype, **TINY_ELECTRON))
    buffer = io.BytesIO()
    save_model(model, buffer)
    return TrainedModelData.from_bytes(buffer.getvalue(), model_kind="hedgenet-electron", loader=ELECTRON_LOADER,
                                       description={"atomic_numbers": [6], "dtype": dtype}).store()


@pytest.fixture(scope="module")
def electron_models(aiida_profile):
    return {dtype: _electron_node(dtype) for dtype in ("float32", "float64")}


@pytest.fixture(scope="module")
def phonon_model(aiida_profile):
    from aiida_mlepi.core.ml.hedgenet_phonon import HedgeNetPhonon, HedgeNetPhononConfig, save_model

    torch.manual_seed(6)
    buffer = io.BytesIO()
    save_model(HedgeNetPhonon(HedgeNetPhononConfig(num_channels=4)), buffer)
    return TrainedModelData.from_bytes(buffer.getvalue(), model_kind="hedgenet-phonon", loader=PHONON_LOADER,
                                       description={"atomic_numbers": [6]}).store()


@pytest.fixture(scope="module")
def samples(aiida_profile):
    """Thermal-like configurations of the 2×2 AB bilayer (0.03 Å displacements), stored with sample labels."""
    base = in_plane_supercell(graphene_bilayer("AB"), 2)
    rng = np.random.default_rng(8)
    out = {}
    for k in range(N_SAMPLES):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, 0.03, atoms.positions.shape)
        out[f"sample_{k:02d}"] = LayeredStructureData.from_ase(atoms, material="AB-inference-test", temperature_k=300.0,
                                                             sample_index=k).store()
    return out


@pytest.fixture(scope="module")
def python_code(aiida_profile):
    from aiida_mlepi.codes import ensure_local_python_code

    return ensure_local_python_code()


def _options() -> dict:
    return {"environment_variables": {"OMP_NUM_THREADS": "1"}}


def _blocks(h) -> dict:
    """(Rx, Ry, Rz, i, j) → H block (eV): the edge order is not part of the result."""
    return {tuple(int(v) for v in e): h.block(k) for k, e in enumerate(h.edges)}


@pytest.mark.parametrize("dtype, tolerance_ev", [("float32", 1e-6), ("float64", 1e-12)])
def test_hamiltonian_job_matches_calcfunction(electron_models, samples, python_code, dtype, tolerance_ev):
    model = electron_models[dtype]
    results, job = run_get_node(HedgeNetHamiltonianCalculation, code=python_code, model=model, structures=samples,
                                parameters=orm.Dict({"dtype": dtype}), metadata={"options": _options()})
    assert job.is_finished_ok, (job.exit_status, job.exit_message)
    report = results["report"].get_dict()
    assert report["device"] == "cpu" and report["dtype"] == dtype and report["timing"]["num_samples"] == N_SAMPLES
    assert sum(report["graphs"].values()) == N_SAMPLES
    assert sorted(results["hamiltonians"]) == sorted(samples)
    for label, structure in samples.items():
        node = results["hamiltonians"][label]
        reference = predict_hedgenet_hamiltonian(structure, model)
        # same attributes as the calcfunction path (labels of the structure, metadata with the model's uuid)
        ref_attrs, attrs = reference.base.attributes.all, node.base.attributes.all
        assert attrs == ref_attrs
        assert attrs["metadata"]["model_uuid"] == model.uuid and attrs["sample_index"] == structure.base.attributes.get(
            "sample_index")
        a, b = _blocks(node.get_hamiltonian()), _blocks(reference.get_hamiltonian())
        assert a.keys() == b.keys()
        worst = max(float(np.abs(a[e] - b[e]).max()) for e in a)
        assert worst <= tolerance_ev, worst
        assert max(float(np.abs(v).max()) for v in a.values()) > 0.1  # real, non-trivial blocks (eV)
        # provenance: the job took the model and this structure as inputs
        creator = node.creator
        assert creator.pk == job.pk and creator.inputs.model.uuid == model.uuid
        assert creator.inputs.structures[label].uuid == structure.uuid


def test_forces_job_matches_calcfunction(phonon_model, samples, python_code):
    results, job = run_get_node(HedgeNetForcesCalculation, code=python_code, model=phonon_model, structures=samples,
                                parameters=orm.Dict({"batch_size": 2}), metadata={"options": _options()})
    assert job.is_finished_ok, (job.exit_status, job.exit_message)
    reference = compute_model_forces(phonon_model, orm.Int(2), **samples)["forces"]
    for label in samples:
        got, ref = results["forces"][label], reference[label]
        assert got.base.attributes.all == ref.base.attributes.all  # energy_ev, units, force_provider
        np.testing.assert_allclose(got.get_array("forces"), ref.get_array("forces"), rtol=0, atol=1e-6)
        assert abs(got.get_array("forces")).max() > 1e-3  # the displaced structure feels forces
        np.testing.assert_allclose(got.get_array("energy"), ref.get_array("energy"), rtol=1e-7)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this computer has CUDA: the error path cannot be reached")
@pytest.mark.parametrize("calculation", ["hamiltonians"])  # the forces job runs the same script and parser
def test_cuda_without_cuda_is_exit_304(electron_models, phonon_model, samples, python_code, calculation):
    cls, model = ((HedgeNetHamiltonianCalculation, electron_models["float32"]) if calculation == "hamiltonians"
                  else (HedgeNetForcesCalculation, phonon_model))
    results, job = run_get_node(cls, code=python_code, model=model, structures={"s": samples["sample_00"]},
                                parameters=orm.Dict({"device": "cuda"}), metadata={"options": _options()})
    assert job.exit_status == 304, job.exit_message
    assert "CUDA is not available" in job.exit_message and "device='cpu'" in job.exit_message
    assert calculation not in results  # nothing half-made


def test_model_whose_weights_do_not_fit_is_exit_302(samples, python_code):
    """A file with a valid header (passes the input check) whose weights belong to another config."""
    from aiida_mlepi.core.io.model_file import ELECTRON_MODEL_FILE
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig

    small = HedgeNetElectronConfig(**TINY_ELECTRON)
    other = HedgeNetElectron(HedgeNetElectronConfig(**{**TINY_ELECTRON, "num_scalars": 4}))
    buffer = io.BytesIO()
    torch.save({"format": ELECTRON_MODEL_FILE.name, "version": ELECTRON_MODEL_FILE.version,
                "config": small.to_dict(), "state_dict": other.state_dict()}, buffer)
    model = TrainedModelData.from_bytes(buffer.getvalue(), model_kind="hedgenet-electron", loader=ELECTRON_LOADER,
                                        description={"atomic_numbers": [6]})
    assert model.file_problem("hedgenet-electron") is None  # the header is fine
    _, job = run_get_node(HedgeNetHamiltonianCalculation, code=python_code, model=model,
                          structures={"s": samples["sample_00"]}, metadata={"options": _options()})
    assert job.exit_status == 302 and "do not match its config" in job.exit_message, job.exit_message


def test_bad_inputs_are_refused_before_submission(electron_models, phonon_model):
    assert "unknown inference settings ['devices']" in HedgeNetHamiltonianCalculation.validate_parameters(
        {"devices": "cuda"})
    assert "device must be" in HedgeNetForcesCalculation.validate_parameters({"device": "tpu"})
    assert "dtype must be one of" in HedgeNetForcesCalculation.validate_parameters({"dtype": "float16"})
    assert HedgeNetHamiltonianCalculation.validate_parameters({"device": "cuda", "dtype": "float32",
                                                               "batch_size": 4}) is None
    assert "needs a 'hedgenet-electron' one" in HedgeNetHamiltonianCalculation._model_validator(phonon_model, None)
    assert HedgeNetForcesCalculation._model_validator(phonon_model, None) is None


class SubmitTwiceWorkChain(WorkChain):
    """Runs the same submitting step twice, as a daemon does after an interruption."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=TrainedModelData)
        spec.input("code", valid_type=orm.AbstractCode)
        spec.input_namespace("structures", valid_type=LayeredStructureData, dynamic=True)
        spec.outline(cls.submit_job, cls.submit_job, cls.finish)
        spec.output("jobs", valid_type=orm.Int)

    def submit_job(self):
        job = resumable_submit(self, HedgeNetHamiltonianCalculation, "predict", code=self.inputs.code,
                               model=self.inputs.model, structures=dict(self.inputs.structures),
                               metadata={"options": _options()})
        return ToContext(job=job)

    def finish(self):
        self.out("jobs", orm.Int(len(labelled_calls(self.node, "predict", orm.CalcJobNode))).store())


def test_rerun_step_reuses_the_submitted_job(electron_models, samples, python_code):
    out, node = run_get_node(SubmitTwiceWorkChain, model=electron_models["float32"], code=python_code,
                             structures={"s": samples["sample_00"]})
    assert node.is_finished_ok and out["jobs"].value == 1


def test_observable_stage_calcjob_matches_calcfunction(electron_models, samples, python_code):
    """ObservableWorkChain with inference.mode='calcjob' gives the observable of mode='calcfunction'."""
    from aiida_mlepi.workchains.observable import ObservableWorkChain

    cell = np.asarray(graphene_bilayer("AB").cell[:]).tolist()
    settings = orm.Dict({"primitive_cell": cell, "electrons_per_atom": 4.0, "estimator": "chord",
                         "k_radius_inv_angstrom": 0.05, "n_directions": 6})
    structures = {label: samples[label] for label in ("sample_00", "sample_01")}
    common = dict(structures=structures, temperature_k=orm.Float(300.0), settings=settings,
                  hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=electron_models["float64"])
    out_fn, wc_fn = run_get_node(ObservableWorkChain, **common)
    out_job, wc_job = run_get_node(ObservableWorkChain, **common, inference={
        "mode": orm.Str("calcjob"), "code": python_code, "parameters": orm.Dict({"dtype": "float64"}),
        "options": orm.Dict(_options())})
    assert wc_fn.is_finished_ok, wc_fn.exit_message
    assert wc_job.is_finished_ok, wc_job.exit_message
    for label in structures:
        v_fn = out_fn["per_sample"][label]["fermi_velocity_m_per_s"]
        v_job = out_job["per_sample"][label]["fermi_velocity_m_per_s"]
        assert np.isfinite(v_fn) and v_job == pytest.approx(v_fn, rel=1e-9, abs=1e-6)
    avg_fn, avg_job = out_fn["average"].get_dict(), out_job["average"].get_dict()
    assert avg_job["n_samples"] == avg_fn["n_samples"] == 2
    assert avg_job["mean_m_per_s"] == pytest.approx(avg_fn["mean_m_per_s"], rel=1e-9)
    # the calcjob path made one job and no per-sample H(R) calcfunction
    jobs = [n for n in wc_job.called if isinstance(n, orm.CalcJobNode)]
    assert len(jobs) == 1 and jobs[0].process_label == "HedgeNetHamiltonianCalculation"
    assert not [n for n in wc_job.called if getattr(n, "function_name", "") == "predict_hedgenet_hamiltonian"]


def test_calcjob_mode_needs_a_code(electron_models, samples):
    from aiida_mlepi.workchains.observable import ObservableWorkChain

    _, node = run_get_node(ObservableWorkChain, structures={"s": samples["sample_00"]}, temperature_k=orm.Float(0.0),
                           settings=orm.Dict({"primitive_cell": np.eye(3).tolist(), "estimator": "chord"}),
                           hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=electron_models["float32"],
                           inference={"mode": orm.Str("calcjob")})
    assert node.exit_status == 302 and "needs inference.code" in node.exit_message
    _, node = run_get_node(ObservableWorkChain, structures={"s": samples["sample_00"]}, temperature_k=orm.Float(0.0),
                           settings=orm.Dict({"primitive_cell": np.eye(3).tolist(), "estimator": "chord"}),
                           hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=electron_models["float32"],
                           inference={"mode": orm.Str("gpu")})
    assert node.exit_status == 302 and "inference.mode 'gpu' is not one of" in node.exit_message


def test_phonon_stage_forces_job_matches_calcfunction(phonon_model, python_code):
    """PhononWorkChain with inference.mode='calcjob': the same supercell modes as the in-process forces
    (an untrained model has imaginary modes, exit 410, but its modes are still output and compared)."""
    from aiida_mlepi.workchains.phonons import PhononWorkChain

    structure = LayeredStructureData.from_ase(graphene_bilayer("AB"), material="AB-inference-phonons")
    common = dict(structure=structure, supercell_matrix=orm.List([2, 2, 1]), force_provider=orm.Str("hedgenet"),
                  model=phonon_model)
    out_fn, wc_fn = run_get_node(PhononWorkChain, **common)
    out_job, wc_job = run_get_node(PhononWorkChain, **common, inference={
        "mode": orm.Str("calcjob"), "code": python_code, "options": orm.Dict(_options())})
    assert wc_job.exit_status == wc_fn.exit_status and wc_fn.exit_status in (0, 410), wc_fn.exit_message
    f_fn = out_fn["modes"].get_modes().frequencies_thz
    f_job = out_job["modes"].get_modes().frequencies_thz
    assert np.abs(f_fn).max() > 1.0  # THz: real, non-trivial modes
    np.testing.assert_allclose(f_job, f_fn, rtol=0, atol=1e-4)
    jobs = [n for n in wc_job.called if isinstance(n, orm.CalcJobNode)]
    assert [j.process_label for j in jobs] == ["HedgeNetForcesCalculation"]
    assert not [n for n in wc_job.called if getattr(n, "function_name", "") == "compute_model_forces"]


def test_epi_loop_refuses_calcjob_mode_without_code_before_any_stage(electron_models, aiida_profile):
    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

    structure = LayeredStructureData.from_ase(graphene_bilayer("AB"), material="AB-inference-loop")
    _, node = run_get_node(EpiLoopWorkChain, structure=structure, hamiltonian_provider=orm.Str("hedgenet"),
                           hamiltonian_model=electron_models["float32"], inference={"mode": orm.Str("calcjob")})
    assert node.exit_status == 302 and "needs inference.code" in node.exit_message
    assert not node.called


@pytest.mark.slow
def test_epi_loop_calcjob_matches_calcfunction(electron_models, python_code, relaxed_ab_bilayer):
    """The whole loop (reference phonons, HedgeNet H(R)) on a 2×2 cell: the same renormalisation table with the
    H(R) of the samples from one CalcJob per temperature as from per-sample calcfunctions."""
    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

    summaries = {}
    for mode in ("calcfunction", "calcjob"):
        structure = LayeredStructureData.from_ase(relaxed_ab_bilayer.get_ase(), material=f"AB-loop-{mode}")
        inference = {"mode": orm.Str(mode)}
        if mode == "calcjob":
            inference.update(code=python_code, parameters=orm.Dict({"dtype": "float64"}),
                             options=orm.Dict(_options()))
        out, node = run_get_node(EpiLoopWorkChain, structure=structure, supercell_matrix=orm.List([2, 2, 1]),
                                 temperatures_k=orm.List([300.0]), n_samples=orm.Int(2), seed=orm.Int(3),
                                 hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=electron_models["float64"],
                                 observable_settings=orm.Dict({"estimator": "chord"}), inference=inference)
        assert node.is_finished_ok, node.exit_message
        summaries[mode] = out["averages"]["T_300K"].get_dict()
        if mode == "calcjob":
            observable = [n for n in node.called if n.process_label == "ObservableWorkChain"][0]
            assert [n.process_label for n in observable.called if isinstance(n, orm.CalcJobNode)] == [
                "HedgeNetHamiltonianCalculation"]
    assert summaries["calcjob"]["mean_m_per_s"] == pytest.approx(summaries["calcfunction"]["mean_m_per_s"], rel=1e-9)
