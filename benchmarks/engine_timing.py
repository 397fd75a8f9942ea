"""Wall time per configuration: GPAW LCAO (free DFT) vs the reference engine, on the same structures.

The structures are the DatasetWorkChain 'fast' configurations (perturbed 2×2 AB-bilayer supercells,
16 atoms, 3×3 k). Trained networks plug in through :data:`EXTRA_ENGINES` (name → callable
``atoms -> anything``, timed per call), e.g. a trained HedgeNet phonon model::

    from aiida_mlepi.core.ml.calculator import HedgeNetCalculator
    EXTRA_ENGINES["hedgenet (trained)"] = lambda atoms: HedgeNetCalculator(model).get_forces(atoms)

Without ``--no-network`` the table also has an *untrained* HedgeNet-Phonon (default
:class:`~aiida_mlepi.core.ml.hedgenet_phonon.HedgeNetPhononConfig`, random weights, float32): graph
construction + energy + forces (autograd) per configuration. Its numbers are meaningless, its cost is
that of the trained network of the same size. Timings are wall time of one call per configuration
(the first network call includes a warm-up, reported separately). Writes
``benchmarks/output/engine_timing.txt``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/engine_timing.py [--configurations 3] [--h 0.25]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"
#: hook for trained networks: name -> callable(atoms) -> (energy eV, forces eV/Å)
EXTRA_ENGINES: dict[str, Callable] = {}


def untrained_hedgenet(atoms) -> tuple[Callable, str]:
    """(callable: atoms -> forces of a randomly initialised default HedgeNet-Phonon, warm-up note)."""
    import torch

    from aiida_mlepi.core.ml import HedgeNetPhonon, HedgeNetPhononConfig
    from aiida_mlepi.core.ml.calculator import HedgeNetCalculator

    torch.manual_seed(0)
    model = HedgeNetPhonon(HedgeNetPhononConfig())
    calculator = HedgeNetCalculator(model)

    def run(structure):
        structure = structure.copy()
        calculator.reset()  # no cached results: every call builds the graph and runs the network
        structure.calc = calculator
        return structure.get_forces()

    start = time.perf_counter()
    run(atoms)
    note = (f"hedgenet-phonon UNTRAINED: default config, {model.num_parameters()} parameters, random weights; "
            f"first call (warm-up, not in the table) {time.perf_counter() - start:.3f} s")
    return run, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=3)
    parser.add_argument("--h", type=float, default=0.25, help="GPAW grid spacing, Å")
    parser.add_argument("--kpoints", type=int, default=3, help="in-plane k mesh of the 2×2 supercell")
    parser.add_argument("--no-network", action="store_true", help="skip the untrained HedgeNet-Phonon")
    args = parser.parse_args()

    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings, compute
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
    from aiida_mlepi.core.structures import graphene_bilayer

    configs = perturbed_configurations(graphene_bilayer("AB"), args.configurations,
                                       PerturbationSettings(supercell=(2, 2)), seed=0)
    kpts = (args.kpoints, args.kpoints, 1)
    engines: dict[str, Callable] = {
        "reference": lambda atoms: ReferenceEngine().compute(atoms, kpts=kpts),
        f"gpaw-lcao dzp h={args.h}": lambda atoms: compute(atoms, kpts, GpawLcaoSettings(grid_spacing_angstrom=args.h)),
        **EXTRA_ENGINES,
    }
    warmup = ""
    if not args.no_network:
        try:
            network, warmup = untrained_hedgenet(configs[0])
            engines["hedgenet-phonon UNTRAINED"] = network
        except ImportError as exception:  # the ml extra is not installed
            warmup = f"untrained HedgeNet-Phonon skipped: {exception}"
    lines = [f"{len(configs)} perturbed 2x2 AB-bilayer supercells (16 atoms), k {kpts}; "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs, "
             f"load average at start {os.getloadavg()[0]:.1f}",
             f"{'engine':<28} {'s/config (mean)':>16} {'min':>8} {'max':>8}"]
    for name, run in engines.items():
        times = []
        for atoms in configs:
            start = time.perf_counter()
            run(atoms)
            times.append(time.perf_counter() - start)
        lines.append(f"{name:<28} {np.mean(times):16.3f} {min(times):8.3f} {max(times):8.3f}")
        print(lines[-1], flush=True)
    if warmup:
        lines.append(warmup)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "engine_timing.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
