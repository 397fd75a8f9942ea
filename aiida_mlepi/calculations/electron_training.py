"""`HedgeNetElectronTrainingCalculation` (``mlepi.train_electron``): train HedgeNet-Electron as a CalcJob.

Inputs: ``hamiltonians`` (a namespace of :class:`~aiida_mlepi.data.hamiltonian.HamiltonianData`, in
label order) and ``training_parameters`` ``{'model': HedgeNetElectronConfig fields, 'training':
ElectronTrainingSettings fields, 'split': {'fractions': [...], 'seed': int} or index lists}``.
It writes ``hamiltonians.npz`` and runs ``python -m aiida_mlepi.core.ml.run_electron_training
input.json``; outputs, parser and exit codes are those of
:class:`~aiida_mlepi.calculations.training.ModelTrainingCalculation` (``model`` is a
``TrainedModelData`` with ``model_kind = 'hedgenet-electron'`` and ``test_h_mae_mev``).
"""

from __future__ import annotations

from aiida_mlepi.data.hamiltonian import HamiltonianData

from .training import ModelTrainingCalculation


class HedgeNetElectronTrainingCalculation(ModelTrainingCalculation):
    """Train HedgeNet-Electron on reference H(R) blocks (eV)."""

    MODULE = "aiida_mlepi.core.ml.run_electron_training"
    MODEL_KIND = "hedgenet-electron"
    DATASET_FILE = "hamiltonians.npz"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("hamiltonians", valid_type=HamiltonianData, dynamic=True,
                             help="Reference H(R) of the training structures (at least 3: train/validation/test).")

    @classmethod
    def check_sections(cls, model: dict, training: dict) -> None:
        from aiida_mlepi.core.ml.electron_training import ElectronTrainingSettings
        from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectronConfig

        HedgeNetElectronConfig.from_dict(model)
        ElectronTrainingSettings.from_dict(training)

    def write_dataset(self, folder) -> dict:
        from aiida_mlepi.core.ml.electron_training import save_hamiltonians

        labels = sorted(self.inputs.hamiltonians)
        save_hamiltonians(folder.get_abs_path(self.DATASET_FILE),
                          [self.inputs.hamiltonians[label].get_hamiltonian() for label in labels])
        return {"dataset": self.DATASET_FILE, "dataset_labels": labels}
