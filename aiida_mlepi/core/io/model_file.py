"""The versioned model file shared by HedgeNet-Phonon and HedgeNet-Electron.

A model file is ``torch.save({"format", "version", "config", "state_dict"})`` and loads with
``torch.load(weights_only=True)``. :meth:`ModelFileFormat.read_header` checks format and version
without building the network (milliseconds, no e3nn), so a workflow can reject a truncated,
garbage or mislabelled file before any stage runs; :meth:`ModelFileFormat.load` builds the model.
``torch`` is imported only when a file is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

FORMAT_PREFIX = "aiida-mlepi/"


class ModelFileReadError(ValueError):
    """A model file is corrupt, of another format or version, or its weights do not fit its config."""


class ModelFileError(ModelFileReadError):
    """A model file is corrupt, not a HedgeNet-Phonon file, or its weights do not fit its config."""


class ElectronModelFileError(ModelFileReadError):
    """A model file is corrupt, not a HedgeNet-Electron file, or its weights do not fit its config."""


@dataclass(frozen=True)
class ModelFileFormat:
    """One network's file: ``kind`` (e.g. ``'hedgenet-phonon'``), the ``version`` it writes and the
    versions it reads; ``error`` is the exception type raised for a bad file."""

    kind: str
    label: str
    version: int
    readable_versions: tuple[int, ...]
    error: type[ModelFileReadError]
    #: versions refused with a reason (e.g. weights fitted to a readout that has changed)
    refused_versions: tuple[tuple[int, str], ...] = ()

    @property
    def name(self) -> str:
        """The ``format`` field of the file, e.g. ``'aiida-mlepi/hedgenet-phonon'``."""
        return FORMAT_PREFIX + self.kind

    def save(self, model, path) -> None:
        """Write ``model.config.to_dict()`` and the weights (CPU tensors) to ``path``."""
        import torch

        torch.save({"format": self.name, "version": self.version, "config": model.config.to_dict(),
                    "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)

    def read_header(self, path, *, name: str | None = None) -> dict[str, Any]:
        """The file's payload after checking it is readable, of this format, of a readable version and
        has a config and weights (raises :attr:`error`; ``name`` replaces the path in messages)."""
        import torch

        name = name or str(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises many types for a damaged file
            raise self.error(f"{name} is not a readable {self.label} model file (corrupt or truncated?): "
                             f"{exc}") from exc
        found = payload.get("format") if isinstance(payload, dict) else None
        if found != self.name:
            other = next((f.label for f in MODEL_FILE_FORMATS.values() if f.name == found), None)
            raise self.error(f"{name} is a {other} model file, not a {self.label} one" if other
                             else f"{name} is not a {self.label} model file")
        refused = dict(self.refused_versions)
        if payload.get("version") in refused:
            raise self.error(f"{name} is a version-{payload.get('version')} {self.label} model file, "
                             f"{refused[payload.get('version')]}")
        if payload.get("version") not in self.readable_versions:
            raise self.error(f"{name} has model file version {payload.get('version')}, "
                             f"this code reads version(s) {list(self.readable_versions)}")
        if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state_dict"), dict):
            raise self.error(f"{name} has no model config or no weights")
        return payload

    def load(self, path, build: Callable[[dict], Any]):
        """The model of the file at ``path``, built by ``build(config_dict)``, weights loaded (strict),
        in eval mode (raises :attr:`error`)."""
        payload = self.read_header(path)
        try:
            model = build(payload["config"])
        except (TypeError, ValueError, KeyError) as exc:
            raise self.error(f"{path} has an invalid model config: {exc}") from exc
        try:
            model.load_state_dict(payload["state_dict"], strict=True)
        except (RuntimeError, KeyError) as exc:
            raise self.error(f"the weights in {path} do not match its config "
                             f"(mismatched or edited file): {exc}") from exc
        model.eval()
        return model


PHONON_MODEL_FILE = ModelFileFormat("hedgenet-phonon", "HedgeNet-Phonon", version=2,
                                    readable_versions=(1, 2), error=ModelFileError)
#: electron version 2: off-site blocks from the readout of both directions, ½ [B_ij(R) + B_ji(−R)ᵀ]
#: (independent of the atom order); version-1 weights have the same shapes but fit the old readout
ELECTRON_MODEL_FILE = ModelFileFormat(
    "hedgenet-electron", "HedgeNet-Electron", version=2, readable_versions=(2,), error=ElectronModelFileError,
    refused_versions=((1, "written before the off-site readout was made independent of the atom order; its "
                          "weights were fitted to the old readout and would predict different blocks now: "
                          "retrain the model with this version (file version 2)"),))
#: model kind (the ``model_kind`` attribute of a TrainedModelData) → its file format
MODEL_FILE_FORMATS = {f.kind: f for f in (PHONON_MODEL_FILE, ELECTRON_MODEL_FILE)}


def check_model_file(path: str | Path, kind: str, *, name: str | None = None) -> None:
    """Raise :class:`ModelFileReadError` unless ``path`` is a readable ``kind`` model file (header only)."""
    if kind not in MODEL_FILE_FORMATS:
        raise ModelFileReadError(f"unknown model kind {kind!r}; known: {sorted(MODEL_FILE_FORMATS)}")
    MODEL_FILE_FORMATS[kind].read_header(path, name=name)
