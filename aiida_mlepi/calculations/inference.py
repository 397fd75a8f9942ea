"""Batched HedgeNet inference as CalcJobs, so that prediction can leave the daemon (e.g. for a GPU node).

* ``mlepi.predict_hamiltonians`` (:class:`HedgeNetHamiltonianCalculation`): H(R) (eV) of many structures
  with a HedgeNet-Electron model, one job; output namespace ``hamiltonians`` — one
  :class:`~aiida_mlepi.data.hamiltonian.HamiltonianData` per input label, with the attributes of the
  calcfunction path (:func:`~aiida_mlepi.calculations.electron.predict_hedgenet_hamiltonian`: the
  structure's material/temperature/sample labels, ``metadata.model_uuid``).
* ``mlepi.predict_forces`` (:class:`HedgeNetForcesCalculation`): energy (eV) and forces (eV/Å) of many
  structures with a HedgeNet-Phonon model; output namespace ``forces`` — one ArrayData per label, the
  layout of :func:`~aiida_mlepi.calculations.model_forces.compute_model_forces`.

Both run ``python -m aiida_mlepi.core.ml.run_inference input.json`` with the ``code`` (a Python with
``aiida-mlepi[ml]``); ``parameters`` are :class:`~aiida_mlepi.core.ml.run_inference.InferenceSettings`
(``device`` 'cpu' | 'cuda', ``dtype`` float32 | float64 | None, ``batch_size``, ``skin``,
``reuse_topology``). The job pattern and exit codes (300 missing files, 301 unreadable status, 302 corrupt
model, 303 invalid input, 304 device unavailable — e.g. ``device='cuda'`` where there is no CUDA) are
those of :class:`~aiida_mlepi.calculations.ml_job.ScriptCalculation`, shared with the training jobs.
Outputs ``report`` (Dict): device, dtype, kernels, batch size, timing (s) of the load and the prediction.
"""

from __future__ import annotations

from aiida import orm

from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData

from .ml_job import ScriptCalculation

MODEL_FILE = "model.pt"
STRUCTURES_FILE = "structures.npz"
STATUS_FILE = "status.json"
LOG_FILE = "inference.log"


class ModelInferenceCalculation(ScriptCalculation):
    """Generic: ``model`` + ``structures`` → ``python -m aiida_mlepi.core.ml.run_inference`` → per-label outputs."""

    MODULE = "aiida_mlepi.core.ml.run_inference"
    PARSER = "mlepi.inference"
    PARAMETERS_PORT = "parameters"
    PARAMETERS_HELP = ("Inference settings: device ('cpu' | 'cuda'), dtype ('float32' | 'float64'; default float32 "
                       "on a GPU, the model's own on CPU), batch_size, skin (Å), reuse_topology.")
    PARAMETERS_REQUIRED = False
    LOG_FILE = LOG_FILE
    STATUS_FILE = STATUS_FILE
    TASK: str = ""
    RESULT_FILE: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.RETRIEVE = (STATUS_FILE, LOG_FILE, cls.RESULT_FILE)  # what the parser reads, derived from RESULT_FILE

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=TrainedModelData, validator=cls._model_validator,
                   help=f"The trained model ({cls.MODEL_KIND or 'HedgeNet'}).")
        spec.input_namespace("structures", valid_type=LayeredStructureData, dynamic=True,
                             help="The structures, by label (the output labels are the same).")
        spec.output("report", valid_type=orm.Dict, required=False,
                    help="Device, dtype, kernels, batch size and timing (s) of the job.")
        spec.default_output_node = "report"

    @classmethod
    def _model_validator(cls, value, _ctx):
        if value is None or not cls.MODEL_KIND:
            return None
        if value.model_kind != cls.MODEL_KIND:
            return f"the model is a {value.model_kind!r} model, this job needs a {cls.MODEL_KIND!r} one"
        return value.file_problem(cls.MODEL_KIND)

    @classmethod
    def validate_parameters(cls, parameters: dict) -> str | None:
        from aiida_mlepi.core.ml.run_inference import InferenceInputError, InferenceSettings

        try:
            InferenceSettings.from_dict(parameters)
        except (InferenceInputError, TypeError) as exc:
            return f"invalid inference parameters: {exc}"
        return None

    @property
    def labels(self) -> list[str]:
        return sorted(self.inputs.structures)

    def write_inputs(self, folder) -> tuple[dict, list]:
        from aiida_mlepi.core.ml.run_inference import save_structures

        if not self.inputs.structures:
            raise ValueError("no structures to predict")
        save_structures(folder.get_abs_path(STRUCTURES_FILE),
                        [self.inputs.structures[label].get_ase() for label in self.labels])  # with layer ids
        model = self.inputs.model
        return ({"task": self.TASK, "model": MODEL_FILE, "structures": STRUCTURES_FILE, "labels": self.labels},
                [(model.uuid, model.filename, MODEL_FILE)])


class HedgeNetHamiltonianCalculation(ModelInferenceCalculation):
    """H(R) (eV) of many structures from a HedgeNet-Electron model, in one job."""

    MODEL_KIND = "hedgenet-electron"
    TASK = "hamiltonians"
    RESULT_FILE = "hamiltonians.npz"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.output_namespace("hamiltonians", valid_type=HamiltonianData, dynamic=True,
                              help="Predicted H(R) (eV, orthogonal basis) of each structure, by label.")


class HedgeNetForcesCalculation(ModelInferenceCalculation):
    """Energy (eV) and forces (eV/Å) of many structures from a HedgeNet-Phonon model, in one job."""

    MODEL_KIND = "hedgenet-phonon"
    TASK = "forces"
    RESULT_FILE = "forces.npz"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.output_namespace("forces", valid_type=orm.ArrayData, dynamic=True,
                              help="Arrays forces (N, 3) eV/Å and energy (1,) eV of each structure, by label.")
