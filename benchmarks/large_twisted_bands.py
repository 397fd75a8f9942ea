"""Bands near E_F of a large commensurate twisted bilayer from HedgeNet-Electron's H(R).

Predicts H(R) (several thousand atoms), builds the sparse H(k) at a few k points and finds the
``--bands`` eigenvalues nearest the Dirac energy with scipy ``eigsh`` in shift-invert mode
(generalized form H x = E S x; S = 1 for the orthogonal sp³ basis). Prints times and peak memory.
The model is read from ``--model`` (a ``model.pt``), or, for timing only, an untrained one is built.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/large_twisted_bands.py --m 18 [--model model.pt]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from scipy.sparse.linalg import eigsh

from aiida_mlepi.core.ml.hedgenet_electron import (HedgeNetElectron, HedgeNetElectronConfig, load_model,
                                                   predict_hamiltonian)
from aiida_mlepi.core.stacking import twisted_bilayer_graphene


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=18, help="twist index (r = 1): 4(3m²+3m+1) atoms")
    parser.add_argument("--model", default=None)
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=None, help="shift (eV); default: mean predicted pz on-site")
    args = parser.parse_args()
    atoms = twisted_bilayer_graphene(m=args.m)
    print(f"twisted bilayer: θ = {atoms.info['twist_angle_deg']:.3f}°, {len(atoms)} atoms")
    if args.model:
        model = load_model(args.model)
    else:
        torch.manual_seed(0)
        model = HedgeNetElectron(HedgeNetElectronConfig())
        print("(untrained model: timings only)")
    t = time.perf_counter()
    h = predict_hamiltonian(model, atoms)
    print(f"H(R) prediction: {time.perf_counter() - t:.1f} s, {len(h.edges)} blocks, {h.num_orbitals} orbitals, "
          f"peak memory {peak_mib():.0f} MiB")
    onsite = np.flatnonzero((h.edges[:, 3] == h.edges[:, 4]) & ~h.edges[:, :3].any(axis=1))
    sigma = args.sigma if args.sigma is not None else float(np.mean([h.block(e)[3, 3] for e in onsite]))
    recip = h.reciprocal_cell()
    for name, frac in (("Γ", (0, 0, 0)), ("K_m", (1 / 3, 1 / 3, 0)), ("M_m", (0.5, 0, 0))):
        k = np.asarray(frac, dtype=float) @ recip
        t = time.perf_counter()
        hk, sk = h.hk(k).tocsc(), h.sk(k).tocsc()
        vals = eigsh(hk, k=args.bands, M=sk, sigma=sigma, which="LM", return_eigenvectors=False)
        print(f"{name:4s} bands near {sigma:.3f} eV: {np.array2string(np.sort(vals.real), precision=4)} "
              f"({time.perf_counter() - t:.1f} s)")
    print(f"peak memory {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
