"""CHGNet 0.4.2 (pretrained weights from its wheel, offline) against GPAW LCAO on the same configurations.

Needs ``pip install chgnet==0.4.2`` (not a dependency of aiida-mlepi). Measured here on a perturbed
AA' hBN cell against GPAW szp, h = 0.18 Å (the reference freest of LCAO's egg-box error): the
directions agree (cosine 0.999) but the RMS error is 1.27 of 3.76 eV/Å (34 %, a magnitude error);
on MoS2 (GPAW szp, h = 0.25) 0.47 of 0.83 eV/Å, cosine 0.83. Too far for a training-set labeller,
so no ``chgnet`` dataset engine was added.

Reads the configurations and GPAW forces that ``benchmarks/gpaw_screening.py`` saved
(``benchmarks/output/gpaw_screening_<material>_<variant>_k<k>.npz``: perturbed unit cells, PBE without
dispersion) and prints, per file, CHGNet's force error against GPAW: RMS and max of the component
difference (eV/Å), the RMS of the GPAW forces for scale, and the cosine between the two force
vectors. Then the interlayer binding curve of AA' hBN (rigid shift of the top layer, catalogue
cell) for CHGNet alone and CHGNet + D3(BJ, PBE parameters: CHGNet is fitted to PBE/PBE+U MPtrj),
E(d) − E(8 Å) in meV/atom, to see whether CHGNet binds the layers without help. Writes
``benchmarks/output/chgnet_vs_gpaw.txt``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/chgnet_vs_gpaw.py
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"


def chgnet_energy_forces(model, atoms) -> tuple[float, np.ndarray]:
    """CHGNet (energy eV, forces eV/Å) of a bilayer given as a 3D-periodic cell (≥ 15 Å of vacuum here,
    its graph cutoff is 5 Å)."""
    from ase import Atoms
    from pymatgen.io.ase import AseAtomsAdaptor

    periodic = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    prediction = model.predict_structure(AseAtomsAdaptor.get_structure(periodic), task="ef")
    return float(prediction["e"]) * len(atoms), np.asarray(prediction["f"], dtype=float)


def main() -> None:
    import torch
    from ase import Atoms
    from chgnet.model import CHGNet

    from aiida_mlepi.core.catalogue import load_catalogue
    from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings, dispersion_correction

    torch.set_num_threads(1)
    lines = [f"# CHGNet vs GPAW LCAO (PBE, no dispersion on either side), load {os.getloadavg()[0]:.1f}",
             f"{'configuration':<48} {'atoms':>5} {'F rms GPAW':>10} {'dF rms':>7} {'dF max':>7} {'cos':>6} {'s':>5}"]
    print(lines[-1], flush=True)
    model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    for path in sorted(OUTPUT.glob("gpaw_screening_*_k*.npz")):
        data = np.load(path)
        atoms = Atoms(data["numbers"], positions=data["positions"], cell=data["cell"], pbc=(True, True, False))
        start = time.perf_counter()
        _, forces = chgnet_energy_forces(model, atoms)
        seconds = time.perf_counter() - start
        reference = data["forces"]
        diff = forces - reference
        cosine = float(forces.ravel() @ reference.ravel() / (np.linalg.norm(forces) * np.linalg.norm(reference)))
        name = re.sub(r"^gpaw_screening_", "", path.stem)
        lines.append(f"{name:<48} {len(atoms):>5} {np.sqrt(np.mean(reference ** 2)):>10.3f} "
                     f"{np.sqrt(np.mean(diff ** 2)):>7.3f} {np.abs(diff).max():>7.3f} {cosine:>6.3f} {seconds:>5.1f}")
        print(lines[-1], flush=True)

    cell = load_catalogue()["aa-prime-bilayer-hbn"].build()
    top = cell.arrays["layer_ids"] == 1
    current = cell.positions[top, 2].min() - cell.positions[~top, 2].max()
    gaps = np.array([current - 0.3, current, current + 0.3, current + 0.6, current + 0.9, 8.0])  # parabola: first 5
    plain, d3 = [], []
    for gap in gaps:
        shifted = cell.copy()
        shifted.positions[top, 2] += gap - current
        plain.append(chgnet_energy_forces(model, shifted)[0])
        d3.append(dispersion_correction(shifted, GpawLcaoSettings(dispersion="d3bj"))[0])
    plain, d3 = np.array(plain), np.array(d3)
    per_atom = 1000.0 / len(cell)
    lines.append("# AA' hBN binding curve, E(d) - E(8 Å) in meV/atom")
    lines.append(f"{'gap Å':>6} {'CHGNet':>8} {'CHGNet+D3':>10}")
    for gap, e1, e2 in zip(gaps, (plain - plain[-1]) * per_atom, (plain + d3 - plain[-1] - d3[-1]) * per_atom):
        lines.append(f"{gap:>6.2f} {e1:>8.2f} {e2:>10.2f}")
    for label, curve in (("CHGNet", plain), ("CHGNet+D3", plain + d3)):
        fit = np.polyfit(gaps[:-1], curve[:-1], 2)
        lines.append(f"# {label}: parabola minimum {-fit[1] / (2 * fit[0]):.2f} Å (experiment {current:.3f} Å), "
                     f"binding at the experimental gap {(curve[1] - curve[-1]) * per_atom:.1f} meV/atom")
    print("\n".join(lines[-len(gaps) - 4:]))
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "chgnet_vs_gpaw.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
