"""Training of HedgeNet-Phonon (or its homogeneous MACE baseline) on energies (eV) and forces (eV/Å).

No AiiDA here: :func:`train` takes a :class:`~aiida_mlepi.core.dataset.ConfigurationSet`, a split
(index sets ``train`` / ``validation`` / ``test``), a :class:`HedgeNetPhononConfig` and a
:class:`TrainingConfig`, and returns a :class:`TrainingResult`.

Recipe (MACE's "weighted" loss, paper Sec. III.1):

* loss = ``energy_weight`` · mean over structures of ((E − E_ref)/N)² (eV²/atom²)
  + ``forces_weight`` · mean over atoms and components of (F − F_ref)² (eV²/Å²);
* the per-element reference energies E0 (model ``atomic_energies``) come from a least-squares fit of
  the training energies on the composition (number of atoms of each element), so the network only
  learns the interaction energy;
* scale and shift of the readout (as mace-torch's ``ScaleShiftMACE``): ``energy_scale`` = RMS of the
  training forces, ``energy_shift`` (eV/atom) such that the freshly initialised network predicts the
  mean training energy per atom. Without the shift the bias-free readouts of a random network add a
  seed-dependent offset of O(1 eV/atom) that the force-dominated loss removes only very slowly;
  training on forces also moves that offset freely (forces do not see it), and the EMA of the weights
  has its own offset, so after every epoch the shift is re-fitted in closed form (least squares of the
  per-atom training energies, one forward pass) for the EMA weights that are evaluated and saved;
* AMSGrad Adam, gradient-norm clipping, an exponential moving average (EMA) of the weights; the
  EMA weights are the ones evaluated (validation/test) and saved;
* early stopping: training stops after ``patience`` epochs without a lower validation loss and the
  EMA weights of the best epoch are kept;
* a learning-rate schedule (``lr_schedule``): ``constant``; ``cosine`` — lr(e) = lr_min + ½ (lr − lr_min)
  (1 + cos(π e / (epochs − 1))) for epoch e = 0 … epochs − 1, so the first epoch runs at ``lr`` and the
  last at ``lr_min`` (SGDR without restarts, Loshchilov & Hutter, ICLR 2017); ``plateau`` — the rate is
  multiplied by ``plateau_factor`` after ``plateau_patience`` epochs without a lower validation loss,
  down to ``lr_min`` (PyTorch's ReduceLROnPlateau, as MACE's default scheduler). A decaying rate lets
  the weights settle into the minimum the force constants (second derivatives) need;
* a checkpoint (model, optimizer, EMA, best weights, history, epoch, shuffling RNG) written after each
  epoch lets :func:`train` resume and continue exactly as an uninterrupted run would.

The checkpoint and model files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..dataset import ConfigurationSet
from .device import resolve_device
from .graph import AtomicGraph, build_graph, collate
from .hedgenet_phonon import HedgeNetPhonon, HedgeNetPhononConfig, save_model

CHECKPOINT_FORMAT = "aiida-mlepi/training-checkpoint"
CHECKPOINT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
LR_SCHEDULES = ("constant", "cosine", "plateau")


class TrainingError(ValueError):
    """Invalid training settings or data (a user mistake)."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, epoch: int, history: list[dict]):
        super().__init__(f"training diverged (non-finite loss) in epoch {epoch}; lower the learning rate")
        self.epoch = epoch
        self.history = history


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not belong to this training run."""


@dataclass
class TrainingConfig:
    """Optimisation settings. ``epochs`` is the total epoch count (also when resuming)."""

    epochs: int = 100
    batch_size: int = 4  #: structures per optimisation step
    lr: float = 1e-2  #: Adam learning rate
    energy_weight: float = 1.0  #: weight of the per-atom energy MSE (eV²)
    forces_weight: float = 100.0  #: weight of the force MSE (eV²/Å²)
    ema_decay: float = 0.99  #: EMA of the weights; 0 disables it
    patience: int = 50  #: epochs without validation improvement before stopping
    max_grad_norm: float = 10.0  #: gradient-norm clip; 0 disables it
    weight_decay: float = 0.0
    seed: int = 0  #: initial weights and shuffling
    device: str = "cpu"
    dtype: str = "float32"  #: overrides the model config's dtype
    lr_schedule: str = "constant"  #: constant | cosine | plateau (see the module docstring)
    lr_min: float = 0.0  #: final (cosine) or lowest (plateau) learning rate
    plateau_factor: float = 0.5  #: plateau: multiplies the rate at each reduction
    plateau_patience: int = 10  #: plateau: epochs without validation improvement before a reduction

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.patience < 1:
            raise TrainingError("epochs must be ≥ 0, batch_size and patience ≥ 1")
        if not (self.lr >= 0 and math.isfinite(self.lr)):
            raise TrainingError(f"lr must be a non-negative number, got {self.lr}")
        if self.energy_weight < 0 or self.forces_weight < 0 or self.energy_weight + self.forces_weight == 0:
            raise TrainingError("energy_weight and forces_weight must be ≥ 0 and not both zero")
        if not 0 <= self.ema_decay < 1:
            raise TrainingError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.dtype not in _DTYPES:
            raise TrainingError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0 <= self.lr_min <= self.lr:
            raise TrainingError(f"lr_min must be in [0, lr = {self.lr}], got {self.lr_min}")
        if not 0 < self.plateau_factor < 1 or self.plateau_patience < 1:
            raise TrainingError("plateau_factor must be in (0, 1) and plateau_patience ≥ 1")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise TrainingError(f"unknown training settings {sorted(unknown)}; known: "
                                f"{sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def model_config_from_dict(values: dict) -> HedgeNetPhononConfig:
    """A :class:`HedgeNetPhononConfig` from a plain dict, with a clear error for unknown keys."""
    unknown = set(values) - set(HedgeNetPhononConfig.__dataclass_fields__)
    if unknown:
        raise TrainingError(f"unknown model settings {sorted(unknown)}; known: "
                            f"{sorted(HedgeNetPhononConfig.__dataclass_fields__)}")
    return HedgeNetPhononConfig(**values)


# ---------------------------------------------------------------------------------------------- LR schedule
def cosine_learning_rate(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """Cosine-annealed rate of (0-based) ``epoch`` out of ``epochs``: ``lr`` first, ``lr_min`` last."""
    if epochs <= 1:
        return lr
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * min(epoch, epochs - 1) / (epochs - 1)))


@dataclass
class PlateauState:
    """ReduceLROnPlateau bookkeeping: the current rate and the epochs since the last improvement/cut."""

    lr: float
    best: float = math.inf
    wait: int = 0

    def step(self, val_loss: float, tc: "TrainingConfig") -> None:
        """After an epoch with validation loss ``val_loss``: cut the rate after ``plateau_patience`` bad epochs."""
        if val_loss < self.best:
            self.best, self.wait = val_loss, 0
            return
        self.wait += 1
        if self.wait >= tc.plateau_patience:
            self.lr, self.wait = max(tc.lr_min, self.lr * tc.plateau_factor), 0


def epoch_learning_rate(tc: "TrainingConfig", epoch: int, plateau: PlateauState) -> float:
    """Learning rate of (0-based) ``epoch`` under ``tc.lr_schedule``."""
    if tc.lr_schedule == "cosine":
        return cosine_learning_rate(epoch, tc.epochs, tc.lr, tc.lr_min)
    if tc.lr_schedule == "plateau":
        return plateau.lr
    return tc.lr


# ---------------------------------------------------------------------------------------------- EMA
class ExponentialMovingAverage:
    """shadow ← decay · shadow + (1 − decay) · parameter after each optimisation step.

    The shadow starts at the initial parameters, so after k steps with constant parameters p it is
    ``p + decay**k · (p0 − p)``.
    """

    def __init__(self, parameters: Sequence[torch.nn.Parameter], decay: float):
        self.parameters = list(parameters)
        self.decay = float(decay)
        self.shadow = [p.detach().clone() for p in self.parameters]
        self.num_updates = 0

    @torch.no_grad()
    def update(self) -> None:
        for s, p in zip(self.shadow, self.parameters):
            s.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)
        self.num_updates += 1

    @contextmanager
    def average_parameters(self) -> Iterator[None]:
        """Temporarily put the EMA weights into the model."""
        saved = [p.detach().clone() for p in self.parameters]
        with torch.no_grad():
            for p, s in zip(self.parameters, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(self.parameters, saved):
                    p.copy_(s)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise CheckpointError("the EMA state does not match the model's parameters")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.shadow = [s.to(p) for s, p in zip(state["shadow"], self.parameters)]


# ---------------------------------------------------------------------------------------------- data
def composition_matrix(configurations: ConfigurationSet, atomic_numbers: Sequence[int]) -> np.ndarray:
    """(M, n_elements) number of atoms of each element in each configuration."""
    return np.array([[int(np.sum(atoms.numbers == z)) for z in atomic_numbers]
                     for atoms in configurations.structures], dtype=float)


def fit_atomic_energies(configurations: ConfigurationSet, atomic_numbers: Sequence[int]) -> np.ndarray:
    """Per-element reference energies E0 (eV) from least squares E_m ≈ Σ_Z n_mZ E0_Z.

    With one composition only the fit is degenerate; the minimum-norm solution then gives every
    element the same mean energy per atom, which is the sensible choice.
    """
    counts = composition_matrix(configurations, atomic_numbers)
    solution, *_ = np.linalg.lstsq(counts, configurations.energies, rcond=None)
    return solution


def fit_scale_shift(model: HedgeNetPhonon, cache: "_GraphCache", indices: Sequence[int],
                    batch_size: int = 8) -> tuple[float, float]:
    """(energy_scale, energy_shift) for ``model`` on the configurations ``indices`` of ``cache``.

    scale = RMS of the reference force components (eV/Å; 1 if all forces vanish); shift (eV/atom) =
    mean over those configurations of (E − Σ_i E0[Z_i]) / N − scale · (mean per-atom readout of the
    network as it is), so that the model then predicts the mean energy per atom exactly.
    """
    forces = torch.cat([cache.forces[i] for i in indices]).double()
    rms = float(forces.pow(2).mean().sqrt())
    scale = rms if rms > 1e-8 and math.isfinite(rms) else 1.0
    residual, readout, n_total = 0.0, 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            batch = cache.batch(list(indices[start:start + batch_size]))
            node_attrs = batch.graph.node_attrs
            e0 = model.atomic_energies_fn(node_attrs)[:, 0].double().sum()
            out = model(batch.graph, compute_forces=False)
            residual += float(batch.energies.double().sum() - e0)
            readout += float(out["node_readout"].double().sum())
            n_total += int(batch.num_atoms.sum())
    return scale, residual / n_total - scale * readout / n_total


def refit_energy_shift(model: HedgeNetPhonon, cache: "_GraphCache", indices: Sequence[int],
                       batch_size: int = 8) -> float:
    """Set ``model.config.energy_shift`` to the least-squares value on ``indices`` (per-atom energies)."""
    residual, n_total = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            batch = cache.batch(list(indices[start:start + batch_size]))
            out = model(batch.graph, compute_forces=False)
            residual += float(((batch.energies - out["energy"]) / batch.num_atoms).double().sum())
            n_total += len(batch.num_atoms)
    shift = model.config.energy_shift + residual / n_total
    model.config = replace(model.config, energy_shift=shift)
    return shift


@dataclass
class _Batch:
    graph: AtomicGraph
    energies: torch.Tensor  #: (G,) eV
    forces: torch.Tensor  #: (N, 3) eV/Å
    num_atoms: torch.Tensor  #: (G,)


def _graph_to(graph: AtomicGraph, device: torch.device, dtype: torch.dtype) -> AtomicGraph:
    return AtomicGraph(positions=graph.positions.to(device, dtype), node_attrs=graph.node_attrs.to(device, dtype),
                       batch=graph.batch.to(device), cell=graph.cell.to(device, dtype),
                       edge_index={r: v.to(device) for r, v in graph.edge_index.items()},
                       unit_shifts={r: v.to(device, dtype) for r, v in graph.unit_shifts.items()},
                       num_graphs=graph.num_graphs)


class _GraphCache:
    """Graphs of every configuration, built once."""

    def __init__(self, configurations: ConfigurationSet, config: HedgeNetPhononConfig, device: torch.device):
        dtype = config.torch_dtype
        self.device, self.dtype = device, dtype
        self.graphs = [build_graph(atoms, config.atomic_numbers, config.cutoffs, dtype)
                       for atoms in configurations.structures]
        self.energies = torch.tensor(configurations.energies, dtype=dtype)
        self.forces = [torch.tensor(f, dtype=dtype) for f in configurations.forces]

    def batch(self, indices: Sequence[int]) -> _Batch:
        indices = [int(i) for i in indices]
        graph = _graph_to(collate([self.graphs[i] for i in indices]), self.device, self.dtype)
        return _Batch(graph=graph, energies=self.energies[indices].to(self.device),
                      forces=torch.cat([self.forces[i] for i in indices]).to(self.device),
                      num_atoms=torch.tensor([self.graphs[i].num_atoms for i in indices],
                                             dtype=self.dtype, device=self.device))


def _loss_terms(model: HedgeNetPhonon, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
    out = model(batch.graph, compute_forces=True)
    de = (out["energy"] - batch.energies) / batch.num_atoms
    df = out["forces"] - batch.forces
    return (de ** 2).mean(), (df ** 2).mean(), {"de": de.detach(), "df": df.detach()}


@dataclass
class Errors:
    """Errors of a model on a set of configurations (meV, Å)."""

    energy_mae_mev_per_atom: float
    energy_rmse_mev_per_atom: float
    forces_mae_mev_per_angstrom: float
    forces_rmse_mev_per_angstrom: float
    loss: float
    num_configurations: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(model: HedgeNetPhonon, cache: _GraphCache, indices: Sequence[int], config: TrainingConfig) -> Errors:
    """Loss and MAE/RMSE of ``model`` on ``indices`` (forces need autograd, so no ``no_grad``)."""
    model.eval()
    de_all, df_all, n_atoms = [], [], []
    for start in range(0, len(indices), config.batch_size):
        chunk = list(indices[start:start + config.batch_size])
        batch = cache.batch(chunk)
        _, _, parts = _loss_terms(model, batch)
        de_all.append(parts["de"].cpu().double())
        df_all.append(parts["df"].cpu().double().reshape(-1))
        n_atoms.append(batch.num_atoms.cpu())
    de = torch.cat(de_all)
    df = torch.cat(df_all)
    loss = config.energy_weight * float((de ** 2).mean()) + config.forces_weight * float((df ** 2).mean())
    return Errors(energy_mae_mev_per_atom=1e3 * float(de.abs().mean()),
                  energy_rmse_mev_per_atom=1e3 * float(de.pow(2).mean().sqrt()),
                  forces_mae_mev_per_angstrom=1e3 * float(df.abs().mean()),
                  forces_rmse_mev_per_angstrom=1e3 * float(df.pow(2).mean().sqrt()),
                  loss=loss, num_configurations=len(indices))


# ---------------------------------------------------------------------------------------------- result
@dataclass
class TrainingResult:
    """Outcome of :func:`train`: the best EMA model and the learning curve."""

    model: HedgeNetPhonon
    history: list[dict]  #: per epoch: epoch (1-based), train_loss, val_loss
    best_epoch: int
    best_val_loss: float
    epochs_run: int  #: total epochs completed (including those before a resume)
    stopped_early: bool
    test: Errors | None
    validation: Errors | None
    training_config: TrainingConfig
    split_sizes: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """JSON-ready summary (the ``metrics.json`` of a training CalcJob)."""
        cfg = self.model.config
        return {
            "status": "finished",
            "model_kind": "hedgenet-phonon",
            "loader": "aiida_mlepi.core.ml.hedgenet_phonon:load_model",
            "model": {"num_parameters": self.model.num_parameters(), "relations": list(cfg.relations),
                      "cutoffs_angstrom": dict(cfg.cutoffs), "dtype": cfg.dtype,
                      "atomic_numbers": list(cfg.atomic_numbers), "num_interactions": cfg.num_interactions,
                      "config": cfg.to_dict()},
            "hyperparameters": self.training_config.to_dict(),
            "seed": self.training_config.seed,
            "split_sizes": dict(self.split_sizes),
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "test": self.test.to_dict() if self.test else None,
            "validation": self.validation.to_dict() if self.validation else None,
        }


# ---------------------------------------------------------------------------------------------- checkpoint
def _read_checkpoint(path: str | Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint file at {path}") from None
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path} is not a readable training checkpoint (corrupt?): {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an aiida-mlepi training checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, "
                              f"this code reads version {CHECKPOINT_VERSION}")
    return payload


def _normalise_split(split: dict, n: int) -> dict[str, list[int]]:
    out = {}
    for key in ("train", "validation", "test"):
        values = [int(i) for i in np.asarray(split.get(key, []), dtype=int).reshape(-1)]
        if any(i < 0 or i >= n for i in values):
            raise TrainingError(f"split[{key!r}] has indices outside 0..{n - 1}")
        out[key] = values
    if not out["train"]:
        raise TrainingError("the split has no training configurations")
    if set(out["train"]) & (set(out["validation"]) | set(out["test"])):
        raise TrainingError("training indices overlap the validation/test indices")
    return out


# ---------------------------------------------------------------------------------------------- train
def train(model_config: HedgeNetPhononConfig, configurations: ConfigurationSet, split: dict,
          training_config: TrainingConfig = TrainingConfig(), checkpoint_path: str | Path | None = None,
          resume_from: str | Path | None = None, progress: bool = True,
          fit_reference_energies: bool = True) -> TrainingResult:
    """Train and return the EMA weights of the epoch with the lowest validation loss.

    ``split`` maps ``train`` / ``validation`` / ``test`` to configuration indices (see
    :func:`aiida_mlepi.core.dataset.split_indices`); without validation indices the training loss
    drives early stopping. ``resume_from`` continues a run from its checkpoint up to
    ``training_config.epochs`` epochs in total.
    """
    tc = training_config
    split = _normalise_split(split, len(configurations))
    elements = set(int(z) for atoms in configurations.structures for z in atoms.numbers)
    missing = sorted(elements - set(model_config.atomic_numbers))
    if missing:
        raise TrainingError(f"the data contain atomic numbers {missing} that are not in the model's "
                            f"atomic_numbers {list(model_config.atomic_numbers)}")
    checkpoint = _read_checkpoint(resume_from) if resume_from is not None else None
    if checkpoint is not None:
        model_config = HedgeNetPhononConfig(**checkpoint["model_config"])
        if checkpoint["split"] != split:
            raise CheckpointError("the checkpoint was written for a different train/validation/test split")
        if model_config.dtype != tc.dtype:
            raise CheckpointError(f"the checkpoint has dtype {model_config.dtype}, the settings {tc.dtype}")
    else:
        model_config = replace(model_config, dtype=tc.dtype)
        if fit_reference_energies:
            e0 = fit_atomic_energies(configurations.subset(split["train"]), model_config.atomic_numbers)
            model_config = replace(model_config, atomic_energies=tuple(float(e) for e in e0))

    device = resolve_device(tc.device)  # DeviceUnavailableError (with the reason) for a missing GPU
    torch.manual_seed(tc.seed)
    model = HedgeNetPhonon(model_config).to(device)
    cache = _GraphCache(configurations, model_config, device)
    if checkpoint is None and fit_reference_energies:
        scale, shift = fit_scale_shift(model, cache, split["train"])
        model_config = replace(model_config, energy_scale=scale, energy_shift=shift)
        model.config = model_config
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, amsgrad=True, weight_decay=tc.weight_decay)
    ema = ExponentialMovingAverage(model.parameters(), tc.ema_decay)
    shuffler = torch.Generator().manual_seed(tc.seed + 1)
    history: list[dict] = []
    epoch = 0
    best_epoch, best_val, best_state, since_best = 0, math.inf, None, 0
    best_shift = model_config.energy_shift
    plateau = PlateauState(lr=tc.lr)
    # checkpoints of older versions have no fitted shift (energy_scale 1): keep their recipe
    refit_shift = fit_reference_energies and (checkpoint is None or "best_energy_shift" in checkpoint)
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["model_state"])
            optimizer.load_state_dict(checkpoint["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"the checkpoint's weights do not fit its model: {exc}") from None
        ema.load_state_dict(checkpoint["ema_state"])
        ema.decay = tc.ema_decay
        shuffler.set_state(checkpoint["rng_state"])
        history = list(checkpoint["history"])
        epoch = int(checkpoint["epoch"])
        best_epoch, best_val = int(checkpoint["best_epoch"]), float(checkpoint["best_val_loss"])
        best_state, since_best = checkpoint["best_state"], int(checkpoint["epochs_since_best"])
        best_shift = float(checkpoint.get("best_energy_shift", model_config.energy_shift))
        if "plateau_state" in checkpoint:  # older checkpoints: constant rate so far
            plateau = PlateauState(**checkpoint["plateau_state"])

    train_idx = torch.tensor(split["train"], dtype=torch.int64)
    monitor = split["validation"] or split["train"]
    stopped_early = since_best >= tc.patience

    bar = _progress_bar(total=tc.epochs, initial=epoch, enabled=progress)
    try:
        while epoch < tc.epochs and not stopped_early:
            model.train()
            lr = epoch_learning_rate(tc, epoch, plateau)
            for group in optimizer.param_groups:
                group["lr"] = lr
            order = train_idx[torch.randperm(len(train_idx), generator=shuffler)].tolist()
            total, steps = 0.0, 0
            for start in range(0, len(order), tc.batch_size):
                batch = cache.batch(order[start:start + tc.batch_size])
                e_loss, f_loss, _ = _loss_terms(model, batch)
                loss = tc.energy_weight * e_loss + tc.forces_weight * f_loss
                if not torch.isfinite(loss):
                    history.append({"epoch": epoch + 1, "train_loss": float("nan"), "val_loss": float("nan")})
                    raise TrainingDivergedError(epoch + 1, history)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tc.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                optimizer.step()
                ema.update()
                total += float(loss.detach())
                steps += 1
            epoch += 1
            with ema.average_parameters():
                if refit_shift:
                    refit_energy_shift(model, cache, split["train"])
                val = evaluate(model, cache, monitor, tc).loss
                if not math.isfinite(val):
                    history.append({"epoch": epoch, "train_loss": total / steps, "val_loss": float("nan")})
                    raise TrainingDivergedError(epoch, history)
                if val < best_val:
                    best_epoch, best_val, since_best = epoch, val, 0
                    best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
                    best_shift = model.config.energy_shift
                else:
                    since_best += 1
            history.append({"epoch": epoch, "train_loss": total / steps, "val_loss": val, "lr": lr})
            plateau.step(val, tc)
            stopped_early = since_best >= tc.patience
            if checkpoint_path is not None:
                _write_checkpoint(checkpoint_path, model, optimizer, ema, shuffler, epoch, history,
                                  best_epoch, best_val, best_state, since_best, split, tc, best_shift, plateau)
            bar.update(1)
            bar.set_postfix(train=f"{total / steps:.3g}", val=f"{val:.3g}", best=best_epoch)
    finally:
        bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
        model.config = replace(model.config, energy_shift=best_shift)
    model.eval()
    validation = evaluate(model, cache, split["validation"], tc) if split["validation"] else None
    test = evaluate(model, cache, split["test"], tc) if split["test"] else None
    return TrainingResult(model=model, history=history, best_epoch=best_epoch, best_val_loss=best_val,
                          epochs_run=epoch, stopped_early=stopped_early, test=test, validation=validation,
                          training_config=tc, split_sizes={k: len(v) for k, v in split.items()})


def _write_checkpoint(path, model, optimizer, ema, shuffler, epoch, history, best_epoch, best_val,
                      best_state, since_best, split, tc, best_shift, plateau) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "model_config": model.config.to_dict(), "training_config": tc.to_dict(),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(), "ema_state": ema.state_dict(),
        "rng_state": shuffler.get_state(), "epoch": epoch, "history": history,
        "best_epoch": best_epoch, "best_val_loss": best_val, "best_state": best_state,
        "epochs_since_best": since_best, "split": split, "best_energy_shift": best_shift,
        "plateau_state": asdict(plateau),
    }
    tmp = Path(str(path) + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def checkpoint_epoch(path: str | Path) -> int:
    """Number of epochs completed in a checkpoint."""
    return int(_read_checkpoint(path)["epoch"])


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="epoch", disable=not enabled,
                dynamic_ncols=True)


def save_result(result: TrainingResult, model_path: str | Path) -> None:
    """Write the trained (best EMA) model."""
    save_model(result.model, model_path)
