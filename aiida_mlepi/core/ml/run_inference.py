"""Command-line batched inference: ``python -m aiida_mlepi.core.ml.run_inference input.json``.

Run by the inference CalcJobs (:mod:`aiida_mlepi.calculations.inference`: ``mlepi.predict_hamiltonians``,
``mlepi.predict_forces``) on any computer with aiida-mlepi's ``ml`` extra, e.g. a GPU node (no AiiDA
profile needed there). ``input.json``::

    {"task": "hamiltonians" | "forces",
     "model": "model.pt",                      # a HedgeNet-Electron (hamiltonians) / -Phonon (forces) file
     "structures": "structures.npz",           # save_structures(): cell, positions (Å), numbers, pbc, layer ids
     "device": "cpu" | "cuda" | "cuda:N",      # InferenceSettings
     "dtype": null | "float32" | "float64",    # null: float32 on a GPU, the model's own precision on CPU
     "batch_size": null | int, "skin": 1.0, "reuse_topology": true}

It writes ``status.json`` in every case: ``{"status": "finished" | "error", "reason": "device_unavailable" |
"corrupt_model" | "invalid_input" (errors), "message", "device", "dtype", "kernels", "timing": {"load_s",
"predict_s", "num_samples", "per_sample_s"}, ...}`` and, when finished, ``hamiltonians.npz``
(:func:`~.electron_training.save_hamiltonians`, in the order of the structures; ``status.json`` holds each
one's ``metadata``) or ``forces.npz`` (``energies`` (S,) eV, ``{k}_forces`` (N_k, 3) eV/Å).
Exit status 0 finished, 2 error.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .script_main import script_main

STATUS_FILE = "status.json"
HAMILTONIANS_FILE = "hamiltonians.npz"
FORCES_FILE = "forces.npz"
TASKS = ("hamiltonians", "forces")
#: the model kind each task needs
TASK_MODEL_KIND = {"hamiltonians": "hedgenet-electron", "forces": "hedgenet-phonon"}
#: structures per forward pass when not given: 1 for H(R) on CPU (electron_batch: batches do not pay on CPU),
#: 8 on a GPU; 8 for forces (calculations.model_forces.DEFAULT_BATCH_SIZE)
DEFAULT_BATCH = {("hamiltonians", "cpu"): 1, ("hamiltonians", "cuda"): 8, ("forces", "cpu"): 8, ("forces", "cuda"): 8}
EXIT_ERROR = 2


class InferenceInputError(ValueError):
    """Bad inference settings or input files."""


@dataclass(frozen=True)
class InferenceSettings:
    """How to run the model: ``device``, ``dtype`` (None: float32 on a GPU, the model's own on CPU),
    ``batch_size`` (structures per forward pass; None: :data:`DEFAULT_BATCH`), ``skin`` (Å, the H(R)
    topology reuse of :mod:`.electron_batch`) and ``reuse_topology``."""

    device: str = "cpu"
    dtype: str | None = None
    batch_size: int | None = None
    skin: float = 1.0
    reuse_topology: bool = True

    def __post_init__(self) -> None:
        from .device import DTYPES

        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            raise InferenceInputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise InferenceInputError(f"dtype must be one of {list(DTYPES)} or None, got {self.dtype!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise InferenceInputError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (isinstance(self.skin, (int, float)) and self.skin > 0):
            raise InferenceInputError(f"skin must be a positive length (Å), got {self.skin!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "InferenceSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InferenceInputError(f"unknown inference settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def batch_for(self, task: str, device_type: str) -> int:
        return self.batch_size or DEFAULT_BATCH[(task, "cuda" if device_type == "cuda" else "cpu")]


# ---------------------------------------------------------------------------- structure files
def save_structures(path, structures) -> None:
    """Store ASE structures (cell, positions Å, numbers, pbc, ``layer_ids`` array if present) in one ``.npz``."""
    arrays = {"count": np.array([len(structures)])}
    for k, atoms in enumerate(structures):
        arrays.update({f"{k}_cell": np.asarray(atoms.cell[:], dtype=float), f"{k}_positions": atoms.positions,
                       f"{k}_numbers": atoms.numbers, f"{k}_pbc": np.asarray(atoms.pbc, dtype=bool)})
        if "layer_ids" in atoms.arrays:
            arrays[f"{k}_layer_ids"] = np.asarray(atoms.arrays["layer_ids"], dtype=np.int64)
    np.savez_compressed(path, **arrays)


def load_structures(path) -> list:
    """Read :func:`save_structures` output (raises :class:`InferenceInputError` on a bad file)."""
    from ase import Atoms

    try:
        with np.load(path, allow_pickle=False) as data:
            out = []
            for k in range(int(data["count"][0])):
                atoms = Atoms(numbers=data[f"{k}_numbers"], positions=data[f"{k}_positions"],
                              cell=data[f"{k}_cell"], pbc=data[f"{k}_pbc"])
                if f"{k}_layer_ids" in data.files:
                    atoms.new_array("layer_ids", data[f"{k}_layer_ids"])
                out.append(atoms)
    except (OSError, KeyError, ValueError) as exc:
        raise InferenceInputError(f"{path} is not a readable structure file: {exc}") from exc
    return out


# ---------------------------------------------------------------------------- prediction
def _in_dtype(model, dtype: str):
    """``model`` if it computes in ``dtype``, else a converted copy (weights cast by ``load_state_dict``)."""
    if model.config.dtype == dtype:
        return model
    converted = type(model)(dataclasses.replace(model.config, dtype=dtype))
    converted.load_state_dict(model.state_dict())
    return converted.eval()


def _synchronize(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def predict(task: str, model_path, structures: list, settings: InferenceSettings) -> tuple[dict, dict]:
    """Run ``task`` on ``structures`` with the model file at ``model_path``.

    Returns ``(results, report)``: results ``{"hamiltonians": [HamiltonianR]}`` or ``{"energies": (S,) eV,
    "forces": [(N, 3) eV/Å]}``; report: device, dtype, kernels, batch size, timing (s).
    Raises :class:`~.device.DeviceUnavailableError`, :class:`~aiida_mlepi.core.io.model_file.ModelFileReadError`
    (corrupt model), :class:`InferenceInputError`.
    """
    import torch

    from .device import inference_dtype, kernel_backend, resolve_device

    if task not in TASKS:
        raise InferenceInputError(f"task must be one of {list(TASKS)}, got {task!r}")
    device = resolve_device(settings.device)
    t0 = time.perf_counter()
    if task == "hamiltonians":
        from .hedgenet_electron import load_model
    else:
        from .hedgenet_phonon import load_model
    model = load_model(Path(model_path))
    dtype = inference_dtype(settings.dtype, model.config.dtype, device)
    batch = settings.batch_for(task, device.type)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    if task == "hamiltonians":
        from .electron_batch import predict_hamiltonians

        hamiltonians = predict_hamiltonians(model, structures, batch_size=batch, dtype=dtype, skin=settings.skin,
                                            reuse_topology=settings.reuse_topology, device=device)
        results = {"hamiltonians": hamiltonians}
        graphs = {}
        for h in hamiltonians:
            how = h.metadata.pop("graph", "rebuilt")
            graphs[how] = graphs.get(how, 0) + 1
        extra = {"graphs": graphs}
    else:
        from .calculator import predict as predict_forces

        with torch.enable_grad():
            energies, forces = predict_forces(_in_dtype(model, dtype), structures, batch_size=batch, device=device)
        results = {"energies": np.asarray(energies, dtype=float), "forces": [np.asarray(f, float) for f in forces]}
        extra = {}
    _synchronize(device)
    t_predict = time.perf_counter() - t1
    n = len(structures)
    report = {"device": str(device), "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                                      else "cpu"),
              "dtype": dtype, "model_dtype": model.config.dtype, "batch_size": batch,
              "kernels": kernel_backend(device).to_dict(), "torch_version": torch.__version__,
              "torch_num_threads": torch.get_num_threads(),
              "timing": {"load_s": t_load, "predict_s": t_predict, "num_samples": n,
                         "per_sample_s": t_predict / n if n else None}, **extra}
    return results, report


def write_results(task: str, results: dict, workdir: Path) -> dict:
    """Write the result file of ``task`` into ``workdir``; return status entries (e.g. per-sample metadata)."""
    if task == "hamiltonians":
        from .electron_training import save_hamiltonians

        save_hamiltonians(workdir / HAMILTONIANS_FILE, results["hamiltonians"])
        return {"metadata": [dict(h.metadata) for h in results["hamiltonians"]]}
    arrays = {"energies": results["energies"]}
    arrays.update({f"{k}_forces": f for k, f in enumerate(results["forces"])})
    np.savez_compressed(workdir / FORCES_FILE, **arrays)
    return {}


def _write_status(path: Path, status: dict) -> None:
    path.write_text(json.dumps(status, indent=1, allow_nan=True))


def run(input_path: str | Path, workdir: str | Path | None = None) -> int:
    """Predict as ``input.json`` says; returns the exit status (0 finished, 2 error; see the module docstring)."""
    from aiida_mlepi.core.io.model_file import ModelFileReadError

    from .device import DeviceUnavailableError

    input_path = Path(input_path)
    workdir = Path(workdir) if workdir is not None else input_path.parent
    status_path = workdir / STATUS_FILE
    task = None

    def fail(reason: str, exc: Exception) -> int:
        _write_status(status_path, {"status": "error", "reason": reason, "task": task,
                                    "message": f"{type(exc).__name__}: {exc}" if reason == "invalid_input"
                                    else str(exc)})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_ERROR

    try:
        spec = json.loads(input_path.read_text())
        task = spec.get("task")
        settings = InferenceSettings.from_dict({k: spec[k] for k in ("device", "dtype", "batch_size", "skin",
                                                                     "reuse_topology") if k in spec})
        structures = load_structures(workdir / spec.get("structures", "structures.npz"))
        results, report = predict(task, workdir / spec.get("model", "model.pt"), structures, settings)
        entries = write_results(task, results, workdir)
    except DeviceUnavailableError as exc:
        return fail("device_unavailable", exc)
    except ModelFileReadError as exc:
        return fail("corrupt_model", exc)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        return fail("invalid_input", exc)
    _write_status(status_path, {"status": "finished", "task": task, "settings": settings.to_dict(), **report,
                                **entries})
    timing = report["timing"]
    print(f"finished: {task} of {timing['num_samples']} structure(s) on {report['device']} ({report['dtype']}), "
          f"{timing['predict_s']:.2f} s ({timing['per_sample_s'] or 0:.3f} s per structure); "
          f"kernels: {report['kernels']['message']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main(run, "aiida_mlepi.core.ml.run_inference", argv)


if __name__ == "__main__":
    sys.exit(main())
