"""`TrainedModelData`: a trained network file (HedgeNet-Phonon, HedgeNet-Electron) as an AiiDA node.

The file itself is in the repository (it loads with ``torch.load(weights_only=True)``). Queryable
attributes: ``model_kind`` (``'hedgenet-phonon'`` / ``'hedgenet-electron'``), ``num_parameters``,
``relations``, ``cutoffs_angstrom`` (relation → Å), ``dtype``, ``atomic_numbers``,
``test_energy_mae_mev_per_atom``, ``test_forces_mae_mev_per_angstrom`` (where the trainer reports
them; other ``test_*`` metrics likewise) and ``loader`` (``"module:function"`` that reads the file,
always inside the ``aiida_mlepi`` package).
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path

from aiida import orm

ALLOWED_LOADER_PREFIX = "aiida_mlepi."


class ModelNodeError(ValueError):
    """The node cannot provide a model (unknown loader, corrupt file, …)."""


class TrainedModelData(orm.SinglefileData):
    """A trained model file with its description as attributes."""

    @classmethod
    def from_bytes(cls, content: bytes, *, model_kind: str, loader: str, description: dict,
                   filename: str = "model.pt") -> "TrainedModelData":
        """``description``: ``num_parameters``, ``relations``, ``cutoffs_angstrom``, ``dtype``,
        ``atomic_numbers`` and ``test`` (a dict of test errors) as written by the trainer."""
        _check_loader(loader)
        node = cls(file=io.BytesIO(content), filename=filename)
        attrs = node.base.attributes
        attrs.set("model_kind", str(model_kind))
        attrs.set("loader", loader)
        for key in ("num_parameters", "relations", "cutoffs_angstrom", "dtype", "atomic_numbers",
                    "num_interactions"):
            if description.get(key) is not None:
                attrs.set(key, description[key])
        for key, value in (description.get("test") or {}).items():
            if isinstance(value, (int, float)):
                attrs.set(f"test_{key}", value)
        return node

    @property
    def model_kind(self) -> str:
        return self.base.attributes.get("model_kind")

    @property
    def atomic_numbers(self) -> list[int]:
        return list(self.base.attributes.get("atomic_numbers", []))

    def file_problem(self, expected_kind: str) -> str | None:
        """Why the stored file is not a readable ``expected_kind`` model (truncated, garbage, another
        network's file, unreadable version), or None. Reads the file header only (milliseconds), so a
        WorkChain can check its model inputs before any stage runs."""
        from aiida_mlepi.core.io.model_file import ModelFileReadError, check_model_file

        name = f"the file {self.filename!r} of TrainedModelData<{self.pk}>"
        try:
            with self.as_path() as path:
                check_model_file(path, expected_kind, name=name)
        except (ModelFileReadError, OSError) as exc:
            return str(exc)
        return None

    def load_model(self):
        """The model object (e.g. :class:`~aiida_mlepi.core.ml.HedgeNetPhonon`), in eval mode."""
        loader = _resolve_loader(self.base.attributes.get("loader", ""))
        with self.as_path() as path:
            return loader(Path(path))


def _check_loader(loader: str) -> None:
    module, _, name = loader.partition(":")
    if not (module.startswith(ALLOWED_LOADER_PREFIX) and name.isidentifier()):
        raise ModelNodeError(f"loader must be 'aiida_mlepi.<module>:<function>', got {loader!r}")


def _resolve_loader(loader: str):
    _check_loader(loader)
    module, _, name = loader.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ModelNodeError(f"cannot import the model loader {loader!r}: {exc}") from None
