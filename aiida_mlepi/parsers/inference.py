"""`InferenceParser` (``mlepi.inference``): outputs of the batched inference CalcJobs.

Reads ``status.json`` (exit codes of :mod:`aiida_mlepi.calculations.ml_job`: 304 when the requested
device, e.g. CUDA, is absent; 302 when the model file does not load) and the result file, and attaches one
output per input label: ``hamiltonians.<label>`` (HamiltonianData with the structure's labels and
``metadata.model_uuid``, as the calcfunction path) or ``forces.<label>`` (ArrayData, as
``compute_model_forces``), plus ``report`` (device, dtype, kernels, timing).
"""

from __future__ import annotations

import io

from aiida import orm
from aiida.common.links import LinkType

from aiida_mlepi.calculations.engine import structure_labels
from aiida_mlepi.calculations.model_forces import model_forces_node
from aiida_mlepi.data.hamiltonian import HamiltonianData

from .script import ScriptParser

STRUCTURES_PREFIX = "structures__"


class InferenceParser(ScriptParser):
    """Parser of :class:`~aiida_mlepi.calculations.inference.ModelInferenceCalculation` jobs."""

    def parse(self, **kwargs):
        status, failed = self.read_status()
        if failed is not None:
            return failed
        cls = self.node.process_class
        if cls.RESULT_FILE not in self._names():
            return self.exit_codes.ERROR_MISSING_OUTPUT_FILES.format(files=cls.RESULT_FILE)
        structures = self._structures()
        labels = sorted(structures)
        content = io.BytesIO(self._read(cls.RESULT_FILE))
        try:
            if cls.TASK == "hamiltonians":
                outputs = self._hamiltonians(content, status, labels, structures)
            else:
                outputs = self._forces(content, labels)
        except (ValueError, KeyError, OSError) as exc:
            return self.exit_codes.ERROR_CORRUPT_METRICS.format(message=f"{cls.RESULT_FILE}: {exc}")
        self.out(cls.TASK, outputs)
        self.out("report", orm.Dict({k: v for k, v in status.items() if k != "metadata"}))
        return None

    def _structures(self) -> dict:
        triples = self.node.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
        return {t.link_label[len(STRUCTURES_PREFIX):]: t.node for t in triples
                if t.link_label.startswith(STRUCTURES_PREFIX)}

    def _hamiltonians(self, content, status: dict, labels: list[str], structures: dict) -> dict:
        from aiida_mlepi.core.ml.electron_training import load_hamiltonians

        hamiltonians = load_hamiltonians(content)
        metadata = status.get("metadata") or [{} for _ in hamiltonians]
        if len(hamiltonians) != len(labels) or len(metadata) != len(labels):
            raise ValueError(f"{len(hamiltonians)} H(R) for {len(labels)} structures")
        model_uuid = self.node.inputs.model.uuid
        out = {}
        for label, h, meta in zip(labels, hamiltonians, metadata):
            h.metadata = {**meta, "model_uuid": model_uuid}
            out[label] = HamiltonianData.from_hamiltonian(h, **structure_labels(structures[label]))
        return out

    def _forces(self, content, labels: list[str]) -> dict:
        import numpy as np

        with np.load(content, allow_pickle=False) as data:
            energies = data["energies"]
            if len(energies) != len(labels):
                raise ValueError(f"{len(energies)} energies for {len(labels)} structures")
            return {label: model_forces_node(energies[k], data[f"{k}_forces"]) for k, label in enumerate(labels)}
