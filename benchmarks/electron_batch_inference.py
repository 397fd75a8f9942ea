"""Seconds per sample of HedgeNet-Electron inference: one structure per call vs batched, float32 vs float64.

Workload: ``--samples`` random-displaced (Gaussian, ``--sigma`` Å per Cartesian component) copies of the
6×6 AB bilayer (144 atoms), an *untrained* default-size model (its cost is that of a trained one of the
same size), 1 thread. 'single' is :func:`~aiida_mlepi.core.ml.hedgenet_electron.predict_hamiltonian` per
structure; 'batch B' is :func:`~aiida_mlepi.core.ml.electron_batch.predict_hamiltonians` with
``batch_size=B`` (topology reuse on). Also reports max |ΔH| (eV) of float32 vs float64 and of batched vs
single. glibc's malloc mmaps (and page-faults) every allocation over 32 MB, which the per-edge tensors of
a batch exceed; ``MALLOC_MMAP_THRESHOLD_=8589934592 MALLOC_TRIM_THRESHOLD_=8589934592`` removes that cost.
Writes ``benchmarks/output/electron_batch_inference.txt``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/electron_batch_inference.py [--samples 32]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--sigma", type=float, default=0.05, help="displacement per component, Å")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    import torch

    from aiida_mlepi.core.ml.electron_batch import inference_model, predict_hamiltonians
    from aiida_mlepi.core.ml.hedgenet_electron import (HedgeNetElectron, HedgeNetElectronConfig,
                                                       predict_hamiltonian)
    from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cell = in_plane_supercell(graphene_bilayer("AB"), 6)
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(args.samples):
        atoms = cell.copy()
        atoms.positions += rng.normal(0.0, args.sigma, atoms.positions.shape)
        samples.append(atoms)
    model = HedgeNetElectron(HedgeNetElectronConfig(dtype="float64"))
    lines = [f"{args.samples} samples of the 6x6 AB bilayer ({len(cell)} atoms), sigma = {args.sigma} Å, "
             f"default HedgeNet-Electron ({model.num_parameters()} parameters, untrained), 1 thread", ""]
    results = {}
    for dtype in ("float32", "float64"):
        net = inference_model(model, dtype)
        predict_hamiltonian(net, samples[0])  # warm-up
        start = time.perf_counter()
        results[(dtype, "single")] = [predict_hamiltonian(net, atoms) for atoms in samples]
        lines.append(f"{dtype} single   : {(time.perf_counter() - start) / len(samples):.3f} s/sample")
        for size in args.batches:
            start = time.perf_counter()
            hs = predict_hamiltonians(model, samples, batch_size=size, dtype=dtype)
            elapsed = time.perf_counter() - start
            results[(dtype, size)] = hs
            how = collections.Counter(h.metadata["graph"] for h in hs)
            lines.append(f"{dtype} batch {size:3d}: {elapsed / len(samples):.3f} s/sample  graphs: {dict(how)}")
        print("\n".join(lines), flush=True)

    def blocks(h):
        return {tuple(e): h.block(n) for n, e in enumerate(h.edges.tolist())}

    def max_diff(a, b):
        worst = 0.0
        for ha, hb in zip(a, b):
            ba, bb = blocks(ha), blocks(hb)
            assert set(ba) == set(bb)
            worst = max(worst, max(np.abs(ba[k] - bb[k]).max() for k in ba))
        return worst

    lines.append("")
    big = max(args.batches)
    for dtype in ("float32", "float64"):
        lines.append(f"{dtype}: max |H(batch {big}) - H(single)| = "
                     f"{max_diff(results[(dtype, big)], results[(dtype, 'single')]):.2e} eV")
    lines.append(f"max |H(float32) - H(float64)| (single) = "
                 f"{max_diff(results[('float32', 'single')], results[('float64', 'single')]):.2e} eV; "
                 f"max |H| = {max(np.abs(h.h_values).max() for h in results[('float64', 'single')]):.2f} eV")
    text = "\n".join(lines)
    print(text)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "electron_batch_inference.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
