"""Bands near E_F of a large commensurate twisted bilayer: H(R) from HedgeNet-Electron and the engine.

Predicts H(R) of a twisted bilayer of several thousand atoms, builds the sparse H(k) and finds the
``--bands`` eigenvalues nearest the Dirac energy with scipy ``eigsh`` in shift-invert mode
(generalized form H x = E S x; S = 1 for the orthogonal sp³ basis). The shift σ is the Dirac energy
of the engine's AB bilayer unit cell plus a small offset (exactly at a degenerate Dirac point the
shifted matrix would be singular). (H − σS) is factorised once per k with SuperLU (COLAMD ordering)
and handed to ARPACK as the inverse operator. Prints times and peak memory, and the same for the
reference engine's H(R) so that the predicted bands can be compared.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/large_twisted_bands.py --m 18 [--model model.pt]

Without ``--model`` an untrained network is used (timings only; its bands mean nothing).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from scipy.sparse import identity
from scipy.sparse.linalg import LinearOperator, eigsh, splu

from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.ml.hedgenet_electron import (HedgeNetElectron, HedgeNetElectronConfig, load_model,
                                                   predict_hamiltonian)
from aiida_mlepi.core.stacking import twisted_bilayer_graphene
from aiida_mlepi.core.structures import graphene_bilayer

KPOINTS = {"G": ("Γ", (0.0, 0.0, 0.0)), "K": ("K_m", (1 / 3, 1 / 3, 0.0)), "M": ("M_m", (0.5, 0.0, 0.0))}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def dirac_energy(engine: ReferenceEngine) -> float:
    """E_F (eV) of the AB bilayer unit cell: midpoint of the two middle states at K (dense, 16 orbitals)."""
    h = engine.hamiltonian(graphene_bilayer("AB"))
    k = np.array([1 / 3, 1 / 3, 0.0]) @ h.reciprocal_cell()
    vals = np.linalg.eigvalsh(h.hk(k).toarray())
    n_occ = 4 * len(h) // 2
    return float(0.5 * (vals[n_occ - 1] + vals[n_occ]))


def bands_near(h: HamiltonianR, k_frac, sigma: float, n_bands: int) -> tuple[np.ndarray, float, float, int]:
    """(eigenvalues, factorisation s, eigsh s, fill of L+U) of the ``n_bands`` states nearest σ."""
    k = np.asarray(k_frac, dtype=float) @ h.reciprocal_cell()
    hk, sk = h.hk(k).tocsc(), h.sk(k).tocsc()
    start = time.perf_counter()
    lu = splu((hk - sigma * sk).tocsc())
    factor_s = time.perf_counter() - start
    inverse = LinearOperator(hk.shape, matvec=lu.solve, dtype=lu.U.dtype)
    start = time.perf_counter()
    vals = eigsh(hk, k=n_bands, M=sk, sigma=sigma, which="LM", OPinv=inverse, return_eigenvectors=False)
    return np.sort(vals.real), factor_s, time.perf_counter() - start, lu.L.nnz + lu.U.nnz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=18, help="twist index (r = 1): 4(3m²+3m+1) atoms")
    parser.add_argument("--model", default=None, help="a trained HedgeNet-Electron model.pt")
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--kpoints", default="G", help="any of G, K, M (moiré Γ, K, M), e.g. GK")
    parser.add_argument("--offset", type=float, default=0.0123, help="σ − E_Dirac (eV)")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine's H(R)")
    args = parser.parse_args()
    atoms = twisted_bilayer_graphene(m=args.m)
    print(f"twisted bilayer: θ = {atoms.info['twist_angle_deg']:.3f}°, {len(atoms)} atoms, "
          f"{torch.get_num_threads()} torch threads")
    engine = ReferenceEngine()
    sigma = dirac_energy(engine) + args.offset
    if args.model:
        model = load_model(args.model)
        label = f"HedgeNet-Electron ({args.model})"
    else:
        torch.manual_seed(0)
        model = HedgeNetElectron(HedgeNetElectronConfig())
        label = "HedgeNet-Electron (UNTRAINED: timings only)"
    hamiltonians = []
    start = time.perf_counter()
    hamiltonians.append((label, predict_hamiltonian(model, atoms)))
    print(f"{label}: H(R) predicted in {time.perf_counter() - start:.1f} s")
    if not args.no_engine:
        start = time.perf_counter()
        hamiltonians.append(("reference engine", engine.hamiltonian(atoms)))
        print(f"reference engine: H(R) in {time.perf_counter() - start:.1f} s")
    h0 = hamiltonians[0][1]
    print(f"{len(h0.edges)} blocks, {h0.num_orbitals} orbitals; peak memory so far {peak_mib():.0f} MiB; "
          f"σ = {sigma:.4f} eV")
    for name, h in hamiltonians:
        for key in args.kpoints:
            k_label, k_frac = KPOINTS[key]
            vals, factor_s, eig_s, fill = bands_near(h, k_frac, sigma, args.bands)
            print(f"{name:>44s} {k_label:4s} E − σ (eV): {np.array2string(vals - sigma, precision=4)}  "
                  f"LU {factor_s:.1f} s (fill {fill / 1e6:.1f} M), eigsh {eig_s:.1f} s, peak {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
