"""Benchmark HedgeNet-Electron against the homogeneous (DeepH-E3-like) baseline on reference-engine H(R).

Prints: parameter counts; held-out MAE (meV) of HedgeNet-Electron (L layers), homogeneous (L) and
homogeneous (2L); MAE on a twisted bilayer never seen in training; ⟨vF⟩ error vs the engine on a
few 6×6 samples (0.03 Å Gaussian displacements, thermal-like); prediction time per configuration vs
the engine for 144 atoms and the twisted cell. CPU defaults finish in < 30 min on 2 cores.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/hedgenet_electron.py [--configs 24] [--minutes 6]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.ml.electron_training import ElectronTrainingSettings, evaluate, train_electron_model
from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectronConfig, predict_hamiltonian, save_model
from aiida_mlepi.core.observables import fermi_velocity
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.core.stacking import twisted_bilayer_graphene
from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=24, help="perturbed 3×3 bilayers (60/20/20 split)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=6.0, help="training wall time per model")
    parser.add_argument("--twist-m", type=int, default=3, help="commensurate twist index m (r = 1)")
    parser.add_argument("--vf-samples", type=int, default=3)
    parser.add_argument("--save-model", default="benchmarks/output/hedgenet_electron.pt",
                        help="where the trained HedgeNet-Electron is written (for large_twisted_bands.py --model)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    engine = ReferenceEngine()
    unit = graphene_bilayer("AB")
    confs = perturbed_configurations(unit, args.configs, PerturbationSettings(supercell=(3, 3)), seed=2024)
    data = [engine.hamiltonian(a) for a in confs]
    n_val = n_test = max(1, round(0.2 * len(data)))
    train, val, test = data[:-n_val - n_test], data[-n_val - n_test:-n_test], data[-n_test:]
    twisted = twisted_bilayer_graphene(m=args.twist_m)
    h_twist = engine.hamiltonian(twisted)
    print(f"data: {len(train)}/{len(val)}/{len(test)} perturbed 3×3 AB bilayers (36 atoms); twisted "
          f"θ = {twisted.info['twist_angle_deg']:.2f}° ({len(twisted)} atoms), never seen in training")

    variants = {"HedgeNet-Electron": dict(heterogeneous=True, num_layers=args.layers),
                f"homogeneous ({args.layers} layers)": dict(heterogeneous=False, num_layers=args.layers),
                f"homogeneous ({2 * args.layers} layers)": dict(heterogeneous=False, num_layers=2 * args.layers)}
    settings = ElectronTrainingSettings(max_epochs=args.epochs, learning_rate=5e-3, batch_size=2, patience=30,
                                        seed=0, max_time_s=60.0 * args.minutes)
    models = {}
    print(f"{'model':26s} {'params':>8s} {'epochs':>6s} {'test MAE':>10s} {'on-site':>9s} {'off-site':>9s} "
          f"{'twisted MAE':>12s}  (meV)")
    for name, kw in variants.items():
        result = train_electron_model(HedgeNetElectronConfig(**kw), train, val, test, settings)
        tw = evaluate(result.model, [h_twist])
        models[name] = result.model
        print(f"{name:26s} {result.model.num_parameters():8d} {result.epochs_run:6d} {result.test.mae_mev:10.2f} "
              f"{result.test.onsite_mae_mev:9.2f} {result.test.offsite_mae_mev:9.2f} {tw.mae_mev:12.2f}", flush=True)

    model = models["HedgeNet-Electron"]
    Path(args.save_model).parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.save_model)
    print(f"HedgeNet-Electron saved to {args.save_model}")
    base = in_plane_supercell(unit, 6)
    rng = np.random.default_rng(7)
    errors, renormalisation = [], []
    kw = dict(primitive_cell=np.asarray(unit.cell), n_electrons=4 * len(base), k_radius=0.05, n_directions=6)
    v_static = fermi_velocity(engine.hamiltonian(base), **kw).value_m_per_s
    v_static_ml = fermi_velocity(predict_hamiltonian(model, base), **kw).value_m_per_s
    print(f"6×6 static lattice: vF engine {v_static:.4e} m/s, HedgeNet {v_static_ml:.4e} m/s")
    for k in range(args.vf_samples):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, 0.03, atoms.positions.shape)
        v_ref = fermi_velocity(engine.hamiltonian(atoms), **kw).value_m_per_s
        v_ml = fermi_velocity(predict_hamiltonian(model, atoms), **kw).value_m_per_s
        errors.append(v_ml - v_ref)
        renormalisation.append(v_ref - v_static)
        print(f"6×6 sample {k}: vF engine {v_ref:.4e} m/s, HedgeNet {v_ml:.4e} m/s ({100 * (v_ml / v_ref - 1):+.2f} %)")
    print(f"<vF> error over {args.vf_samples} samples: {np.mean(errors):+.3e} m/s; the renormalisation itself "
          f"(engine <vF> - static): {np.mean(renormalisation):+.3e} m/s; renormalisation from HedgeNet alone "
          f"(<vF_ML> - vF_ML static): {np.mean(errors) + np.mean(renormalisation) + v_static - v_static_ml:+.3e} m/s")

    for label, atoms in (("144 atoms (6×6 AB)", base), (f"twisted m={args.twist_m} ({len(twisted)} atoms)", twisted)):
        t = time.perf_counter(); engine.hamiltonian(atoms); t_engine = time.perf_counter() - t
        predict_hamiltonian(model, atoms)
        t = time.perf_counter(); predict_hamiltonian(model, atoms); t_model = time.perf_counter() - t
        print(f"time per configuration, {label}: HedgeNet {t_model:.3f} s, engine H(R) {t_engine:.3f} s")


if __name__ == "__main__":
    main()
