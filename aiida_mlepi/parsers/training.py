"""`TrainingParser` (``mlepi.training``): outputs of any :class:`ModelTrainingCalculation`.

Reads ``metrics.json`` (schema in :mod:`aiida_mlepi.calculations.training`), checks that ``model.pt``
loads with the loader the trainer names, and attaches ``model`` (TrainedModelData), ``metrics``
(Dict; non-finite numbers become None) and ``checkpoint`` (SinglefileData).
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

from aiida import orm
from aiida.parsers import Parser

from aiida_mlepi.calculations.training import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE
from aiida_mlepi.data.model import ModelNodeError, TrainedModelData, _resolve_loader


def finite_or_none(value):
    """JSON value with NaN/inf replaced by None (the database stores no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


class TrainingParser(Parser):
    """Generic parser of the HedgeNet training CalcJobs."""

    def _read(self, name: str) -> bytes:
        return self.retrieved.base.repository.get_object_content(name, mode="rb")

    def parse(self, **kwargs):
        names = set(self.retrieved.base.repository.list_object_names())
        if METRICS_FILE not in names:
            return self.exit_codes.ERROR_MISSING_OUTPUT_FILES.format(files=METRICS_FILE)
        try:
            metrics = json.loads(self._read(METRICS_FILE).decode())
            if not isinstance(metrics, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            return self.exit_codes.ERROR_CORRUPT_METRICS.format(message=str(exc))
        metrics = finite_or_none(metrics)
        status = metrics.get("status")
        if status == "error":
            return self.exit_codes.ERROR_INVALID_TRAINING_INPUT.format(message=metrics.get("message", "?"))
        if status == "diverged":
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
            _load_bytes(content, metrics.get("loader", ""))
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


def _load_bytes(content: bytes, loader: str):
    """Load the model with its loader from a temporary file (raises on a corrupt/mismatched file)."""
    try:
        function = _resolve_loader(loader)
    except ModelNodeError as exc:
        raise ValueError(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        path.write_bytes(content)
        return function(path)
