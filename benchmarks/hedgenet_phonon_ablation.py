"""HedgeNet-Phonon ablation and transfer (paper Sec. III.1, Table I and Fig. 4 in spirit).

1. Training set: perturbed 4×4 AB bilayer graphene supercells (64 atoms; in-layer displacements plus
   rigid layer shifts/separations) labelled by the reference engine with kpts (3, 3, 1) (≈ 12×12 in
   the unit cell), split 0.81 / 0.09 / 0.10.
2. Three models trained with the same recipe: HedgeNet-Phonon (intra + inter relations, L layers),
   homogeneous MACE with L layers and with 2L layers (one relation, cutoff max(r_intra, r_inter)).
   Printed: parameter counts, test energy MAE (meV/atom) and force MAE (meV/Å).
3. Transfer: the 4×4-trained HedgeNet predicts every phonon mode of the 6×6 supercell
   (144 atoms, :func:`aiida_mlepi.core.phonons.compute_supercell_modes`), against the reference engine
   (unit cell relaxed with kpts (12, 12, 1), 6×6 forces with kpts (2, 2, 1)); printed: mode-by-mode
   |Δω| max and mean (cm⁻¹); plot in ``benchmarks/output/hedgenet_phonon_6x6_modes.png``.
   The residual force of the undisplaced supercell is subtracted from each displaced one (for the
   relaxed reference it is ~0; for the model it removes its small equilibrium error).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/hedgenet_phonon_ablation.py [--quick] [--configs N]
[--epochs E]``. The CPU defaults (40 configurations, 24 epochs, 8 channels) took 15 min on the shared
2-core machine; measured there (seed 0), test energy / force MAE: HedgeNet-Phonon (2 layers, 12 912
parameters) 1.3 meV/atom / 105 meV/Å, homogeneous MACE 2 layers (6 536) 2.3 / 134, 4 layers (14 504)
2.3 / 98 (per-atom energy spread: predicting the mean gives 29.8 meV/atom). 6×6 transfer: |Δω| max
81 cm⁻¹, mean 15 cm⁻¹; imaginary modes: reference 0, model 2. Give it more data and epochs (or a GPU, ``device``) for paper-like accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from aiida_mlepi.calculations.labelling import label_configurations
from aiida_mlepi.core.dataset import PAPER_SPLIT, split_indices
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.engine.relax import relaxed_bilayer_graphene
from aiida_mlepi.core.ml import HedgeNetCalculator, HedgeNetPhononConfig
from aiida_mlepi.core.ml.training import TrainingConfig, train
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.core.phonons import compute_supercell_modes
from aiida_mlepi.core.structures import in_plane_supercell

OUTPUT = Path(__file__).resolve().parent / "output"


def model_configs(layers: int, channels: int) -> dict[str, HedgeNetPhononConfig]:
    base = HedgeNetPhononConfig(num_channels=channels, max_ell=2, max_L=1, correlation=2, num_interactions=layers,
                                radial_mlp=(32, 32), r_max_intra=4.5, r_max_inter=6.0)
    return {
        f"HedgeNet-Phonon ({layers} layers)": base,
        f"MACE homogeneous ({layers} layers)": replace(base, heterogeneous=False),
        f"MACE homogeneous ({2 * layers} layers)": replace(base, heterogeneous=False, num_interactions=2 * layers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few configurations and epochs (a smoke run)")
    parser.add_argument("--configs", type=int, default=None, help="number of labelled 4×4 configurations")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--layers", type=int, default=2, help="interaction layers of HedgeNet (MACE: L and 2L)")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_configs = args.configs or (12 if args.quick else 40)
    epochs = args.epochs or (2 if args.quick else 24)
    torch.set_num_threads(1)
    OUTPUT.mkdir(parents=True, exist_ok=True)

    engine = ReferenceEngine()
    t0 = time.perf_counter()
    unit = relaxed_bilayer_graphene(engine, "AB", kpts=(12, 12, 1))
    a = float(np.linalg.norm(unit.cell[0]))
    print(f"relaxed AB bilayer: a = {a:.4f} Å ({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    structures = perturbed_configurations(unit, n_configs, PerturbationSettings(supercell=(4, 4)), seed=args.seed)
    data = label_configurations(structures, engine, (3, 3, 1))
    split = split_indices(len(data), PAPER_SPLIT, seed=args.seed)
    print(f"labelled {len(data)} configurations of {data.num_atoms[0]} atoms with kpts (3,3,1) "
          f"in {time.perf_counter() - t0:.1f} s; split {[len(split[k]) for k in ('train', 'validation', 'test')]}")

    tc = TrainingConfig(epochs=epochs, batch_size=4, lr=1e-2, energy_weight=1.0, forces_weight=100.0,
                        ema_decay=0.9, patience=max(10, epochs // 3), seed=args.seed)  # 8 steps/epoch: short EMA
    rows, trained = [], {}
    for name, config in model_configs(args.layers, args.channels).items():
        t0 = time.perf_counter()
        result = train(config, data, split, tc, progress=False)
        elapsed = time.perf_counter() - t0
        rows.append({"model": name, "parameters": result.model.num_parameters(),
                     "energy_mae_mev_per_atom": result.test.energy_mae_mev_per_atom,
                     "forces_mae_mev_per_angstrom": result.test.forces_mae_mev_per_angstrom,
                     "best_epoch": result.best_epoch, "epochs": result.epochs_run, "train_s": elapsed})
        trained[name] = result.model
        print(f"  trained {name}: {elapsed:.0f} s", flush=True)

    forces_std = 1e3 * np.concatenate([data.forces[i] for i in split["test"]]).std()
    e_atom = data.energies / np.asarray(data.num_atoms, dtype=float)
    e_test, e_train = e_atom[split["test"]], e_atom[split["train"]]
    print(f"\nper-atom energy spread: std {1e3 * e_atom.std():.1f} meV/atom; predicting the training mean gives "
          f"a test MAE of {1e3 * np.abs(e_test - e_train.mean()).mean():.1f} meV/atom")
    print(f"Test set ({len(split['test'])} configurations; force std {forces_std:.0f} meV/Å), "
          f"{epochs} epochs max, same recipe for all models")
    print(f"{'model':<34} {'params':>8} {'E MAE (meV/atom)':>17} {'F MAE (meV/Å)':>14} {'best ep':>8} {'time (s)':>9}")
    for r in rows:
        print(f"{r['model']:<34} {r['parameters']:>8d} {r['energy_mae_mev_per_atom']:>17.3f} "
              f"{r['forces_mae_mev_per_angstrom']:>14.1f} {r['best_epoch']:>8d} {r['train_s']:>9.0f}")

    # ---------------------------------------------------------------- transfer to the 6×6 phonons
    hedgenet = trained[next(iter(trained))]
    t0 = time.perf_counter()
    supercell = in_plane_supercell(unit, 6)
    ref_residual = engine.compute(supercell, kpts=(2, 2, 1)).forces
    reference = compute_supercell_modes(
        unit, (6, 6, 1), lambda atoms: engine.compute(atoms, kpts=(2, 2, 1)).forces - ref_residual)
    t_ref = time.perf_counter() - t0

    calc = HedgeNetCalculator(hedgenet)

    def model_forces(atoms):
        atoms = atoms.copy()
        atoms.calc = calc
        return atoms.get_forces()

    t0 = time.perf_counter()
    residual = model_forces(supercell)
    predicted = compute_supercell_modes(unit, (6, 6, 1), lambda atoms: model_forces(atoms) - residual)
    t_model = time.perf_counter() - t0
    w_ref, w_ml = reference.frequencies_cm1, predicted.frequencies_cm1  # sorted, one per mode
    delta = np.abs(w_ml - w_ref)
    print(f"\n6×6 supercell ({len(supercell)} atoms, {w_ref.size} modes): reference {t_ref:.0f} s, "
          f"HedgeNet {t_model:.1f} s; residual |F| of the undisplaced cell: model "
          f"{1e3 * np.abs(residual).max():.1f} meV/Å, reference {1e3 * np.abs(ref_residual).max():.2f} meV/Å")
    print(f"mode-by-mode |Δω|: max {delta.max():.1f} cm⁻¹, mean {delta.mean():.1f} cm⁻¹ "
          f"(reference ω_max {w_ref.max():.0f} cm⁻¹); imaginary modes: reference {reference.n_imaginary()}, "
          f"model {predicted.n_imaginary()}")
    plot_path = OUTPUT / "hedgenet_phonon_6x6_modes.png"
    _plot(w_ref, w_ml, plot_path)
    print(f"plot: {plot_path}")
    (OUTPUT / "hedgenet_phonon_ablation.json").write_text(json.dumps({
        "configs": n_configs, "epochs": epochs, "rows": rows,
        "phonons_6x6": {"max_abs_delta_cm1": float(delta.max()), "mean_abs_delta_cm1": float(delta.mean())}},
        indent=1))


def _plot(w_ref: np.ndarray, w_ml: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    index = np.arange(w_ref.size)
    ax1.plot(index, w_ref, "k-", lw=1.5, label="reference engine")
    ax1.plot(index, w_ml, "r--", lw=1.2, label="HedgeNet-Phonon (trained on 4×4)")
    ax1.set_xlabel("mode index (sorted)")
    ax1.set_ylabel("ω (cm⁻¹)")
    ax1.set_title("6×6 AB bilayer graphene: all supercell modes")
    ax1.legend()
    ax2.scatter(w_ref, w_ml, s=6)
    lim = [min(w_ref.min(), w_ml.min()), max(w_ref.max(), w_ml.max())]
    ax2.plot(lim, lim, "k:", lw=1)
    ax2.set_xlabel("ω reference (cm⁻¹)")
    ax2.set_ylabel("ω HedgeNet (cm⁻¹)")
    ax2.set_title(f"|Δω| max {np.abs(w_ml - w_ref).max():.0f}, mean {np.abs(w_ml - w_ref).mean():.1f} cm⁻¹")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    main()
