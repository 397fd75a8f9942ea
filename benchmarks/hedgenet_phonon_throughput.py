"""Throughput of HedgeNet-Phonon vs the homogeneous mace-torch model: energy + forces, atoms per second.

Both models run on the same structures, side by side in one process: AB bilayer graphene supercells
of 144 (6×6), 1152 (24×12) and 9216 (48×48) atoms, slightly rattled. The mace-torch model is ``mace.modules.ScaleShiftMACE`` with the number of channels
chosen so that its parameter count is about HedgeNet-Phonon's. Graph (neighbour list) construction is
excluded from the timings (done once per structure); the time is the median of ``--repeats`` calls of
energy + forces (autograd). A linear-cost model has constant atoms/s across sizes.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/hedgenet_phonon_throughput.py [--quick] [--threads T]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from aiida_mlepi.core.ml import HedgeNetPhonon, HedgeNetPhononConfig, build_graph
from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell

# (n1, n2) of the AB bilayer (4 atoms per unit cell): 6×6 = 144, 24×12 = 1152, 48×48 = 9216 atoms
SIZES = {144: (6, 6), 1152: (24, 12), 9216: (48, 48)}


def hedgenet(channels: int) -> HedgeNetPhonon:
    torch.manual_seed(0)
    return HedgeNetPhonon(HedgeNetPhononConfig(num_channels=channels, max_ell=2, max_L=1, correlation=3,
                                               num_interactions=2, r_max_intra=4.5, r_max_inter=6.0)).eval()


def mace_model(channels: int, r_max: float):
    from e3nn import o3
    from mace.modules import ScaleShiftMACE
    from mace.modules.blocks import RealAgnosticResidualInteractionBlock

    torch.manual_seed(0)
    return ScaleShiftMACE(
        atomic_inter_scale=1.0, atomic_inter_shift=0.0, r_max=r_max, num_bessel=8, num_polynomial_cutoff=5,
        max_ell=2, interaction_cls=RealAgnosticResidualInteractionBlock,
        interaction_cls_first=RealAgnosticResidualInteractionBlock, num_interactions=2, num_elements=1,
        hidden_irreps=o3.Irreps(f"{channels}x0e+{channels}x1o"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array([0.0]), avg_num_neighbors=48.0, atomic_numbers=[6], correlation=3,
        gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64]).float().eval()


def matched_channels(target: int, r_max: float, low: int = 2, high: int = 128) -> int:
    """Channel count of the mace-torch model whose parameter count is closest to ``target``
    (bisection: the count grows monotonically with the channels)."""
    def count(c: int) -> int:
        return sum(p.numel() for p in mace_model(c, r_max).parameters())

    while high - low > 1:
        mid = (low + high) // 2
        if count(mid) < target:
            low = mid
        else:
            high = mid
    return min((low, high), key=lambda c: abs(count(c) - target))


def mace_inputs(atoms, r_max: float) -> dict[str, torch.Tensor]:
    graph = build_graph(atoms, (6,), {"all": r_max}, torch.float32)
    cell = graph.cell[0]
    n = graph.num_atoms
    return {"positions": graph.positions, "node_attrs": graph.node_attrs, "edge_index": graph.edge_index["all"],
            "unit_shifts": graph.unit_shifts["all"], "shifts": graph.unit_shifts["all"] @ cell,
            "cell": cell, "batch": torch.zeros(n, dtype=torch.int64), "ptr": torch.tensor([0, n]),
            "head": torch.zeros(1, dtype=torch.int64)}


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 144 and 1152 atoms, one repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16, help="HedgeNet channels (MACE matched in size)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    sizes = [144, 1152] if args.quick else list(SIZES)

    net = hedgenet(args.channels)
    r_max = max(net.config.cutoffs.values())
    # the mace-torch model with the channel count whose parameter count is closest to HedgeNet's
    target = net.num_parameters()
    best = matched_channels(target, r_max)
    mace = mace_model(best, r_max)
    n_mace = sum(p.numel() for p in mace.parameters())
    print(f"HedgeNet-Phonon: {target} parameters ({args.channels} channels, 2 layers, intra 4.5 Å + inter 6.0 Å)")
    print(f"mace-torch ScaleShiftMACE: {n_mace} parameters ({best} channels, 2 layers, one cutoff {r_max} Å)")
    print(f"threads: {args.threads}; energy + forces, median of {repeats}\n")
    print(f"{'atoms':>6} {'edges H (intra+inter)':>22} {'edges MACE':>11} {'HedgeNet s':>11} {'atoms/s':>9} "
          f"{'MACE s':>9} {'atoms/s':>9}")
    for n_atoms in sizes:
        atoms = in_plane_supercell(graphene_bilayer("AB"), *SIZES[n_atoms])
        assert len(atoms) == n_atoms
        atoms.rattle(0.02, seed=1)
        cfg = net.config
        graph = build_graph(atoms, cfg.atomic_numbers, cfg.cutoffs, cfg.torch_dtype)
        data = mace_inputs(atoms, r_max)
        t_h = timed(lambda: net(graph, compute_forces=True)["forces"], repeats)
        t_m = timed(lambda: mace({k: v.clone() for k, v in data.items()}, compute_force=True)["forces"], repeats)
        edges_h = sum(v.shape[1] for v in graph.edge_index.values())
        print(f"{n_atoms:>6} {edges_h:>22} {data['edge_index'].shape[1]:>11} {t_h:>11.3f} {n_atoms / t_h:>9.0f} "
              f"{t_m:>9.3f} {n_atoms / t_m:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
