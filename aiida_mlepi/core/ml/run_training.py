"""Command-line trainer of HedgeNet-Phonon: ``python -m aiida_mlepi.core.ml.run_training input.json``.

This is what :class:`aiida_mlepi.calculations.training.HedgeNetPhononTrainingCalculation` runs on the
(possibly remote, GPU) computer; it needs aiida-mlepi with the ``ml`` extra but no AiiDA profile.

``input.json``::

    {"model": {HedgeNetPhononConfig fields}, "training": {TrainingConfig fields},
     "split": {"fractions": [0.81, 0.09, 0.10], "seed": 0}     # or {"train": [...], "validation": [...], "test": [...]}
     "dataset": "dataset.extxyz",                              # REF_energy / REF_forces, layer_ids column
     "resume_from": "checkpoint_in.pt" or null}

It writes ``model.pt`` (best EMA weights, :func:`~aiida_mlepi.core.ml.hedgenet_phonon.save_model`),
``checkpoint.pt`` (after every epoch) and ``metrics.json`` (:meth:`TrainingResult.metrics`, with
``"status": "finished"``). Exit status 0 when finished, 2 for invalid input (or a requested device that is absent,
``"reason": "device_unavailable"``) (``"status": "error"``),
3 when the loss diverged (``"status": "diverged"``, the history up to then); ``metrics.json`` is
written in every case.
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


def _write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps(metrics, indent=1, allow_nan=True))


def run(input_path: str | Path, workdir: str | Path | None = None, progress: bool = True) -> int:
    """Train as ``input.json`` says; returns the exit status (see the module docstring)."""
    from ..dataset import ConfigurationSet, DatasetError, split_indices
    from .device import DeviceUnavailableError
    from .hedgenet_phonon import ModelConfigError
    from .training import (CheckpointError, TrainingConfig, TrainingDivergedError, TrainingError,
                           model_config_from_dict, save_result, train)

    input_path = Path(input_path)
    workdir = Path(workdir) if workdir is not None else input_path.parent
    metrics_path = workdir / METRICS_FILE
    try:
        spec = json.loads(input_path.read_text())
        model_config = model_config_from_dict(dict(spec.get("model", {})))
        training_config = TrainingConfig.from_dict(dict(spec.get("training", {})))
        data = ConfigurationSet.read_extxyz(workdir / spec.get("dataset", "dataset.extxyz"))
        split_spec = dict(spec.get("split", {}))
        if "train" in split_spec:
            split = split_spec
        else:
            split = split_indices(len(data), tuple(split_spec.get("fractions", (0.81, 0.09, 0.10))),
                                  seed=int(split_spec.get("seed", 0)))
        resume = spec.get("resume_from")
        result = train(model_config, data, split, training_config, checkpoint_path=workdir / CHECKPOINT_FILE,
                       resume_from=(workdir / resume) if resume else None, progress=progress)
    except TrainingDivergedError as exc:
        _write_metrics(metrics_path, {"status": "diverged", "message": str(exc), "epoch": exc.epoch,
                                      "history": exc.history})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except DeviceUnavailableError as exc:
        _write_metrics(metrics_path, {"status": "error", "reason": "device_unavailable", "message": str(exc)})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError, TrainingError, CheckpointError,
            DatasetError, ModelConfigError) as exc:
        _write_metrics(metrics_path, {"status": "error", "message": f"{type(exc).__name__}: {exc}"})
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    save_result(result, workdir / MODEL_FILE)
    metrics = result.metrics()
    metrics["split"] = {k: [int(i) for i in v] for k, v in split.items()}
    _write_metrics(metrics_path, metrics)
    test = result.test
    if test is not None:
        print(f"finished: {result.epochs_run} epochs, best {result.best_epoch}; test energy MAE "
              f"{test.energy_mae_mev_per_atom:.3f} meV/atom, force MAE {test.forces_mae_mev_per_angstrom:.2f} meV/Å")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main(run, "aiida_mlepi.core.ml.run_training", argv)


if __name__ == "__main__":
    sys.exit(main())
