"""Training core of HedgeNet-Electron (no AiiDA): H(R) datasets → a model, with EMA, early stopping, resume.

* dataset: a list of :class:`~aiida_mlepi.core.hamiltonian.HamiltonianR` (e.g. the reference engine on
  perturbed bilayer-graphene supercells); :func:`save_hamiltonians` / :func:`load_hamiltonians` store
  them in one ``.npz`` (no pickle);
* loss: mean squared error over all block entries (eV²) of each structure, averaged over a batch;
* exponential moving average (EMA) of the weights, evaluated for validation and kept as the model;
* early stopping on the validation MAE (``patience`` epochs), learning rate halved on plateaus;
* seeded (weights and the per-epoch shuffling), per-epoch losses in ``history``;
* test MAE (meV) over all block entries of the test structures, on site and off site separately;
* checkpoint after every epoch (``torch.load(weights_only=True)``-safe), exact resume.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..hamiltonian import HamiltonianR
from .device import resolve_device
from .electron_graph import ElectronGraph, graph_to
from .hedgenet_electron import (MODEL_FILE_VERSION, HedgeNetElectron, HedgeNetElectronConfig,
                                ElectronModelFileError, check_model_version, save_model)

CHECKPOINT_FORMAT = "aiida-mlepi/hedgenet-electron-checkpoint"
MODEL_KIND = "hedgenet-electron"
LOADER = "aiida_mlepi.core.ml.hedgenet_electron:load_model"


class ElectronTrainingError(ValueError):
    """Invalid training settings or data."""


class ElectronTrainingDiverged(RuntimeError):
    """The loss became NaN/inf."""

    def __init__(self, epoch: int, history: list[dict]):
        super().__init__(f"the training loss is not finite in epoch {epoch}; lower the learning rate")
        self.epoch, self.history = epoch, history


@dataclass
class ElectronTrainingSettings:
    """Optimisation settings (learning rate in 1/step units of Adam)."""

    max_epochs: int = 50
    learning_rate: float = 5e-3
    batch_size: int = 2  #: structures per optimisation step
    ema_decay: float = 0.99
    patience: int = 15  #: stop after this many epochs without a better validation MAE
    lr_patience: int = 5  #: halve the learning rate after this many epochs without improvement
    min_learning_rate: float = 1e-5
    seed: int = 0
    max_time_s: float | None = None  #: stop (as if converged) after this wall time
    device: str = "cpu"  #: 'cpu' or 'cuda' (the model's dtype is kept: float32 unless the config says float64)

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.lr_patience < 1:
            raise ElectronTrainingError("max_epochs, batch_size, patience and lr_patience must be ≥ 1")
        if not 0 < self.learning_rate < 1:
            raise ElectronTrainingError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.ema_decay < 1:
            raise ElectronTrainingError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @classmethod
    def from_dict(cls, values: dict) -> "ElectronTrainingSettings":
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ElectronTrainingError(f"unknown training settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BlockErrors:
    """Mean absolute errors over block entries, meV."""

    mae_mev: float
    onsite_mae_mev: float
    offsite_mae_mev: float
    max_abs_error_mev: float
    num_values: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ElectronTrainingResult:
    model: HedgeNetElectron  #: the best EMA weights
    settings: ElectronTrainingSettings
    history: list[dict] = field(default_factory=list)  #: epoch, train_loss (eV²), val_mae_mev, lr, time_s
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    test: BlockErrors | None = None
    validation: BlockErrors | None = None

    def metrics(self) -> dict:
        """The ``metrics.json`` content of the training CalcJob contract."""
        c = self.model.config
        return {"status": "finished", "model_kind": MODEL_KIND, "loader": LOADER,
                "model": {"num_parameters": self.model.num_parameters(), "relations": list(c.relations),
                          "cutoffs_angstrom": c.cutoffs, "dtype": c.dtype, "atomic_numbers": list(c.atomic_numbers),
                          "num_interactions": c.num_layers},
                "hyperparameters": {"model": c.to_dict(), "training": self.settings.to_dict()},
                "seed": self.settings.seed, "history": self.history, "best_epoch": self.best_epoch,
                "epochs_run": self.epochs_run, "stopped_early": self.stopped_early,
                "validation": self.validation.to_dict() if self.validation else None,
                "test": ({"h_mae_mev": self.test.mae_mev, "h_onsite_mae_mev": self.test.onsite_mae_mev,
                          "h_offsite_mae_mev": self.test.offsite_mae_mev,
                          "h_max_abs_error_mev": self.test.max_abs_error_mev} if self.test else None)}


class WeightAverage:
    """EMA of the weights with the usual warm-up: decay_n = min(decay, (1 + n)/(10 + n)) after n updates."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model, self.decay, self.num_updates = model, float(decay), 0
        self.shadow = {k: p.detach().clone() for k, p in model.named_parameters()}

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        for k, p in self.model.named_parameters():
            self.shadow[k].mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.num_updates += 1

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Temporarily load the averaged weights into the model."""
        saved = {k: p.detach().clone() for k, p in self.model.named_parameters()}
        self._copy(self.shadow)
        try:
            yield
        finally:
            self._copy(saved)

    @torch.no_grad()
    def _copy(self, values: dict) -> None:
        for k, p in self.model.named_parameters():
            p.copy_(values[k])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the averaged weights do not match the model's parameters")
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


# ---------------------------------------------------------------------------- dataset files
def save_hamiltonians(path: str | Path, hamiltonians: Sequence[HamiltonianR]) -> None:
    """Store H(R) of several structures in one ``.npz`` (loads with ``allow_pickle=False``)."""
    arrays = {"count": np.array([len(hamiltonians)])}
    for k, h in enumerate(hamiltonians):
        arrays.update({f"{k}_cell": h.cell, f"{k}_positions": h.positions, f"{k}_numbers": h.numbers,
                       f"{k}_edges": h.edges, f"{k}_h_values": h.h_values,
                       f"{k}_pbc": np.array(h.pbc, dtype=bool),
                       f"{k}_basis": np.array(json.dumps({str(z): list(ls) for z, ls in h.basis.items()}))})
        if h.s_values is not None:
            arrays[f"{k}_s_values"] = h.s_values
    np.savez_compressed(path, **arrays)


def load_hamiltonians(path: str | Path) -> list[HamiltonianR]:
    """Read :func:`save_hamiltonians` output (raises :class:`ElectronTrainingError` on a bad file)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out = []
            for k in range(int(data["count"][0])):
                basis = {int(z): tuple(ls) for z, ls in json.loads(str(data[f"{k}_basis"])).items()}
                out.append(HamiltonianR(
                    cell=data[f"{k}_cell"], positions=data[f"{k}_positions"], numbers=data[f"{k}_numbers"],
                    basis=basis, edges=data[f"{k}_edges"], h_values=data[f"{k}_h_values"],
                    s_values=data[f"{k}_s_values"] if f"{k}_s_values" in data.files else None,
                    pbc=tuple(bool(p) for p in data[f"{k}_pbc"])))
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ElectronTrainingError(f"{path} is not a readable H(R) dataset: {exc}") from exc
    return out


# ---------------------------------------------------------------------------- evaluation
def _errors(model: HedgeNetElectron, graphs: Sequence[ElectronGraph]) -> BlockErrors:
    diffs, onsite_mask = [], []
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for g in graphs:
            g = graph_to(g, device)
            diffs.append((model(g) - g.target.to(model.config.torch_dtype)).abs().double().cpu().numpy())
            onsite_mask.append(_onsite_values(g))
    d, on = np.concatenate(diffs), np.concatenate(onsite_mask)
    mev = 1000.0
    return BlockErrors(mae_mev=float(d.mean() * mev),
                       onsite_mae_mev=float(d[on].mean() * mev) if on.any() else float("nan"),
                       offsite_mae_mev=float(d[~on].mean() * mev) if (~on).any() else float("nan"),
                       max_abs_error_mev=float(d.max() * mev), num_values=int(d.size))


def _onsite_values(g: ElectronGraph) -> np.ndarray:
    """True for the entries of on-site blocks (i = j, R = 0) of ``g.template``."""
    h = g.template
    onsite = (h.edges[:, 3] == h.edges[:, 4]) & ~h.edges[:, :3].any(axis=1)
    sizes = np.diff(h.block_offsets)
    return np.repeat(onsite, sizes)


def evaluate(model: HedgeNetElectron, hamiltonians: Sequence[HamiltonianR]) -> BlockErrors:
    """MAE (meV) of the model's blocks against reference H(R) (on their edge lists)."""
    return _errors(model, [model.graph(h) for h in hamiltonians])


# ---------------------------------------------------------------------------- training
def _read_checkpoint(path: str | Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # corrupt/truncated file
        raise ElectronModelFileError(f"{path} is not a readable HedgeNet-Electron checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ElectronModelFileError(f"{path} is not a HedgeNet-Electron checkpoint")
    check_model_version(state.get("model_version", 1), path, "checkpoint")  # unversioned: written by version 1
    return state


def train_electron_model(config: HedgeNetElectronConfig, train: Sequence[HamiltonianR],
                         validation: Sequence[HamiltonianR], test: Sequence[HamiltonianR] = (),
                         settings: ElectronTrainingSettings = ElectronTrainingSettings(),
                         checkpoint_path: str | Path | None = None, resume_from: str | Path | None = None,
                         log: Callable[[str], None] | None = None) -> ElectronTrainingResult:
    """Fit ``config``'s model to the blocks (eV) of ``train``; select/stop on ``validation``; report ``test``."""
    if not train or not validation:
        raise ElectronTrainingError("need at least one training and one validation structure")
    device = resolve_device(settings.device)  # DeviceUnavailableError (with the reason) for a missing GPU
    torch.manual_seed(settings.seed)
    model = HedgeNetElectron(config).to(device)
    train_graphs = [graph_to(model.graph(h), device) for h in train]
    val_graphs = [graph_to(model.graph(h), device) for h in validation]
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    model.set_onsite_reference(train)
    ema = WeightAverage(model, settings.ema_decay)
    history: list[dict] = []
    best_val, best_epoch, bad, lr_bad, start_epoch = math.inf, 0, 0, 0, 0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}

    if resume_from is not None:
        state = _read_checkpoint(resume_from)
        if state.get("config") != config.to_dict():
            raise ElectronModelFileError(f"{resume_from} was written for a different model config")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            ema.load_state_dict(state["ema"])
            best_state = state["best_state"]
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ElectronModelFileError(f"{resume_from} does not match the model: {exc}") from exc
        history = list(state["history"])
        best_val, best_epoch = float(state["best_val"]), int(state["best_epoch"])
        bad, lr_bad, start_epoch = int(state["bad_epochs"]), int(state["lr_bad_epochs"]), int(state["epoch"])

    t0 = time.perf_counter()
    stopped_early = False
    epoch = start_epoch
    for epoch in range(start_epoch + 1, settings.max_epochs + 1):
        if bad >= settings.patience:
            stopped_early = True
            epoch -= 1
            break
        model.train()
        order = torch.randperm(len(train_graphs), generator=torch.Generator().manual_seed(settings.seed * 100003 + epoch))
        losses = []
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size].tolist()
            optimizer.zero_grad()
            loss = sum(((model(train_graphs[k]) - train_graphs[k].target.to(config.torch_dtype)) ** 2).mean()
                       for k in batch) / len(batch)
            if not torch.isfinite(loss):
                raise ElectronTrainingDiverged(epoch, history)
            loss.backward()
            optimizer.step()
            ema.update()
            losses.append(float(loss.detach()))
        with ema.averaged():
            val = _errors(model, val_graphs).mae_mev
            if val < best_val:
                best_val, best_epoch, bad, lr_bad = val, epoch, 0, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                lr_bad += 1
        if lr_bad >= settings.lr_patience:
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"] * 0.5, settings.min_learning_rate)
            lr_bad = 0
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val / 1000.0,
               "val_mae_mev": val, "lr": optimizer.param_groups[0]["lr"],
               "time_s": time.perf_counter() - t0}
        history.append(row)
        if log:
            log(f"epoch {epoch}: train MSE {row['train_loss']:.3e} eV², validation MAE {val:.2f} meV")
        if checkpoint_path is not None:
            torch.save({"format": CHECKPOINT_FORMAT, "model_version": MODEL_FILE_VERSION,
                        "config": config.to_dict(), "settings": settings.to_dict(),
                        "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "ema": ema.state_dict(), "best_state": best_state, "best_val": best_val,
                        "best_epoch": best_epoch, "bad_epochs": bad, "lr_bad_epochs": lr_bad,
                        "history": history}, checkpoint_path)
        if settings.max_time_s is not None and time.perf_counter() - t0 > settings.max_time_s:
            stopped_early = True
            break

    model.load_state_dict(best_state)
    model.eval()
    result = ElectronTrainingResult(model=model, settings=settings, history=history, best_epoch=best_epoch,
                                    epochs_run=epoch, stopped_early=stopped_early)
    result.validation = _errors(model, val_graphs)
    if test:
        result.test = evaluate(model, test)
    return result


def save_result(result: ElectronTrainingResult, model_path: str | Path) -> None:
    """Write the best model (:func:`~.hedgenet_electron.save_model`)."""
    save_model(result.model, model_path)
