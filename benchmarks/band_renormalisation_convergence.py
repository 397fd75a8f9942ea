"""Renormalisation of the AB-bilayer band parameters (v₀, γ₁) vs supercell size, and MC vs ZG at equal cost.

For each n×n supercell (default 6, 9, 12; reference engine, physics core only, no AiiDA): relax the unit
cell with the k sampling of the supercell force calculations, compute all supercell modes, exclude the Γ
interlayer shear/breathing modes (:func:`~aiida_mlepi.core.sampling.excluding_rigid_layer_modes`), and
at each temperature unfold (:mod:`aiida_mlepi.core.unfolding`) the configurations of

* Monte Carlo with ``--samples`` configurations in antithetic ± pairs (jackknife error bars), and
* the special displacement method (ZG: the one configuration and its antipode, 2 configurations),

through the default estimator of :mod:`aiida_mlepi.core.spectral_estimators` (four-band fit of the peaks
of the averaged A(k, E) over q = 0.04–0.12 Å⁻¹ from K). Prints per (n, T, sampler): v₀ (10⁶ m/s) ± s.e.,
Δv₀/v₀ (%) vs the static lattice of the same n, γ₁ (eV) and its shift, the disorder gap at the folded
point, the number of configurations and the wall time; then the MSD per atom (in-plane/out-of-plane) per n
with and without the rigid-layer modes. Writes ``benchmarks/output/band_renormalisation_convergence.{json,png}``
(rows are merged into the JSON after each (n, T, sampler), so runs of one size each build one table)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/band_renormalisation_convergence.py \\
        [--supercells 6,9,12] [--temperatures 0,300] [--samples 8] [--directions 2]

``--directions 2`` (one line through K, both sides: the ± pair cancels trigonal warping) keeps a 12×12
(2304 orbitals) at ~10 dense solves per configuration.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"


def save_rows(rows: list, msd_rows: list, path: Path) -> tuple[list, list]:
    """Merge ``rows``/``msd_rows`` into the JSON at ``path`` (same (n, T, sampler) replaced) and return all of them,
    so that a long run (or runs of one supercell size each) builds up one table."""
    old = json.loads(path.read_text()) if path.exists() else {"rows": [], "msd": []}

    def key(r):
        return (r["n"], r["T"], r.get("sampler", r.get("modes")))

    merged = {key(r): r for r in old["rows"]}
    merged.update({key(r): r for r in rows})
    merged_msd = {key(r): r for r in old["msd"]}
    merged_msd.update({key(r): r for r in msd_rows})
    out_rows = sorted(merged.values(), key=lambda r: (r["n"], -1 if r["T"] is None else r["T"], r["sampler"]))
    out_msd = sorted(merged_msd.values(), key=lambda r: (r["n"], r["T"], r["modes"]))
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"rows": out_rows, "msd": out_msd}, indent=1))
    return out_rows, out_msd


def run(supercells, temperatures, n_mc, n_directions, n_q, seed, json_path: Path):
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.engine.relax import relaxed_bilayer_graphene, supercell_kpoints_mesh
    from aiida_mlepi.core.phonons import compute_supercell_modes
    from aiida_mlepi.core.sampling import (analytic_displacement_tensors, excluding_rigid_layer_modes,
                                           sample_displacements, sampled_structures)
    from aiida_mlepi.core.special_displacements import special_displacements
    from aiida_mlepi.core.spectral_estimators import SpectralSettings, configuration_spectrum, estimate

    engine = ReferenceEngine()
    settings = SpectralSettings(n_directions=n_directions, n_q=n_q, line_points=0)
    rows, msd_rows = [], []
    for n in supercells:
        t0 = time.perf_counter()
        mesh = supercell_kpoints_mesh((n, n, 1))
        prim = relaxed_bilayer_graphene(engine, "AB", (mesh[0] * n, mesh[1] * n, 1))
        all_modes = compute_supercell_modes(prim, (n, n, 1), lambda atoms: engine.forces(atoms, kpts=mesh))
        modes = excluding_rigid_layer_modes(all_modes)
        t_modes = time.perf_counter() - t0
        print(f"n={n}: {len(modes.supercell)} atoms, modes in {t_modes:.0f} s "
              f"(lowest non-acoustic {sorted(modes.frequencies_cm1[~all_modes.acoustic_mask])[0]:.1f} cm⁻¹)",
              flush=True)
        for t in temperatures:
            for label, m in (("all modes", all_modes), ("no rigid-layer", modes)):
                u = analytic_displacement_tensors(m, t)
                msd_rows.append({"n": n, "T": t, "modes": label, "in_plane_A2": float(np.mean(u[:, 0, 0] + u[:, 1, 1])),
                                 "out_of_plane_A2": float(np.mean(u[:, 2, 2]))})
        n_el = 4 * len(modes.supercell)
        static = configuration_spectrum(engine.hamiltonian(modes.supercell), prim, n_el, settings)
        ref = estimate(static, [static], settings)
        rows.append({"n": n, "T": None, "sampler": "static", "n_cfg": 1, **ref.values,
                     "v_err": None, "g_err": None, "gap_mean": 0.0, "seconds": 0.0})
        for t in temperatures:
            configs = {"mc": sample_displacements(modes, t, n_mc, seed, antithetic=True),
                       "zg": special_displacements(modes, t, antipode=True)}
            for sampler, u in configs.items():
                t1 = time.perf_counter()
                spectra = [configuration_spectrum(engine.hamiltonian(a), prim, n_el, settings, static.fermi_level_ev)
                           for a in sampled_structures(modes, u)]
                result = estimate(static, spectra, settings, pairs=True)  # MC: ± pairs; ZG: u and −u (1 sample)
                row = {"n": n, "T": t, "sampler": sampler, "n_cfg": len(spectra), **result.values,
                       "v_err": result.stderr["velocity_m_per_s"], "g_err": result.stderr["gamma1_ev"],
                       "gap_mean": result.folded_gap_ev["mean"], "gap_std": result.folded_gap_ev["std"],
                       "seconds": time.perf_counter() - t1,
                       "dv_percent": 100 * (result.values["velocity_m_per_s"] / ref.values["velocity_m_per_s"] - 1),
                       "dv_err_percent": None if result.stderr["velocity_m_per_s"] is None else
                       100 * result.stderr["velocity_m_per_s"] / ref.values["velocity_m_per_s"],
                       "dg1_mev": 1e3 * (result.values["gamma1_ev"] - ref.values["gamma1_ev"])}
                rows.append(row)
                save_rows(rows, msd_rows, json_path)
                err = "" if row["dv_err_percent"] is None else f" ± {row['dv_err_percent']:.2f}"
                print(f"  n={n} T={t:g} K {sampler}: {len(spectra)} cfg, Δv0/v0 = {row['dv_percent']:+.2f}{err} %, "
                      f"Δγ1 = {row['dg1_mev']:+.1f} meV, gap {1e3 * row['gap_mean']:.1f} meV, "
                      f"{row['seconds']:.0f} s", flush=True)
    return rows, msd_rows


def print_tables(rows, msd_rows):
    print("\nn   T (K)  sampler  cfg   v0 (10^6 m/s)        Δv0/v0 (%)        γ1 (eV)            Δγ1 (meV)  "
          "gap at folded K (meV)  time (s)")
    for r in rows:
        v = f"{r['velocity_m_per_s'] / 1e6:.5f}" + ("" if r["v_err"] is None else f" ± {r['v_err'] / 1e6:.5f}")
        g = f"{r['gamma1_ev']:.4f}" + ("" if r["g_err"] is None else f" ± {r['g_err']:.4f}")
        if r["sampler"] == "static":
            print(f"{r['n']:<3} {'—':>5}  static   1     {v:<20} {'':<17} {g:<18}")
            continue
        dv = f"{r['dv_percent']:+.2f}" + ("" if r["dv_err_percent"] is None else f" ± {r['dv_err_percent']:.2f}")
        print(f"{r['n']:<3} {r['T']:>5g}  {r['sampler']:<7}  {r['n_cfg']:<4}  {v:<20} {dv:<17} {g:<18} "
              f"{r['dg1_mev']:+6.1f}     {1e3 * r['gap_mean']:6.1f} ± {1e3 * r['gap_std']:.1f}        {r['seconds']:.0f}")
    print("\nmean-square displacement per atom (Å²): n, T, modes, in-plane, out-of-plane")
    for m in msd_rows:
        print(f"{m['n']:<3} {m['T']:>5g}  {m['modes']:<15} {m['in_plane_A2']:.5f}  {m['out_of_plane_A2']:.5f}")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    temps = sorted({r["T"] for r in rows if r["T"] is not None})
    for t, marker in zip(temps, "os^v"):
        for sampler, colour, dx in (("mc", "C0", -0.15), ("zg", "C3", 0.15)):
            sel = [r for r in rows if r["T"] == t and r["sampler"] == sampler]
            if not sel:
                continue
            n = np.array([r["n"] for r in sel]) + dx
            err = [r["dv_err_percent"] or 0.0 for r in sel]
            label = f"{sampler.upper()} {t:g} K" + (" (±1 s.e.)" if sampler == "mc" else " (u, −u)")
            axes[0].errorbar(n, [r["dv_percent"] for r in sel], yerr=err, fmt=marker, color=colour, capsize=3,
                             label=label, mfc="none" if t else colour)
            gerr = [1e3 * (r["g_err"] or 0.0) for r in sel]
            axes[1].errorbar(n, [r["dg1_mev"] for r in sel], yerr=gerr, fmt=marker, color=colour, capsize=3,
                             label=label, mfc="none" if t else colour)
    for ax, ylabel in zip(axes, (r"$\Delta v_0 / v_0$ (%)", r"$\Delta\gamma_1$ (meV)")):
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel(r"supercell $n$ ($n\times n$)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r["n"] for r in rows}))
        ax.legend(fontsize=8)
    fig.suptitle("AB bilayer (reference engine): renormalisation vs supercell size, from unfolded A(k,E)")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--supercells", default="6,9,12")
    p.add_argument("--temperatures", default="0,300")
    p.add_argument("--samples", type=int, default=8, help="MC configurations (even: ± pairs)")
    p.add_argument("--directions", type=int, default=2)
    p.add_argument("--n-q", type=int, default=5)
    p.add_argument("--seed", type=int, default=20240601)
    args = p.parse_args()
    supercells = [int(x) for x in args.supercells.split(",")]
    temperatures = [float(x) for x in args.temperatures.split(",")]
    json_path = OUTPUT / "band_renormalisation_convergence.json"
    rows, msd_rows = run(supercells, temperatures, args.samples, args.directions, args.n_q, args.seed, json_path)
    rows, msd_rows = save_rows(rows, msd_rows, json_path)  # with the rows of earlier runs (other n)
    print_tables(rows, msd_rows)
    plot(rows, OUTPUT / "band_renormalisation_convergence.png")
    print(f"\nwrote {OUTPUT / 'band_renormalisation_convergence.png'}")


if __name__ == "__main__":
    main()
