"""GPAW LCAO (free DFT) next to the reference tight-binding engine on one bilayer-graphene configuration.

A perturbed AB bilayer unit cell (4 atoms; seed 0, 0.05 Å displacements, rigid shift/separation change
of the top layer): forces of both engines (table) and bands along Γ–M–K–Γ from each engine's H(R)
(GPAW: exact H(R), S(R) from an 8×8 mesh, see aiida_mlepi.core.engine.gpaw_lcao), both relative to
their Fermi level. Writes ``benchmarks/output/engine_cross_check.{png,txt}``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/engine_cross_check.py [--h 0.2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h", type=float, default=0.2, help="GPAW grid spacing, Å")
    args = parser.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aiida_mlepi.core.bands import band_structure
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings, compute
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
    from aiida_mlepi.core.structures import graphene_bilayer

    atoms = perturbed_configurations(graphene_bilayer("AB"), 1, PerturbationSettings(supercell=(1, 1)), seed=0)[0]
    ref = ReferenceEngine().compute(atoms, kpts=(12, 12, 1), hamiltonian=True)
    gp = compute(atoms, (8, 8, 1), GpawLcaoSettings(grid_spacing_angstrom=args.h), hamiltonian=True)
    lines = [f"configuration: perturbed AB bilayer unit cell (4 atoms), GPAW LCAO dzp PBE h={args.h} Å 8x8 k; "
             f"reference TB 12x12 k",
             f"GPAW wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in gp.seconds.items())
             + f"; {gp.scf_iterations} SCF iterations",
             f"{'atom':>4} {'F_ref x':>9} {'y':>8} {'z':>8} | {'F_gpaw x':>9} {'y':>8} {'z':>8}   (eV/Å)"]
    for n, (fr, fg) in enumerate(zip(ref.forces, gp.forces)):
        lines.append(f"{n:4d} {fr[0]:9.3f} {fr[1]:8.3f} {fr[2]:8.3f} | {fg[0]:9.3f} {fg[1]:8.3f} {fg[2]:8.3f}")
    # H(R) away from the k mesh (this cell has no inversion centre, so a wrong Bloch gauge would show):
    # eigenvalues of H(k), S(k) rebuilt from H(R) vs GPAW's own non-self-consistent ones at the same k
    import scipy.linalg

    k_off = np.array([[1 / 3, 1 / 3, 0.0], [0.1, 0.27, 0.0], [0.45, 0.05, 0.0]])
    nscf = gp.calculator.fixed_density(kpts=k_off, symmetry="off", txt=None)
    off_mesh = 0.0
    for n, k in enumerate(k_off):
        eps = nscf.get_eigenvalues(kpt=n)
        kc = k @ gp.hamiltonian.reciprocal_cell()
        mine = scipy.linalg.eigh(gp.hamiltonian.hk(kc).toarray(), gp.hamiltonian.sk(kc).toarray(), eigvals_only=True)
        off_mesh = max(off_mesh, float(np.abs(mine[:len(eps)] - eps).max()))
    lines.append(f"GPAW H(R) off the 8x8 mesh (K, (0.1,0.27), (0.45,0.05)): max |eigenvalue - GPAW non-SCF| "
                 f"{off_mesh:.2e} eV")
    diff = gp.forces - ref.forces
    lines.append(f"RMS force difference {np.sqrt((diff ** 2).mean()):.3f} eV/Å (max {np.abs(diff).max():.3f}); "
                 f"|F|max ref {np.abs(ref.forces).max():.3f}, GPAW {np.abs(gp.forces).max():.3f} eV/Å; "
                 f"correlation {np.corrcoef(ref.forces.ravel(), gp.forces.ravel())[0, 1]:.4f}; "
                 f"GPAW net force {np.abs(gp.forces.sum(axis=0)).max():.3f} eV/Å")
    fig, ax = plt.subplots(figsize=(5, 4))
    near_k = {}
    for h, mu, style, label in ((ref.hamiltonian, ref.fermi_level, "k-", "reference TB"),
                                (gp.hamiltonian, gp.fermi_level, "r--", "GPAW LCAO dzp")):
        bands = band_structure(h, n_points=90)
        x, e = np.asarray(bands.distance), np.asarray(bands.energies) - mu
        for n in range(e.shape[1]):
            ax.plot(x, e[:, n], style, lw=0.8, label=label if n == 0 else None)
        # the 2 highest valence and 2 lowest conduction bands (π bands) within 0.25 Å⁻¹ of K
        k_point = np.asarray(bands.label_distance)[bands.labels.index("K")]
        window = np.abs(x - k_point) < 0.25
        pi = np.array([np.concatenate([np.sort(row[row < 0])[-2:], np.sort(row[row >= 0])[:2]]) for row in e[window]])
        near_k[label] = pi
        at_k = pi[np.argmin(np.abs(x[window] - k_point))]
        lines.append(f"{label}: the four π bands at K (E - E_F): {np.round(at_k, 3).tolist()} eV")
    ax.set_xticks(np.asarray(bands.label_distance), [r"$\Gamma$" if name in ("G", "Γ") else name
                                                     for name in bands.labels])
    for xc in bands.label_distance:
        ax.axvline(xc, color="0.8", lw=0.5)
    difference = near_k["GPAW LCAO dzp"] - near_k["reference TB"]
    lines.append(f"π bands within 0.25 1/Å of K: RMS difference {np.sqrt((difference ** 2).mean()):.3f} eV, "
                 f"max {np.abs(difference).max():.3f} eV")
    ax.set_ylim(-6, 6)
    ax.set_ylabel("E − E_F (eV)")
    ax.legend()
    OUTPUT.mkdir(exist_ok=True)
    fig.savefig(OUTPUT / "engine_cross_check.png", dpi=120, bbox_inches="tight")
    (OUTPUT / "engine_cross_check.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {OUTPUT / 'engine_cross_check.png'}")


if __name__ == "__main__":
    main()
