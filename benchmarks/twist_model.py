"""Train a small HedgeNet-Electron on reference-engine bilayers with every stacking, for twisted cells.

A twisted bilayer contains every local registry (AA, AB, BA, saddle points) in one cell, so the
training set is 3×3 bilayers with the top layer slid by a uniformly random in-plane shift
(``PerturbationSettings.shift_fraction = 1``), small thermal-like displacements and interlayer
distances near the twisted cell's 3.35 Å, plus two small commensurate twisted cells (θ = 13.2°,
76 atoms; 9.4°, 148 atoms). Test: the 7.3° cell (244 atoms), never seen in training.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/twist_model.py --minutes 10 \
        --save-model benchmarks/output/hedgenet_electron_twist.pt

The model is then used by ``benchmarks/magic_angle_bands.py --model ...``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.ml.electron_training import ElectronTrainingSettings, evaluate, train_electron_model
from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig, save_model
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.core.stacking import twisted_bilayer_graphene
from aiida_mlepi.core.structures import graphene_bilayer

#: perturbations of the training bilayers: all registries, σ = 0.02 Å displacements, d = 3.35 ± 0.1 Å
TWIST_PERTURBATIONS = PerturbationSettings(supercell=(3, 3), displacement_std_angstrom=0.02, shift_fraction=1.0,
                                           separation_delta_angstrom=(-0.1, 0.1))


def train_twist_model(n_configs: int = 24, minutes: float = 10.0, epochs: int = 400, layers: int = 2,
                      seed: int = 0, checkpoint: str | None = None, log=print) -> HedgeNetElectron:
    """A HedgeNet-Electron fitted to the engine's H(R) of slid 3×3 bilayers and two small twisted cells."""
    engine = ReferenceEngine()
    confs = perturbed_configurations(graphene_bilayer("AB"), n_configs, TWIST_PERTURBATIONS, seed=2024)
    data = [engine.hamiltonian(a) for a in confs]
    twisted = {m: engine.hamiltonian(twisted_bilayer_graphene(m=m)) for m in (2, 3, 4)}
    n_val = max(1, round(0.15 * len(data)))
    train = data[:-2 * n_val] + [twisted[2]]
    val = data[-2 * n_val:-n_val] + [twisted[3]]
    test = data[-n_val:]
    log(f"data: {len(train)} train / {len(val)} validation / {len(test)} test (slid 3×3 bilayers + twisted "
        f"m=2 in train, m=3 in validation; m=4 held out)")
    settings = ElectronTrainingSettings(max_epochs=epochs, learning_rate=5e-3, batch_size=2, patience=40,
                                        seed=seed, max_time_s=60.0 * minutes)
    start = time.perf_counter()
    resume = checkpoint if checkpoint and Path(checkpoint).exists() else None
    result = train_electron_model(HedgeNetElectronConfig(num_layers=layers), train, val, test, settings,
                                  checkpoint_path=checkpoint, resume_from=resume,
                                  log=lambda line: print(line, flush=True))
    held_out = evaluate(result.model, [twisted[4]])
    log(f"trained {result.epochs_run} epochs in {time.perf_counter() - start:.0f} s: test MAE "
        f"{result.test.mae_mev:.2f} meV (on-site {result.test.onsite_mae_mev:.2f}, off-site "
        f"{result.test.offsite_mae_mev:.2f}); twisted m=4 (θ = 7.34°, 244 atoms, held out) MAE "
        f"{held_out.mae_mev:.2f} meV, max |error| {held_out.max_abs_error_mev:.1f} meV")
    return result.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=24)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--save-model", default="benchmarks/output/hedgenet_electron_twist.pt")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file: written every epoch, resumed if present")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = train_twist_model(args.configs, args.minutes, args.epochs, checkpoint=args.checkpoint)
    Path(args.save_model).parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.save_model)
    print(f"saved to {args.save_model}")


if __name__ == "__main__":
    main()
