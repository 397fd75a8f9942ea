"""`ScriptCalculation`: the one CalcJob pattern of the HedgeNet jobs (training and inference).

Every HedgeNet job runs a module of ``aiida_mlepi.core.ml`` with the ``code`` (a Python interpreter of an
environment with ``aiida-mlepi[ml]``; no AiiDA profile needed there, so it can be a GPU node)::

    <python> -m <MODULE> input.json          # stdout + stderr → LOG_FILE

``input.json`` is the job's parameters Dict (port ``PARAMETERS_PORT``, checked by one validator,
:meth:`validate_parameters`) merged with what :meth:`write_inputs` writes into the sandbox. The module
writes a JSON status file (``STATUS_FILE``) in every case: ``{"status": "finished" | "error" | ...,
"reason": "device_unavailable" | "corrupt_model" | "invalid_input", "message": str}``; the parsers read
it through :func:`aiida_mlepi.parsers.script.read_status`, which maps a reason to the exit codes defined
here, shared by all subclasses:

====  ==============================  =======================================================
300   ERROR_MISSING_OUTPUT_FILES      the script wrote no status file / an output is missing
301   ERROR_CORRUPT_METRICS           the status file is not readable JSON
302   ERROR_CORRUPT_MODEL             the model file does not load (corrupt, mismatched weights)
303   ERROR_INVALID_TRAINING_INPUT    the script rejected its input (name kept from the trainers)
304   ERROR_DEVICE_UNAVAILABLE        the requested device is absent (e.g. device='cuda' without CUDA)
====  ==============================  =======================================================

Subclasses: :class:`~aiida_mlepi.calculations.training.ModelTrainingCalculation` (``mlepi.train_*``) and
:class:`~aiida_mlepi.calculations.inference.ModelInferenceCalculation` (``mlepi.predict_*``).
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

INPUT_FILE = "input.json"

#: status-file ``reason`` → exit-code label (anything else that is an error: ERROR_INVALID_TRAINING_INPUT)
REASON_EXIT_CODES = {"device_unavailable": "ERROR_DEVICE_UNAVAILABLE", "corrupt_model": "ERROR_CORRUPT_MODEL"}


class ScriptCalculation(CalcJob):
    """Generic: write ``input.json`` (+ files), run ``python -m MODULE input.json``, retrieve ``RETRIEVE``."""

    MODULE: str = ""  #: run with ``python -m``
    MODEL_KIND: str = ""  #: e.g. ``'hedgenet-electron'`` (checked by the parsers)
    PARSER: str = ""  #: default parser entry point
    PARAMETERS_PORT: str = "parameters"
    PARAMETERS_HELP: str = ""
    PARAMETERS_REQUIRED: bool = True
    LOG_FILE: str = "job.log"
    STATUS_FILE: str = "status.json"
    RETRIEVE: tuple[str, ...] = ()

    @classmethod
    def define(cls, spec):
        super().define(spec)
        port = {"valid_type": orm.Dict, "validator": cls._validator, "help": cls.PARAMETERS_HELP}
        if not cls.PARAMETERS_REQUIRED:
            port["required"] = False
        spec.input(cls.PARAMETERS_PORT, **port)
        options = spec.inputs["metadata"]["options"]
        options["parser_name"].default = cls.PARSER
        options["input_filename"].default = INPUT_FILE
        options["output_filename"].default = cls.LOG_FILE
        options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        options["withmpi"].default = False
        spec.exit_code(300, "ERROR_MISSING_OUTPUT_FILES", message="The job did not write {files}; see its log.")
        spec.exit_code(301, "ERROR_CORRUPT_METRICS", message="The status file is not readable JSON: {message}")
        spec.exit_code(302, "ERROR_CORRUPT_MODEL",
                       message="The model file is corrupt or does not match its config: {message}")
        spec.exit_code(303, "ERROR_INVALID_TRAINING_INPUT", message="The job rejected its input: {message}")
        spec.exit_code(304, "ERROR_DEVICE_UNAVAILABLE", message="The requested device is not available: {message}")

    @classmethod
    def _validator(cls, value, _ctx):
        if value is None:
            return None
        return cls.validate_parameters(value.get_dict())

    @classmethod
    def validate_parameters(cls, parameters: dict) -> str | None:
        """An error message for invalid parameters, or None (subclasses extend it)."""
        return None

    def write_inputs(self, folder) -> tuple[dict, list]:
        """Write the job's data into ``folder``; return (entries to merge into ``input.json``, local_copy_list)."""
        raise NotImplementedError(f"{type(self).__name__} must implement write_inputs")

    def prepare_for_submission(self, folder):
        if not self.MODULE:
            raise NotImplementedError(f"{type(self).__name__} must set MODULE")
        parameters = self.inputs.get(self.PARAMETERS_PORT)
        spec = dict(parameters.get_dict()) if parameters is not None else {}
        entries, local_copy_list = self.write_inputs(folder)
        spec.update(entries)
        spec["model_kind"] = self.MODEL_KIND
        with folder.open(INPUT_FILE, "w") as handle:
            json.dump(spec, handle, indent=1)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["-m", self.MODULE, INPUT_FILE]
        codeinfo.stdout_name = self.LOG_FILE
        codeinfo.join_files = True

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = list(self.RETRIEVE)
        return calcinfo
