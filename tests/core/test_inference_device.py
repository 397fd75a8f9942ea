"""The device/precision layer and the inference script (no AiiDA): clear errors for an absent GPU, a corrupt
model and bad settings; structure files keep layer ids; the script's H(R) is the batched in-process one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aiida_mlepi.core.ml.device import DeviceUnavailableError, inference_dtype, kernel_backend, resolve_device
from aiida_mlepi.core.ml.run_inference import (InferenceInputError, InferenceSettings, load_structures, run,
                                               save_structures)
from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this computer has CUDA")
TINY_ELECTRON = {"num_layers": 1, "num_scalars": 8, "num_vectors": 2, "num_tensors": 1, "radial_hidden": 16,
                 "num_basis": 6}


def test_cpu_is_the_default_and_float32_the_gpu_precision():
    assert resolve_device(None).type == "cpu" and resolve_device("cpu").type == "cpu"
    assert inference_dtype(None, "float64", torch.device("cpu")) == "float64"  # the model's own on CPU
    assert inference_dtype(None, "float64", torch.device("cuda")) == "float32"
    assert inference_dtype("float64", "float32", torch.device("cuda")) == "float64"
    with pytest.raises(ValueError, match="dtype must be one of"):
        inference_dtype("float16", "float32", torch.device("cpu"))
    backend = kernel_backend(torch.device("cpu"))
    assert backend.name == "e3nn" and "CPU" in backend.message


@NO_CUDA
def test_cuda_without_cuda_says_why():
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available on this computer.*device='cpu'"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="not supported"):
        resolve_device("mps")
    with pytest.raises(DeviceUnavailableError, match="invalid device"):
        resolve_device("gpu")


@NO_CUDA
def test_electron_training_on_cuda_without_cuda_is_a_clear_error():
    from aiida_mlepi.core.ml.electron_training import ElectronTrainingSettings, train_electron_model
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectronConfig

    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        # the device is checked before anything is built: no data needed to reach the error
        train_electron_model(HedgeNetElectronConfig(**TINY_ELECTRON), [object()], [object()],
                             settings=ElectronTrainingSettings(device="cuda"))


def test_settings_reject_bad_values():
    assert InferenceSettings.from_dict({}).device == "cpu"
    for values, words in (({"device": "tpu"}, "device must be"), ({"dtype": "half"}, "dtype must be"),
                          ({"batch_size": 0}, "batch_size"), ({"skin": -1.0}, "skin"),
                          ({"batchsize": 2}, "unknown inference settings")):
        with pytest.raises(InferenceInputError, match=words):
            InferenceSettings.from_dict(values)


def _samples(n: int = 2):
    base = in_plane_supercell(graphene_bilayer("AB"), 2)
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, 0.03, atoms.positions.shape)
        atoms.set_array("layer_ids", np.asarray(atoms.arrays.get("layer_ids", np.repeat([0, 1], len(atoms) // 2))))
        out.append(atoms)
    return out


def test_structure_file_round_trip(tmp_path):
    structures = _samples()
    save_structures(tmp_path / "s.npz", structures)
    back = load_structures(tmp_path / "s.npz")
    for a, b in zip(structures, back):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell[:], b.cell[:])
        assert np.array_equal(a.arrays["layer_ids"], b.arrays["layer_ids"]) and np.array_equal(a.pbc, b.pbc)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(InferenceInputError, match="not a readable structure file"):
        load_structures(tmp_path / "bad.npz")


def _write_job(tmp_path, **spec):
    save_structures(tmp_path / "structures.npz", _samples())
    (tmp_path / "input.json").write_text(json.dumps({"task": "hamiltonians", "model": "model.pt",
                                                     "structures": "structures.npz", **spec}))
    return tmp_path / "input.json"


def test_script_predicts_what_the_batched_function_predicts(tmp_path):
    from aiida_mlepi.core.ml.electron_batch import predict_hamiltonians
    from aiida_mlepi.core.ml.electron_training import load_hamiltonians
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig, save_model

    torch.manual_seed(2)
    model = HedgeNetElectron(HedgeNetElectronConfig(dtype="float64", **TINY_ELECTRON))
    save_model(model, tmp_path / "model.pt")
    assert run(_write_job(tmp_path, dtype="float64")) == 0
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished" and status["dtype"] == "float64" and status["device"] == "cpu"
    assert status["timing"]["num_samples"] == 2 and status["timing"]["predict_s"] > 0
    got = load_hamiltonians(tmp_path / "hamiltonians.npz")
    expected = predict_hamiltonians(model, _samples(), dtype="float64")
    for g, e in zip(got, expected):
        assert np.array_equal(g.edges, e.edges)
        np.testing.assert_allclose(g.h_values, e.h_values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["cuda", "garbage_model", "bad_task"])
def test_script_errors_name_their_reason(tmp_path, case):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("this computer has CUDA")
    (tmp_path / "model.pt").write_bytes(b"not a model")
    spec = {"cuda": {"device": "cuda"}, "garbage_model": {}, "bad_task": {"task": "bands"}}[case]
    assert run(_write_job(tmp_path, **spec)) == 2
    status = json.loads((tmp_path / "status.json").read_text())
    reason = {"cuda": "device_unavailable", "garbage_model": "corrupt_model", "bad_task": "invalid_input"}[case]
    assert status["status"] == "error" and status["reason"] == reason, status
    words = {"cuda": "CUDA is not available", "garbage_model": "corrupt or truncated", "bad_task": "task must be"}
    assert words[case] in status["message"]


@NO_CUDA
def test_electron_trainer_script_names_the_absent_device(tmp_path):
    """training.device='cuda' without CUDA: metrics.json says device_unavailable (the parser's exit 304)."""
    from aiida_mlepi.core.ml import run_electron_training
    from aiida_mlepi.core.ml.electron_batch import predict_hamiltonians
    from aiida_mlepi.core.ml.electron_training import save_hamiltonians
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig

    data = predict_hamiltonians(HedgeNetElectron(HedgeNetElectronConfig(**TINY_ELECTRON)), _samples(3))
    save_hamiltonians(tmp_path / "hamiltonians.npz", data)
    (tmp_path / "input.json").write_text(json.dumps({
        "model": TINY_ELECTRON, "training": {"device": "cuda", "max_epochs": 1},
        "split": {"train": [0], "validation": [1], "test": [2]}, "dataset": "hamiltonians.npz"}))
    assert run_electron_training.run(tmp_path / "input.json") == run_electron_training.EXIT_INVALID_INPUT
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "error" and metrics["reason"] == "device_unavailable"
    assert "CUDA is not available" in metrics["message"]
