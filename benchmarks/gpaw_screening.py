"""GPAW LCAO screening settings for the catalogue's non-carbon entries: cost vs accuracy, and DFT-D3 binding.

For one catalogue material, on one perturbed unit cell (seed 0, the DatasetWorkChain's perturbations
with a 1×1 supercell: random displacements of 0.05 Å and a random interlayer shift/separation),
every settings *variant* is run once (1 thread) and compared with the first (the reference):
SCF and force wall time, CPU time of both (the honest number on a shared, loaded machine), SCF iterations, orbitals, energy, and the RMS / max force difference
(eV/Å). Then, with ``--binding``, the interlayer binding curve of the *unperturbed* cell with the
cheapest variant: E(d) − E(d = 8 Å) per atom for PBE alone and PBE + D3(BJ) from the same SCFs
(D3 is added a posteriori; :func:`aiida_mlepi.core.engine.gpaw_lcao.dispersion_correction`), and
the minimum of each curve (parabola through the three shortest gaps: d − 0.3, d, d + 0.4 Å). Writes
``benchmarks/output/gpaw_screening_<material>.txt``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpaw_screening.py aa-prime-bilayer-hbn --kpts 6
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpaw_screening.py aa-prime-bilayer-hbn --kpts 4 --variants --binding
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpaw_screening.py 2h-bilayer-mos2 --kpts 6 \\
        --variants screening dzp-h0.25
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"
#: named settings variants (GpawLcaoSettings keyword arguments)
VARIANTS = {
    "dzp-h0.20": {"basis": "dzp", "grid_spacing_angstrom": 0.20},
    "dzp-h0.25": {"basis": "dzp", "grid_spacing_angstrom": 0.25},
    "szp-h0.25": {"basis": "szp(dzp)", "grid_spacing_angstrom": 0.25},
    "szp-h0.30": {"basis": "szp(dzp)", "grid_spacing_angstrom": 0.30},
    "szp-h0.18": {"basis": "szp(dzp)", "grid_spacing_angstrom": 0.18},
    "screening": {"basis": "szp(dzp)", "grid_spacing_angstrom": 0.25, "setups": {"Mo": "6", "W": "6"}},
    "dzp-h0.25-6e": {"basis": "dzp", "grid_spacing_angstrom": 0.25, "setups": {"Mo": "6", "W": "6"}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("material", help="catalogue entry name")
    parser.add_argument("--kpts", type=int, default=6, help="in-plane Γ-centred k mesh of the unit cell")
    parser.add_argument("--variants", nargs="*", default=["dzp-h0.20", "dzp-h0.25", "szp-h0.25", "szp-h0.30"],
                        choices=sorted(VARIANTS), help="the first is the reference")
    parser.add_argument("--binding", action="store_true", help="also the PBE / PBE+D3 interlayer binding curve")
    parser.add_argument("--binding-variant", default="szp-h0.25", choices=sorted(VARIANTS))
    args = parser.parse_args()

    from aiida_mlepi.core.catalogue import load_catalogue
    from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings, compute, dispersion_correction
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations

    entry = load_catalogue()[args.material]
    cell = entry.build()
    atoms = perturbed_configurations(cell, 1, PerturbationSettings(supercell=(1, 1)), seed=0)[0]
    kpts = (args.kpts, args.kpts, 1)
    lines = [f"# {args.material}: {len(atoms)} atoms, {kpts} k, 1 thread (OMP_NUM_THREADS="
             f"{os.environ.get('OMP_NUM_THREADS')}), load {os.getloadavg()[0]:.1f} at start"]
    lines.append(f"{'variant':<14} {'orbitals':>8} {'iter':>5} {'scf s':>7} {'forces s':>8} {'cpu s':>6} {'energy eV':>12} "
                 f"{'|F|max':>7} {'dF rms':>7} {'dF max':>7}")
    print(lines[-1], flush=True)
    reference = None
    for name in args.variants:
        settings = GpawLcaoSettings(**VARIANTS[name])
        cpu = time.process_time()
        result = compute(atoms, kpts, settings)
        cpu = time.process_time() - cpu
        orbitals = result.calculator.wfs.setups.nao
        diff = np.zeros(1) if reference is None else (result.forces - reference.forces)
        reference = reference or result
        lines.append(f"{name:<14} {orbitals:>8} {result.scf_iterations:>5} {result.seconds['scf']:>7.1f} "
                     f"{result.seconds['forces']:>8.1f} {cpu:>6.1f} {result.energy:>12.4f} {np.abs(result.forces).max():>7.3f} "
                     f"{np.sqrt(np.mean(diff ** 2)):>7.3f} {np.abs(diff).max():>7.3f}")
        print(lines[-1], flush=True)
        OUTPUT.mkdir(exist_ok=True)
        np.savez(OUTPUT / f"gpaw_screening_{args.material}_{name}_k{args.kpts}.npz", forces=result.forces,
                 energy=result.energy, positions=atoms.positions, numbers=atoms.numbers, cell=np.asarray(atoms.cell),
                 seconds_scf=result.seconds["scf"], seconds_forces=result.seconds["forces"])
    if args.binding:
        settings = GpawLcaoSettings(**VARIANTS[args.binding_variant])
        d0 = entry.interlayer_distance
        gaps = np.array([d0 - 0.3, d0, d0 + 0.4, 8.0])
        layer_ids = np.asarray(cell.arrays["layer_ids"])
        top = layer_ids == layer_ids.max()
        current = cell.positions[top, 2].min() - cell.positions[~top, 2].max()
        pbe, d3 = [], []
        for gap in gaps:
            shifted = cell.copy()
            shifted.positions[top, 2] += gap - current
            result = compute(shifted, kpts, settings, forces=False)
            pbe.append(result.energy)
            d3.append(dispersion_correction(shifted, GpawLcaoSettings(dispersion="d3bj"))[0])
        pbe, d3 = np.array(pbe), np.array(d3)
        per_atom = 1000.0 / len(cell)
        lines.append(f"# binding curve ({args.binding_variant}; E(d) - E(8 Å), meV/atom; D3(BJ) added a posteriori)")
        lines.append(f"{'gap Å':>6} {'PBE':>8} {'PBE+D3':>8}")
        for gap, e1, e2 in zip(gaps, (pbe - pbe[-1]) * per_atom, (pbe + d3 - pbe[-1] - d3[-1]) * per_atom):
            lines.append(f"{gap:>6.2f} {e1:>8.2f} {e2:>8.2f}")
        for label, curve in (("PBE", pbe), ("PBE+D3", pbe + d3)):
            fit = np.polyfit(gaps[:3], curve[:3], 2)
            minimum = -fit[1] / (2 * fit[0]) if fit[0] > 0 else float("nan")
            lines.append(f"# {label}: minimum near gap {minimum:.2f} Å (catalogue, experiment: {d0:.3f} Å); "
                         f"binding at the catalogue gap {(curve[1] - curve[-1]) * per_atom:.1f} meV/atom")
        print("\n".join(lines[-len(gaps) - 4:]), flush=True)
    lines.append(f"# load {os.getloadavg()[0]:.1f} at end")
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"gpaw_screening_{args.material}_k{args.kpts}.txt"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
