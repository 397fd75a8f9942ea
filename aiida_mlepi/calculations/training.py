"""Training of the HedgeNet networks as CalcJobs, so that they run on any computer (e.g. a GPU cluster).

:class:`ModelTrainingCalculation` is the generic base; :class:`HedgeNetPhononTrainingCalculation`
(entry point ``mlepi.train_phonon``) trains HedgeNet-Phonon on a
:class:`~aiida_mlepi.data.configuration_set.ConfigurationSetData`. The ``code`` is a Python
interpreter of an environment with ``aiida-mlepi[ml]`` installed (no AiiDA profile is needed there).

What the job does
-----------------
``prepare_for_submission`` writes ``input.json`` (the ``training_parameters`` plus what
:meth:`~ModelTrainingCalculation.write_dataset` returns, plus ``"resume_from": "checkpoint_in.pt"``
when a ``checkpoint`` is given) and the dataset file(s), copies the checkpoint, and runs::

    <python> -m <TRAINER_MODULE> input.json          # stdout + stderr → training.log

It retrieves ``model.pt``, ``metrics.json``, ``checkpoint.pt`` and ``training.log``; the generic
parser ``mlepi.training`` (:class:`aiida_mlepi.parsers.training.TrainingParser`) turns them into
the outputs ``model`` (:class:`~aiida_mlepi.data.model.TrainedModelData`), ``metrics`` (Dict) and
``checkpoint`` (SinglefileData, pass it back as input ``checkpoint`` to train on).

Interface for a sibling trainer (e.g. ``HedgeNetElectronTrainingCalculation``, ``mlepi.train_electron``)
--------------------------------------------------------------------------------------------------------
The job pattern (``input.json``, the command, the shared exit codes 300–304, the one parameter validator)
is :class:`~aiida_mlepi.calculations.ml_job.ScriptCalculation`, shared with the inference jobs.
Subclass :class:`ModelTrainingCalculation` and override only:

* ``MODULE`` — the trainer module run with ``python -m`` (it gets the path of ``input.json``);
* ``MODEL_KIND`` — e.g. ``"hedgenet-electron"`` (recorded on the job, checked by the parser);
* ``define`` — call ``super().define(spec)`` and add the dataset input(s), e.g. a namespace of
  ``HamiltonianData``;
* :meth:`write_dataset` — write the dataset into the sandbox ``folder`` and return the entries to
  merge into ``input.json`` (e.g. ``{"dataset": "hamiltonians.h5"}``);
* :meth:`check_sections` — parse the ``model`` and ``training`` sections (raise ValueError/TypeError).

The trainer module must write, in its working directory, ``metrics.json`` (always) with::

    {"status": "finished" | "diverged" | "error", "message": str (if not finished),
     "model_kind": str, "loader": "aiida_mlepi.<module>:<function>"  # reads model.pt, raises on a bad file
     "model": {"num_parameters": int, "relations": [...], "cutoffs_angstrom": {...}, "dtype": str,
               "atomic_numbers": [...]},
     "hyperparameters": {...}, "seed": int, "history": [{"epoch", "train_loss", "val_loss"}, ...],
     "best_epoch": int, "test": {"energy_mae_mev_per_atom": ..., ...}}

plus ``model.pt`` and ``checkpoint.pt`` when finished; an error adds ``"reason": "device_unavailable"``
when the requested device (``training.device``, e.g. ``'cuda'``) is absent. Exit codes (the parser's):
300 missing output files, 301 unreadable ``metrics.json``, 302 corrupt model file, 303 the trainer
rejected its input, 304 the requested device is not available, 400 the training diverged (NaN loss;
``metrics`` and ``checkpoint`` are still attached).
"""

from __future__ import annotations

from aiida import orm

from aiida_mlepi.data.configuration_set import ConfigurationSetData
from aiida_mlepi.data.model import TrainedModelData

from .ml_job import INPUT_FILE, ScriptCalculation  # noqa: F401  (INPUT_FILE: re-exported)

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_IN_FILE = "checkpoint_in.pt"
LOG_FILE = "training.log"
PARAMETER_SECTIONS = ("model", "training", "split")
SPLIT_KEYS = {"fractions", "seed", "train", "validation", "test"}


class ModelTrainingCalculation(ScriptCalculation):
    """Generic: run ``python -m MODULE input.json`` and retrieve model, metrics, checkpoint."""

    PARSER = "mlepi.training"
    PARAMETERS_PORT = "training_parameters"
    PARAMETERS_HELP = "{'model': {...}, 'training': {...}, 'split': {'fractions': [...], 'seed': int}}."
    LOG_FILE = LOG_FILE
    STATUS_FILE = METRICS_FILE
    RETRIEVE = (MODEL_FILE, METRICS_FILE, CHECKPOINT_FILE, LOG_FILE)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("checkpoint", valid_type=orm.SinglefileData, required=False,
                   help="Checkpoint of an earlier run to continue from (epochs counts the total).")
        spec.output("model", valid_type=TrainedModelData, required=False, help="The trained model (best EMA weights).")
        spec.output("metrics", valid_type=orm.Dict, required=False,
                    help="Hyperparameters, seed, per-epoch losses, best epoch, test errors.")
        spec.output("checkpoint", valid_type=orm.SinglefileData, required=False,
                    help="Model + optimizer + EMA + epoch + RNG: resume from it.")
        spec.default_output_node = "metrics"
        spec.exit_code(400, "ERROR_TRAINING_DIVERGED",
                       message="Training diverged (non-finite loss) in epoch {epoch}; lower the learning rate.")

    @classmethod
    def validate_parameters(cls, parameters: dict) -> str | None:
        return cls.validate_training_parameters(parameters)

    @classmethod
    def validate_training_parameters(cls, parameters: dict) -> str | None:
        """An error message for invalid ``training_parameters``, or None."""
        unknown = set(parameters) - set(PARAMETER_SECTIONS)
        if unknown:
            return f"unknown sections {sorted(unknown)} in training_parameters; known: {list(PARAMETER_SECTIONS)}"
        try:
            cls.check_sections(dict(parameters.get("model", {})), dict(parameters.get("training", {})))
        except (TypeError, ValueError) as exc:
            return f"invalid training_parameters: {exc}"
        split = parameters.get("split", {})
        if not isinstance(split, dict) or set(split) - SPLIT_KEYS:
            return "split must be {'fractions': [f_train, f_val, f_test], 'seed': int} or explicit index lists"
        return None

    @classmethod
    def check_sections(cls, model: dict, training: dict) -> None:
        """Parse the ``model`` and ``training`` sections (raise ValueError/TypeError for bad values)."""

    def write_dataset(self, folder) -> dict:
        """Write the dataset into ``folder``; return the entries to merge into ``input.json``."""
        raise NotImplementedError(f"{type(self).__name__} must implement write_dataset")

    def write_inputs(self, folder) -> tuple[dict, list]:
        spec = self.write_dataset(folder)
        local_copy_list = []
        if "checkpoint" in self.inputs:
            checkpoint = self.inputs.checkpoint
            local_copy_list.append((checkpoint.uuid, checkpoint.filename, CHECKPOINT_IN_FILE))
            spec["resume_from"] = CHECKPOINT_IN_FILE
        else:
            spec["resume_from"] = None
        return spec, local_copy_list


class HedgeNetPhononTrainingCalculation(ModelTrainingCalculation):
    """Train HedgeNet-Phonon (``aiida_mlepi.core.ml.run_training``) on a ConfigurationSetData."""

    MODULE = "aiida_mlepi.core.ml.run_training"
    MODEL_KIND = "hedgenet-phonon"
    DATASET_FILE = "dataset.extxyz"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=ConfigurationSetData,
                   help="Configurations with reference energies (eV) and forces (eV/Å).")

    @classmethod
    def check_sections(cls, model: dict, training: dict) -> None:
        from aiida_mlepi.core.ml.training import TrainingConfig, model_config_from_dict

        model_config_from_dict(model)
        TrainingConfig.from_dict(training)

    def write_dataset(self, folder) -> dict:
        configurations = self.inputs.dataset.get_configuration_set()
        configurations.write_extxyz(folder.get_abs_path(self.DATASET_FILE))
        return {"dataset": self.DATASET_FILE}
