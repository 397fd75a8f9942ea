"""What the parsers of every :class:`~aiida_mlepi.calculations.ml_job.ScriptCalculation` share.

:class:`ScriptParser` reads the job's JSON status file and turns a missing/unreadable file or an
``"error"`` status into the shared exit codes (300, 301, 302, 303, 304; see
:mod:`aiida_mlepi.calculations.ml_job`); :func:`finite_or_none` makes JSON values storable.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mlepi.calculations.ml_job import REASON_EXIT_CODES
from aiida_mlepi.data.model import ModelNodeError, _resolve_loader


def finite_or_none(value):
    """JSON value with NaN/inf replaced by None (the database stores no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


class ScriptParser(Parser):
    """Base of the HedgeNet job parsers: the status file and its error reasons."""

    def _read(self, name: str) -> bytes:
        return self.retrieved.base.repository.get_object_content(name, mode="rb")

    def _names(self) -> set[str]:
        return set(self.retrieved.base.repository.list_object_names())

    def read_status(self) -> tuple[dict | None, ExitCode | None]:
        """``(status, None)``, or ``(None, exit code)`` for a missing/unreadable file or an ``"error"`` status."""
        name = self.node.process_class.STATUS_FILE
        if name not in self._names():
            return None, self.exit_codes.ERROR_MISSING_OUTPUT_FILES.format(files=name)
        try:
            status = json.loads(self._read(name).decode())
            if not isinstance(status, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            return None, self.exit_codes.ERROR_CORRUPT_METRICS.format(message=str(exc))
        status = finite_or_none(status)
        if status.get("status") == "error":
            label = REASON_EXIT_CODES.get(status.get("reason"), "ERROR_INVALID_TRAINING_INPUT")
            return None, getattr(self.exit_codes, label).format(message=status.get("message", "?"))
        return status, None


def load_model_bytes(content: bytes, loader: str, filename: str = "model.pt"):
    """Load a model with its loader from a temporary file (raises on a corrupt/mismatched file)."""
    try:
        function = _resolve_loader(loader)
    except ModelNodeError as exc:
        raise ValueError(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        path.write_bytes(content)
        return function(path)
