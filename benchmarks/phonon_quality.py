"""Phonon quality of HedgeNet-Phonon on the 6×6 production supercell, trained on 4×4 cells (issue 9.4).

One run = one experiment: dataset (perturbed 4×4 AB bilayer graphene labelled by the reference engine with
kpts (3, 3, 1), the ``balanced`` dataset protocol's perturbations) → training (the ``balanced`` model of
protocols/pipeline.yaml) → every Γ mode of the 6×6 supercell (phonopy, 0.01 Å) from the model vs the
reference engine (kpts (2, 2, 1)) → mode-by-mode |Δω| (cm⁻¹, :func:`mode_differences`, as the pipeline's
ground-truth check), imaginary modes, train time. Each run appends a row to
``benchmarks/output/phonon_quality.jsonl``; ``--table`` prints every row so far.

The model's phonons are computed three ways: as the pipeline does (forward displacements only, forces as
predicted), with the residual force of the undisplaced supercell subtracted, and with central (±)
differences; each in the training dtype and in float64 (the float32 weights cast to float64).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/phonon_quality.py --name baseline
    OMP_NUM_THREADS=1 python benchmarks/phonon_quality.py --name harmonic --plot \\
        --perturbations '{"harmonic_fraction": 0.5, "harmonic_displacement_std_angstrom": 0.02}' \\
        --training '{"epochs": 600, "lr_schedule": "cosine", "lr_min": 1e-4}'
    python benchmarks/phonon_quality.py --table
    OMP_NUM_THREADS=1 python benchmarks/phonon_quality.py --cell-limit 3 4 5 6

``--cell-limit``: the engine's exact force constants of n×n cells, Fourier-interpolated to the 6×6 q-grid — what a
perfect model of n×n training data would give (4×4: mean 2.74, max 48.3 cm⁻¹, at the TO mode of K, which the 4×4
cell does not contain). Defaults (model, training, split, perturbations) are read from the ``balanced`` protocols.

Measured (2026-12-06, shared 2-core machine at load 25–30, 1 thread; train CPU ≈ 80 s per 200 epochs of 13
training cells; wall ≈ 45 min each under that load). 6×6 engine: 432 modes, ω_max 1711 cm⁻¹, no imaginary mode:

=============================================  ========  ========  =====  ======  =======
setting (16 4×4 cells unless said, 200 epochs)  mean|Δω|  max|Δω|   imag   F MAE   CPU s
=============================================  ========  ========  =====  ======  =======
balanced before (σ 0.05 Å, random stackings)      21.2      76.1     2     113      80
  + cosine lr 0.01 → 1e-4                          23.1      73.3     3     127      81
σ 0.02 Å, relaxed stacking only, cosine            15.4      73.0     2      41      86
8 random + 8 harmonic + 8 phonopy ±0.02, cosine    14.7      72.6     2      72     127
harmonic_fraction 0.5 (σ 0.02) = balanced now      19.3      61.4     2      78      96
  + energy_weight 1000 (MACE stage-two style)       30.2      82.6     2     127      95
=============================================  ========  ========  =====  ======  =======

(cm⁻¹; F MAE in meV/Å on each run's own test cells). Forward vs ± differences, residual subtraction and a
float64 evaluation change |Δω| by < 0.01 cm⁻¹: the error is the network's, not the finite differences'.
The two imaginary modes are the Γ interlayer shear pair (engine 24 cm⁻¹): its force constant,
≈ 0.03 eV/Å² per atom, is far below what a 40–100 meV/Å force error resolves. Every run's best epoch was
its last: the networks are undertrained at 200 epochs.

Dataset options (see :class:`aiida_mlepi.core.perturbations.PerturbationSettings`) are passed with
``--perturbations '{json}'``; training options (:class:`TrainingConfig`) with ``--training '{json}'``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from aiida_mlepi.calculations.labelling import label_configurations
from aiida_mlepi.calculations.pipeline import mode_differences
from aiida_mlepi.core.dataset import ConfigurationSet, split_indices
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.engine.relax import relaxed_bilayer_graphene
from aiida_mlepi.core.ml import HedgeNetPhononConfig
from aiida_mlepi.core.ml.calculator import predict
from aiida_mlepi.core.ml.hedgenet_phonon import HedgeNetPhonon
from aiida_mlepi.core.ml.training import TrainingConfig, save_result, train
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.core.phonons import UNIT_PRIMITIVE, PhononSetup, _to_phonopy_atoms
from aiida_mlepi.core.units import THZ_TO_CM1
from aiida_mlepi.workchains.dataset import protocol_inputs, supercell_kpoints
from aiida_mlepi.workchains.pipeline import PROTOCOL_FILE as PIPELINE_PROTOCOLS

OUTPUT = Path(__file__).resolve().parent / "output"
RESULTS = OUTPUT / "phonon_quality.jsonl"
CACHE = OUTPUT / "phonon_quality_cache"
#: the `balanced` HedgeNet-Phonon, its training and split (protocols/pipeline.yaml) and dataset (protocols/dataset.yaml)
_PIPELINE = protocol_inputs("balanced", None, PIPELINE_PROTOCOLS)["phonon_training"]["training_parameters"]
BALANCED_MODEL = dict(_PIPELINE["model"])
BALANCED_TRAINING = dict(_PIPELINE["training"])
BALANCED_SPLIT = tuple(_PIPELINE["split"]["fractions"])
BALANCED_PERTURBATIONS = protocol_inputs("balanced")["perturbations"]
KPTS_4X4, KPTS_6X6 = (3, 3, 1), (2, 2, 1)  # ≈ 12×12 in the unit cell, as the balanced protocols


def reference(engine: ReferenceEngine):
    """Relaxed AB unit cell and the engine's 6×6 modes (cached on disk: they never change)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    unit = relaxed_bilayer_graphene(engine, "AB", kpts=(12, 12, 1))
    path = CACHE / "engine_6x6_cm1.npy"
    if path.exists():
        return unit, np.load(path)
    setup = PhononSetup.create(unit, (6, 6, 1))
    forces = [engine.compute(atoms, kpts=KPTS_6X6).forces for atoms in setup.displaced_supercells()]
    w = setup.supercell_modes(forces).frequencies_cm1
    np.save(path, w)
    return unit, w


def model_modes(model: HedgeNetPhonon, unit, dtype: str) -> dict[str, np.ndarray]:
    """6×6 frequencies (cm⁻¹) of ``model`` evaluated in ``dtype``: pipeline-style, residual-subtracted, ±."""
    if model.config.dtype != dtype:
        cast = HedgeNetPhonon(replace(model.config, dtype=dtype))
        cast.load_state_dict({k: v.to(cast.config.torch_dtype) if v.is_floating_point() else v
                              for k, v in model.state_dict().items()})
        model = cast.eval()
    out = {}
    setup = PhononSetup.create(unit, (6, 6, 1))
    with torch.enable_grad():
        _, forces = predict(model, setup.displaced_supercells() + [setup.supercell], batch_size=2)
    residual = forces.pop()
    out["pipeline"] = setup.supercell_modes(forces).frequencies_cm1
    out["residual"] = setup.supercell_modes([f - residual for f in forces]).frequencies_cm1
    pm = _plus_minus(PhononSetup.create(unit, (6, 6, 1)))
    with torch.enable_grad():
        _, forces = predict(model, pm.displaced_supercells(), batch_size=2)
    out["plusminus"] = pm.supercell_modes(forces).frequencies_cm1
    return out


def cell_limit(engine: ReferenceEngine, unit, w_ref: np.ndarray, n: int) -> str:
    """The engine's exact force constants of the n×n cell, Fourier-interpolated to the 36 q-points of the 6×6
    cell (phonopy): the 6×6 spectrum a perfect model of n×n training data would give (n×n Γ-cell ≠ 6×6 q-grid:
    q-points of the 6×6 cell the n×n one does not contain, e.g. K for 3 ∤ n, come from the interpolation)."""
    from phonopy import Phonopy

    kpts = tuple(supercell_kpoints([12, 12, 1], [n, n]))  # ≈ 12×12 in the unit cell: (3, 3, 1) for 4×4, as KPTS_4X4
    setup = PhononSetup.create(unit, (n, n, 1))
    fc = setup.force_constants([engine.compute(a, kpts=kpts).forces for a in setup.displaced_supercells()])
    phonon = Phonopy(_to_phonopy_atoms(unit), supercell_matrix=np.diag([n, n, 1]), primitive_matrix=UNIT_PRIMITIVE)
    phonon.force_constants = fc
    phonon.run_qpoints([[i / 6, j / 6, 0.0] for i in range(6) for j in range(6)])
    w = np.asarray(phonon.get_qpoints_dict()["frequencies"]).ravel() * THZ_TO_CM1
    d = mode_differences(w, w_ref)
    worst = np.sort(w_ref)[np.argmax(d["abs_difference_cm1"])]  # |Δω| is mode by mode in ascending order
    return (f"engine force constants of the {n}×{n} cell → 6×6 modes: mean |Δω| {d['mean_abs_difference_cm1']:.2f}, "
            f"max {d['max_abs_difference_cm1']:.1f} cm⁻¹ (at the engine's {worst:.0f} cm⁻¹ mode), "
            f"{d['num_imaginary_ml']} imaginary")


def _plus_minus(setup: PhononSetup) -> PhononSetup:
    """``setup`` with each displacement followed by its opposite (central differences)."""
    first = []
    for d in setup.dataset["first_atoms"]:
        first.append(d)
        first.append({"number": d["number"], "displacement": [-x for x in d["displacement"]]})
    return PhononSetup(unitcell=setup.unitcell, supercell_matrix=setup.supercell_matrix,
                       displacement_angstrom=setup.displacement_angstrom,
                       dataset={"natom": setup.dataset["natom"], "first_atoms": first}, symprec=setup.symprec)


def dataset(unit, engine, n: int, settings: PerturbationSettings, seed: int) -> ConfigurationSet:
    """``n`` perturbed 4×4 cells labelled by the engine (≈ 0.3 s each: not worth caching)."""
    return label_configurations(perturbed_configurations(unit, n, settings, seed=seed), engine, KPTS_4X4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="experiment")
    parser.add_argument("--configs", type=int, default=16, help="labelled 4×4 configurations (balanced: 16)")
    parser.add_argument("--perturbations", default="{}", help="JSON of PerturbationSettings fields")
    parser.add_argument("--training", default="{}", help="JSON of TrainingConfig fields (over balanced)")
    parser.add_argument("--model", default="{}", help="JSON of HedgeNetPhononConfig fields (over balanced)")
    parser.add_argument("--extra", default=None, help="JSON {n, perturbations}: a second family of configurations")
    parser.add_argument("--phonopy", type=float, default=0.0,
                        help="add the ± phonopy displaced 4×4 supercells at this amplitude (Å)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", action="store_true", help="print the results so far and exit")
    parser.add_argument("--plot", action="store_true", help="save ML vs engine frequencies")
    parser.add_argument("--cell-limit", type=int, nargs="*", default=None, metavar="N",
                        help="print what the engine's own force constants of an N×N cell (default 4 5) give for the "
                             "6×6 modes, i.e. the best any model trained on N×N cells can do, and exit")
    parser.add_argument("--progress", action="store_true", help="progress bar of the training")
    args = parser.parse_args()
    if args.table:
        print_table()
        return
    if args.cell_limit is not None:
        engine = ReferenceEngine()
        unit, w_ref = reference(engine)
        for n in args.cell_limit or [4, 5]:
            print(cell_limit(engine, unit, w_ref, n))
        return
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    engine = ReferenceEngine()
    unit, w_ref = reference(engine)

    settings = PerturbationSettings.from_dict({**BALANCED_PERTURBATIONS, **json.loads(args.perturbations)})
    t0 = time.perf_counter()
    data = dataset(unit, engine, args.configs, settings, args.seed)
    if args.extra:
        extra = json.loads(args.extra)
        more = PerturbationSettings.from_dict({"supercell": [4, 4], **extra.get("perturbations", {})})
        data = data + dataset(unit, engine, int(extra["n"]), more, args.seed + 1000)
    if args.phonopy > 0:
        setup = _plus_minus(PhononSetup.create(unit, (4, 4, 1), displacement_angstrom=args.phonopy))
        data = data + label_configurations(setup.displaced_supercells(), engine, KPTS_4X4)
    t_label = time.perf_counter() - t0
    split = split_indices(len(data), BALANCED_SPLIT, seed=0)
    tc = TrainingConfig.from_dict({**BALANCED_TRAINING, **json.loads(args.training)})
    config = HedgeNetPhononConfig(**{**BALANCED_MODEL, **json.loads(args.model)})
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(config, data, split, tc, progress=args.progress)
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    save_result(result, CACHE / f"model_{args.name}.pt")
    row = {"name": args.name, "configs": len(data), "perturbations": settings.as_dict(), "extra": args.extra,
           "phonopy": args.phonopy,
           "training": json.loads(args.training), "model": json.loads(args.model), "label_s": t_label,
           "train_s": t_train, "train_cpu_s": c_train, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
           "test_forces_mae_mev_per_angstrom": result.test.forces_mae_mev_per_angstrom,
           "load": os.getloadavg()[0]}
    modes = {}
    for dtype in sorted({tc.dtype, "float64"}):
        for how, w in model_modes(result.model, unit, dtype).items():
            diff = mode_differences(w, w_ref)
            row[f"{how}_{dtype}"] = {k: diff[k] for k in ("mean_abs_difference_cm1", "max_abs_difference_cm1",
                                                          "num_imaginary_ml")}
            modes[f"{how}_{dtype}"] = w
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    np.savez(CACHE / f"modes_{args.name}.npz", engine=w_ref, **modes)
    print_table(only=args.name)
    if args.plot:
        path = OUTPUT / f"phonon_quality_{args.name}.png"
        _plot(w_ref, modes["pipeline_float64"], modes["plusminus_float64"], path, args.name)
        print(f"plot: {path}")


def print_table(only: str | None = None) -> None:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    if only:
        rows = [r for r in rows if r["name"] == only][-1:]
    print(f"{'experiment':<28} {'eval':<18} {'mean|Δω|':>9} {'max|Δω|':>8} {'imag':>5} {'F MAE':>7} "
          f"{'train s':>8} {'CPU s':>6} {'epochs':>7} {'load':>5}")
    for r in rows:
        for key in [k for k in r if isinstance(r[k], dict) and "mean_abs_difference_cm1" in r[k]]:
            d = r[key]
            print(f"{r['name']:<28} {key:<18} {d['mean_abs_difference_cm1']:>9.2f} {d['max_abs_difference_cm1']:>8.1f} "
                  f"{d['num_imaginary_ml']:>5d} {r['test_forces_mae_mev_per_angstrom']:>7.1f} {r['train_s']:>8.0f} "
                  f"{r.get('train_cpu_s', 0):>6.0f} {r['epochs_run']:>7d} {r['load']:>5.1f}")


def _plot(w_ref, w_pipeline, w_pm, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    index = np.arange(w_ref.size)
    ax1.plot(index, w_ref, "k-", lw=1.5, label="reference engine")
    ax1.plot(index, w_pipeline, "r--", lw=1.0, label="HedgeNet (pipeline: forward differences)")
    ax1.plot(index, w_pm, "b:", lw=1.0, label="HedgeNet (± differences)")
    ax1.set_xlabel("mode index (sorted)")
    ax1.set_ylabel("ω (cm⁻¹)")
    ax1.set_title(f"6×6 AB bilayer graphene, {title}")
    ax1.legend(fontsize=8)
    ax2.plot(w_ref, w_pipeline - w_ref, "r.", ms=3, label="forward")
    ax2.plot(w_ref, w_pm - w_ref, "b.", ms=3, label="±")
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_xlabel("ω engine (cm⁻¹)")
    ax2.set_ylabel("ω HedgeNet − ω engine (cm⁻¹)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
