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
Subclass :class:`ModelTrainingCalculation` and override only:

* ``TRAINER_MODULE`` — the module run with ``python -m`` (it gets the path of ``input.json``);
* ``MODEL_KIND`` — e.g. ``"hedgenet-electron"`` (recorded on the job, checked by the parser);
* ``define`` — call ``super().define(spec)`` and add the dataset input(s), e.g. a namespace of
  ``HamiltonianData``;
* :meth:`write_dataset` — write the dataset into the sandbox ``folder`` and return the entries to
  merge into ``input.json`` (e.g. ``{"dataset": "hamiltonians.h5"}``);
* optionally :meth:`validate_training_parameters` — return an error string for bad parameters.

The trainer module must write, in its working directory, ``metrics.json`` (always) with::

    {"status": "finished" | "diverged" | "error", "message": str (if not finished),
     "model_kind": str, "loader": "aiida_mlepi.<module>:<function>"  # reads model.pt, raises on a bad file
     "model": {"num_parameters": int, "relations": [...], "cutoffs_angstrom": {...}, "dtype": str,
               "atomic_numbers": [...]},
     "hyperparameters": {...}, "seed": int, "history": [{"epoch", "train_loss", "val_loss"}, ...],
     "best_epoch": int, "test": {"energy_mae_mev_per_atom": ..., ...}}

plus ``model.pt`` and ``checkpoint.pt`` when finished. Exit codes (the parser's): 300 missing output
files, 301 unreadable ``metrics.json``, 302 corrupt model file, 303 the trainer rejected its input,
400 the training diverged (NaN loss; ``metrics`` and ``checkpoint`` are still attached).
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_mlepi.data.configuration_set import ConfigurationSetData
from aiida_mlepi.data.model import TrainedModelData

INPUT_FILE = "input.json"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_IN_FILE = "checkpoint_in.pt"
LOG_FILE = "training.log"
PARAMETER_SECTIONS = ("model", "training", "split")


class ModelTrainingCalculation(CalcJob):
    """Generic: run ``python -m TRAINER_MODULE input.json`` and retrieve model, metrics, checkpoint."""

    TRAINER_MODULE: str = ""
    MODEL_KIND: str = ""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_parameters", valid_type=orm.Dict, validator=cls._validator,
                   help="{'model': {...}, 'training': {...}, 'split': {'fractions': [...], 'seed': int}}.")
        spec.input("checkpoint", valid_type=orm.SinglefileData, required=False,
                   help="Checkpoint of an earlier run to continue from (epochs counts the total).")
        options = spec.inputs["metadata"]["options"]
        options["parser_name"].default = "mlepi.training"
        options["input_filename"].default = INPUT_FILE
        options["output_filename"].default = LOG_FILE
        options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        options["withmpi"].default = False

        spec.output("model", valid_type=TrainedModelData, required=False, help="The trained model (best EMA weights).")
        spec.output("metrics", valid_type=orm.Dict, required=False,
                    help="Hyperparameters, seed, per-epoch losses, best epoch, test errors.")
        spec.output("checkpoint", valid_type=orm.SinglefileData, required=False,
                    help="Model + optimizer + EMA + epoch + RNG: resume from it.")
        spec.default_output_node = "metrics"

        spec.exit_code(300, "ERROR_MISSING_OUTPUT_FILES", message="The trainer did not write {files}; see training.log.")
        spec.exit_code(301, "ERROR_CORRUPT_METRICS", message="metrics.json is not readable JSON: {message}")
        spec.exit_code(302, "ERROR_CORRUPT_MODEL", message="The model file is corrupt or does not match its config: {message}")
        spec.exit_code(303, "ERROR_INVALID_TRAINING_INPUT", message="The trainer rejected its input: {message}")
        spec.exit_code(400, "ERROR_TRAINING_DIVERGED",
                       message="Training diverged (non-finite loss) in epoch {epoch}; lower the learning rate.")

    @classmethod
    def _validator(cls, value, _ctx):
        if value is None:
            return None
        return cls.validate_training_parameters(value.get_dict())

    @classmethod
    def validate_training_parameters(cls, parameters: dict) -> str | None:
        """An error message for invalid ``training_parameters``, or None."""
        unknown = set(parameters) - set(PARAMETER_SECTIONS)
        if unknown:
            return f"unknown sections {sorted(unknown)} in training_parameters; known: {list(PARAMETER_SECTIONS)}"
        return None

    def write_dataset(self, folder) -> dict:
        """Write the dataset into ``folder``; return the entries to merge into ``input.json``."""
        raise NotImplementedError(f"{type(self).__name__} must implement write_dataset")

    def prepare_for_submission(self, folder):
        if not self.TRAINER_MODULE:
            raise NotImplementedError(f"{type(self).__name__} must set TRAINER_MODULE")
        spec = {key: value for key, value in self.inputs.training_parameters.get_dict().items()}
        spec.update(self.write_dataset(folder))
        local_copy_list = []
        if "checkpoint" in self.inputs:
            checkpoint = self.inputs.checkpoint
            local_copy_list.append((checkpoint.uuid, checkpoint.filename, CHECKPOINT_IN_FILE))
            spec["resume_from"] = CHECKPOINT_IN_FILE
        else:
            spec["resume_from"] = None
        spec["model_kind"] = self.MODEL_KIND
        with folder.open(INPUT_FILE, "w") as handle:
            json.dump(spec, handle, indent=1)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["-m", self.TRAINER_MODULE, INPUT_FILE]
        codeinfo.stdout_name = LOG_FILE
        codeinfo.join_files = True

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = [MODEL_FILE, METRICS_FILE, CHECKPOINT_FILE, LOG_FILE]
        return calcinfo


class HedgeNetPhononTrainingCalculation(ModelTrainingCalculation):
    """Train HedgeNet-Phonon (``aiida_mlepi.core.ml.run_training``) on a ConfigurationSetData."""

    TRAINER_MODULE = "aiida_mlepi.core.ml.run_training"
    MODEL_KIND = "hedgenet-phonon"
    DATASET_FILE = "dataset.extxyz"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=ConfigurationSetData,
                   help="Configurations with reference energies (eV) and forces (eV/Å).")

    @classmethod
    def validate_training_parameters(cls, parameters: dict) -> str | None:
        message = super().validate_training_parameters(parameters)
        if message:
            return message
        from aiida_mlepi.core.ml.training import TrainingConfig, model_config_from_dict

        try:
            model_config_from_dict(dict(parameters.get("model", {})))
            TrainingConfig.from_dict(dict(parameters.get("training", {})))
        except (TypeError, ValueError) as exc:
            return f"invalid training_parameters: {exc}"
        split = parameters.get("split", {})
        if not isinstance(split, dict) or set(split) - {"fractions", "seed", "train", "validation", "test"}:
            return "split must be {'fractions': [f_train, f_val, f_test], 'seed': int} or explicit index lists"
        return None

    def write_dataset(self, folder) -> dict:
        configurations = self.inputs.dataset.get_configuration_set()
        configurations.write_extxyz(folder.get_abs_path(self.DATASET_FILE))
        return {"dataset": self.DATASET_FILE}
