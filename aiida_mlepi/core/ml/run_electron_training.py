"""Command-line trainer of HedgeNet-Electron: ``python -m aiida_mlepi.core.ml.run_electron_training input.json``.

Run by :class:`aiida_mlepi.calculations.electron_training.HedgeNetElectronTrainingCalculation` on any
computer with aiida-mlepi's ``ml`` extra (no AiiDA profile needed). ``input.json``::

    {"model": {HedgeNetElectronConfig fields}, "training": {ElectronTrainingSettings fields},
     "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0}    # or {"train": [...], "validation": [...], "test": [...]}
     "dataset": "hamiltonians.npz",                        # electron_training.save_hamiltonians
     "resume_from": "checkpoint_in.pt" or null}

Writes ``model.pt``, ``checkpoint.pt`` (every epoch) and ``metrics.json`` (the contract of
:mod:`aiida_mlepi.calculations.training`). Exit status 0 finished, 2 invalid input
(``"reason": "device_unavailable"`` for an absent device), 3 diverged;
``metrics.json`` is written in every case.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .script_main import script_main

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
EXIT_INVALID_INPUT = 2
EXIT_DIVERGED = 3
#: DeepH / paper split for the electron network (train : validation : test = 6 : 2 : 2)
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def _write(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=1, allow_nan=True))


def run(input_path: str | Path, workdir: str | Path | None = None) -> int:
    """Train as ``input.json`` says; returns the exit status."""
    from ..dataset import DatasetError, split_indices
    from .electron_training import (ElectronTrainingDiverged, ElectronTrainingError, ElectronTrainingSettings,
                                    load_hamiltonians, save_result, train_electron_model)
    from .device import DeviceUnavailableError
    from .hedgenet_electron import ElectronModelConfigError, ElectronModelFileError, HedgeNetElectronConfig

    input_path = Path(input_path)
    workdir = Path(workdir) if workdir is not None else input_path.parent
    metrics_path = workdir / METRICS_FILE
    try:
        spec = json.loads(input_path.read_text())
        config = HedgeNetElectronConfig.from_dict(dict(spec.get("model", {})))
        settings = ElectronTrainingSettings.from_dict(dict(spec.get("training", {})))
        data = load_hamiltonians(workdir / spec.get("dataset", "hamiltonians.npz"))
        split_spec = dict(spec.get("split", {}))
        if "train" in split_spec:
            split = {k: [int(i) for i in split_spec[k]] for k in ("train", "validation", "test")}
        else:
            split = split_indices(len(data), tuple(split_spec.get("fractions", DEFAULT_FRACTIONS)),
                                  seed=int(split_spec.get("seed", 0)))
        pick = {k: [data[int(i)] for i in v] for k, v in split.items()}
        resume = spec.get("resume_from")
        result = train_electron_model(config, pick["train"], pick["validation"], pick.get("test", []), settings,
                                      checkpoint_path=workdir / CHECKPOINT_FILE,
                                      resume_from=(workdir / resume) if resume else None,
                                      log=lambda line: print(line, flush=True))
    except ElectronTrainingDiverged as exc:
        _write(metrics_path, {"status": "diverged", "message": str(exc), "epoch": exc.epoch, "history": exc.history})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except DeviceUnavailableError as exc:
        _write(metrics_path, {"status": "error", "reason": "device_unavailable", "message": str(exc)})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (OSError, ValueError, KeyError, TypeError, IndexError, DatasetError, ElectronTrainingError,
            ElectronModelConfigError, ElectronModelFileError) as exc:
        _write(metrics_path, {"status": "error", "message": f"{type(exc).__name__}: {exc}"})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    save_result(result, workdir / MODEL_FILE)
    metrics = result.metrics()
    metrics["split"] = {k: [int(i) for i in v] for k, v in split.items()}
    _write(metrics_path, metrics)
    if result.test is not None:
        print(f"finished: {result.epochs_run} epochs, best {result.best_epoch}; test H MAE {result.test.mae_mev:.2f} meV")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main(run, "aiida_mlepi.core.ml.run_electron_training", argv)


if __name__ == "__main__":
    sys.exit(main())
