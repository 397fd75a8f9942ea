"""`TrainingParser` (``mlepi.training``): outputs of any :class:`ModelTrainingCalculation`.

Reads ``metrics.json`` (schema in :mod:`aiida_mlepi.calculations.training`), checks that ``model.pt``
loads with the loader the trainer names, and attaches ``model`` (TrainedModelData), ``metrics``
(Dict; non-finite numbers become None) and ``checkpoint`` (SinglefileData).
"""

from __future__ import annotations

import io

from aiida import orm

from aiida_mlepi.calculations.training import CHECKPOINT_FILE, MODEL_FILE
from aiida_mlepi.data.model import TrainedModelData

from .script import ScriptParser, finite_or_none, load_model_bytes  # noqa: F401  (finite_or_none: re-exported)


class TrainingParser(ScriptParser):
    """Generic parser of the HedgeNet training CalcJobs."""

    def parse(self, **kwargs):
        names = self._names()
        metrics, failed = self.read_status()
        if failed is not None:
            return failed
        if metrics.get("status") == "diverged":
            self.out("metrics", orm.Dict(metrics))
            if CHECKPOINT_FILE in names:
                self.out("checkpoint", self._singlefile(CHECKPOINT_FILE))
            return self.exit_codes.ERROR_TRAINING_DIVERGED.format(epoch=metrics.get("epoch", "?"))
        missing = [name for name in (MODEL_FILE, CHECKPOINT_FILE) if name not in names]
        if missing:
            return self.exit_codes.ERROR_MISSING_OUTPUT_FILES.format(files=", ".join(missing))

        content = self._read(MODEL_FILE)
        expected_kind = getattr(self.node.process_class, "MODEL_KIND", "") if self.node.process_type else ""
        kind = metrics.get("model_kind", "")
        if expected_kind and kind != expected_kind:
            return self.exit_codes.ERROR_CORRUPT_MODEL.format(
                message=f"the trainer wrote a {kind!r} model, this job trains {expected_kind!r}")
        try:
            load_model_bytes(content, metrics.get("loader", ""), MODEL_FILE)
        except Exception as exc:  # any failure to read the file back means it is unusable
            return self.exit_codes.ERROR_CORRUPT_MODEL.format(message=str(exc))

        model = TrainedModelData.from_bytes(content, model_kind=kind, loader=metrics["loader"],
                                            description={**metrics.get("model", {}), "test": metrics.get("test")},
                                            filename=MODEL_FILE)
        self.out("model", model)
        self.out("metrics", orm.Dict(metrics))
        self.out("checkpoint", self._singlefile(CHECKPOINT_FILE))
        return None

    def _singlefile(self, name: str) -> orm.SinglefileData:
        return orm.SinglefileData(file=io.BytesIO(self._read(name)), filename=name)
