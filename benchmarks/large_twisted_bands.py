"""Flat bands of large commensurate twisted bilayers (down to the 1.08° magic angle): ML vs engine H(R).

1. Builds the commensurate twisted bilayer nearest ``--angle`` (r = 1 cells: 1.08° is (m, r) = (30, 1),
   11,164 atoms, 44,656 sp³ orbitals) and its H(R) from the reference engine and from a HedgeNet-Electron
   (``--model``, e.g. from ``benchmarks/twist_model.py``; without it an untrained network: timings only).
2. Compares sparse factorisations for shift-invert Lanczos (``eigsh`` with σ near E_F) on the first
   source's H(k) at one k (``--compare-k``): each in a child process with a wall-time cap, reporting
   factorisation and Lanczos time (wall and CPU: on a loaded machine CPU time is the fair measure), fill
   and the child's extra peak memory. The fastest (CPU) is used for the bands unless ``--factorization``.
3. The ``--bands`` states nearest σ at Γ_m, K_m, M_m for each H(R); the four flat bands (2 valleys; spin
   not counted) are the 4 consecutive states whose middle (between the 2nd and 3rd) is nearest E_CNP, E_CNP = the 4-fold level nearest σ
   at K_m (the moiré Dirac points of both valleys; σ otherwise). Flat-band width = max − min of them over the k computed
   (a lower bound of the width over the whole moiré zone).
4. Prints the continuum-model expectation (:mod:`aiida_mlepi.core.continuum`, Bistritzer–MacDonald 2011)
   at the same angle and k, with BM's parameters and with this tight-binding model's own ħv_F (monolayer
   graphene at K) and w₀, w₁ (AA and AB bilayer splittings at K: 6 w₀ and 6 w₁): the model's own α and
   magic angle differ from BM's, and the cell is rigid (unrelaxed, flat layers, d = 3.35 Å).

σ = E_D + ``--offset`` with E_D the Dirac energy of the same H source's AB bilayer unit cell (a small offset
keeps H − σ away from the exactly degenerate Dirac states). Peak memory: VmHWM of the process (Linux).

Measured at 1.08° (m = 30, 44,656 orbitals; 2 threads; 2-core machine with load 3–30, CPU s quoted):
engine H(R) 4.6 s CPU; HedgeNet-Electron H(R) 44–46 s CPU (peak 3.9 GiB); PARDISO at real H(Γ_m): 10.8 s CPU
factorisation (fill 48–60 M) + 27–33 s Lanczos; complex H(K_m), H(M_m) (real-equivalent 2N system): 53–74 s
+ 41–59 s, fill 198–240 M; SuperLU did not finish a factorisation within 99 s CPU. Process peaks 5.6 GiB
(engine) and 7.4 GiB (ML; factors were not yet released per k). Flat-band width over Γ_m, K_m, M_m: engine
42.1 meV, HedgeNet-Electron 31.2 meV; continuum: BM 5.4 meV (rigid), 4.8 meV (w0 = 0.8 w1), BM with the
engine's own ħv_F = 4.20 eV·Å and w = 112 meV 39.6 meV (α = 0.83: its magic angle is 1.53°, not 1.08°).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/large_twisted_bands.py --angle 1.08 \
        --model benchmarks/output/hedgenet_electron_twist.pt --factorizations pardiso superlu
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg
import torch

from aiida_mlepi.core.continuum import ContinuumModel, magic_angle_deg
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.ml.hedgenet_electron import (HedgeNetElectron, HedgeNetElectronConfig, load_model,
                                                   predict_hamiltonian)
from aiida_mlepi.core.sparse_factor import factorize
from aiida_mlepi.core.stacking import commensurate_twist, twisted_bilayer_graphene
from aiida_mlepi.core.structures import graphene_bilayer, graphene_monolayer

KPOINTS = {"G": ("Γ_m", (0.0, 0.0, 0.0)), "K": ("K_m", (1 / 3, 1 / 3, 0.0)), "M": ("M_m", (0.5, 0.0, 0.0))}


# ---------------------------------------------------------------------------- measurement helpers
def _status_kib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def peak_mib() -> float:
    """Peak resident memory of this process (VmHWM), MiB."""
    return _status_kib("VmHWM") / 1024.0


class Timer:
    """Wall and CPU (this process) seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def load_line() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- physics helpers
def _states_at(h: HamiltonianR, k_frac, n: int, centre: float) -> np.ndarray:
    vals = np.linalg.eigvalsh(h.hk(np.asarray(k_frac, float) @ h.reciprocal_cell()).toarray())
    return np.sort(vals[np.argsort(np.abs(vals - centre))[:n]])


def dirac_energy(h_ab: HamiltonianR) -> float:
    """E_D (eV) of an AB bilayer unit cell's H(R): midpoint of the two middle states at K."""
    vals = np.linalg.eigvalsh(h_ab.hk(np.array([1 / 3, 1 / 3, 0.0]) @ h_ab.reciprocal_cell()).toarray())
    n_occ = 2 * len(h_ab)  # 4 valence electrons per C, 2 per state
    return float(0.5 * (vals[n_occ - 1] + vals[n_occ]))


def continuum_parameters(source) -> tuple[float, float, float]:
    """(ħv_F eV·Å, w₀ eV, w₁ eV) of an H(R) source (callable Atoms → HamiltonianR).

    ħv_F: monolayer graphene, splitting of the Dirac pair at K + δk (δk = 10⁻³ Å⁻¹) / 2δk. w₀ (w₁): the
    four p_z states at K of the AA (AB) bilayer span 6 w₀ (6 w₁): ±3w₀ in AA, the dimer pair ±γ₁ = ±3w₁ in AB.
    """
    mono = source(graphene_monolayer())
    kk = np.array([1 / 3, 1 / 3, 0.0]) @ mono.reciprocal_cell()
    e_k = np.linalg.eigvalsh(mono.hk(kk).toarray())
    e_d = 0.5 * (e_k[3] + e_k[4])  # 2 atoms × 4 electrons: states 0..3 filled
    dk = 1e-3
    e = np.linalg.eigvalsh(mono.hk(kk + np.array([dk, 0.0, 0.0])).toarray())
    pair = np.sort(e[np.argsort(np.abs(e - e_d))[:2]])
    hbar_vf = (pair[1] - pair[0]) / (2 * dk)
    w = []
    for stacking in ("AA", "AB"):
        h = source(graphene_bilayer(stacking))
        four = _states_at(h, (1 / 3, 1 / 3, 0.0), 4, dirac_energy(h))
        w.append((four[-1] - four[0]) / 6)
    return float(hbar_vf), w[0], w[1]


def flat_band_width(bands: dict[str, np.ndarray], sigma: float) -> tuple[float, float, dict[str, np.ndarray]]:
    """(width eV, E_CNP eV, the 4 flat states per k) from the states nearest σ at each k (see module doc)."""
    e_cnp = sigma
    if "K_m" in bands:  # the Dirac points of both valleys: the 4-fold level at K_m nearest σ (C₂T, C₃)
        e = np.sort(bands["K_m"])
        quartets = [e[i:i + 4].mean() for i in range(len(e) - 3) if e[i + 3] - e[i] < 1e-4]  # within 0.1 meV
        if quartets:
            e_cnp = float(min(quartets, key=lambda x: abs(x - sigma)))
    flat = {}
    for label, e in bands.items():
        e = np.sort(e)  # 4 consecutive states whose middle (between the 2nd and 3rd) is nearest E_CNP
        j = int(np.argmin([abs(0.5 * (e[i + 1] + e[i + 2]) - e_cnp) for i in range(len(e) - 3)]))
        flat[label] = e[j:j + 4]
    allf = np.concatenate(list(flat.values()))
    return float(allf.max() - allf.min()), e_cnp, flat


# ---------------------------------------------------------------------------- solvers
def nearest_states(hk: sp.spmatrix, sigma: float, n: int, method: str, ordering: str = "COLAMD") -> dict:
    """The n eigenvalues of the Hermitian ``hk`` nearest σ by shift-invert Lanczos with one factorisation."""
    base_kib = _status_kib("VmRSS")
    a = (hk - sigma * sp.identity(hk.shape[0], format="csc")).tocsc()
    with Timer() as t_factor:
        f = factorize(a, method, ordering)
    op = scipy.sparse.linalg.LinearOperator(hk.shape, matvec=f.solve, dtype=complex)
    with Timer() as t_eig:
        vals = scipy.sparse.linalg.eigsh(hk, k=n, sigma=sigma, which="LM", OPinv=op, return_eigenvectors=False)
    extra_mib = (_status_kib("VmHWM") - base_kib) / 1024.0
    f.release()  # PARDISO keeps its factors in MKL memory until told: without this the peak grows per k
    return dict(values=np.sort(vals.real), factor=t_factor, eigsh=t_eig, fill=f.fill, extra_mib=extra_mib)


def _child(queue, hk, sigma, n, method, ordering):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM: the child's peak then counts from its start
    except OSError:
        pass
    try:
        queue.put(nearest_states(hk, sigma, n, method, ordering))
    except Exception as exc:  # reported, not raised: the comparison goes on with the other solvers
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def compare_factorizations(hk, sigma, n, specs, timeout_s) -> dict[str, dict]:
    """Run each ``method[:ordering]`` in a child process (own peak memory, stopped after ``timeout_s``)."""
    # spawn, not fork: a child forked after torch/MKL started their OpenMP pools hangs in PARDISO
    ctx = multiprocessing.get_context("spawn")
    results = {}
    for spec in specs:
        method, _, ordering = spec.partition(":")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(queue, hk, sigma, n, method, ordering or "COLAMD"))
        start = time.perf_counter()
        proc.start()
        try:
            results[spec] = queue.get(timeout=timeout_s)
        except Exception:
            results[spec] = {"error": f"not finished after {timeout_s:.0f} s wall (stopped)"}
            proc.kill()
        proc.join()
        r = results[spec]
        if "error" in r:
            print(f"  {spec:22s} {r['error']} ({time.perf_counter() - start:.0f} s, {load_line()})", flush=True)
        else:
            print(f"  {spec:22s} factorise {r['factor']} (fill {r['fill'] / 1e6:.1f} M), Lanczos {r['eigsh']}, "
                  f"extra peak {r['extra_mib']:.0f} MiB; {load_line()}", flush=True)
    return results


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--angle", type=float, default=1.08, help="twist angle (°): r = 1 cell of nearest angle")
    parser.add_argument("--m", type=int, default=None, help="twist index (r = 1) instead of --angle")
    parser.add_argument("--model", default=None, help="a trained HedgeNet-Electron model.pt")
    parser.add_argument("--bands", type=int, default=12, help="states nearest σ per k")
    parser.add_argument("--kpoints", default="GKM", help="any of G, K, M (moiré Γ, K, M)")
    parser.add_argument("--offset", type=float, default=0.00123, help="σ − E_D (eV)")
    parser.add_argument("--factorizations", nargs="*", default=["pardiso", "superlu"],
                        help="factorisations to compare: pardiso, superlu[:COLAMD|MMD_AT_PLUS_A]")
    parser.add_argument("--compare-k", default="K", help="k of the comparison (G, K or M)")
    parser.add_argument("--compare-timeout", type=float, default=3600.0,
                        help="wall seconds per solver in the comparison (each one; a loaded machine needs many)")
    parser.add_argument("--factorization", default=None, help="for the bands (default: fastest measured)")
    parser.add_argument("--sources", nargs="+", default=["engine", "ml"], choices=["engine", "ml"],
                        help="H(R) sources; the solver comparison uses the first")
    args = parser.parse_args()

    if args.m is None:  # the r = 1 cell of nearest angle (1.08° → m = 30, 1.0845°, 11,164 atoms)
        args.m = min(range(1, 200), key=lambda m: abs(commensurate_twist(m, 1).theta_deg - args.angle))
    atoms = twisted_bilayer_graphene(m=args.m)
    theta = atoms.info["twist_angle_deg"]
    print(f"twisted bilayer (m, r) = ({atoms.info['twist_m']}, {atoms.info['twist_r']}): θ = {theta:.4f}°, {len(atoms)} atoms, "
          f"{4 * len(atoms)} orbitals; {torch.get_num_threads()} torch threads; {load_line()}", flush=True)

    engine = ReferenceEngine()
    sources = {}
    for kind in args.sources:  # in the order given: the comparison uses the first
        if kind == "engine":
            sources["engine"] = engine.hamiltonian
            continue
        if args.model:
            model, label = load_model(args.model), "HedgeNet-Electron"
        else:
            torch.manual_seed(0)
            model, label = HedgeNetElectron(HedgeNetElectronConfig()), "HedgeNet-Electron (UNTRAINED: timings only)"
        sources[label] = lambda a, model=model: predict_hamiltonian(model, a)

    # --- continuum-model expectation
    bm = ContinuumModel(theta)
    print(f"\nBistritzer–MacDonald (PNAS 108, 12233 (2011); ħv_F|K| = 9.905 eV, w = 110 meV): α = {bm.alpha:.3f}, "
          f"first magic angle {magic_angle_deg(bm.hbar_vf, bm.w1):.3f}°")
    expectations = {"BM, w0 = w1 = 110 meV (rigid)": bm,
                    "BM, w0 = 0.8 w1 (relaxed-like)": ContinuumModel(theta, w0=0.8 * bm.w1)}
    own = {}
    for name, source in sources.items():
        hbar_vf, w0, w1 = continuum_parameters(source)
        own[name] = (hbar_vf, w0, w1)
        cm = ContinuumModel(theta, hbar_vf=hbar_vf, w0=w0, w1=w1)
        expectations[f"BM with {name}'s ħv_F, w0, w1"] = cm
        print(f"{name}: ħv_F = {hbar_vf:.3f} eV·Å (v_F = {hbar_vf / 6.582119569e-16 * 1e-10:.3e} m/s), "
              f"w0 = {1e3 * w0:.1f} meV, w1 = {1e3 * w1:.1f} meV → α(θ) = {cm.alpha:.3f}, own first magic angle "
              f"{magic_angle_deg(hbar_vf, w1):.3f}°")
    for name, cm in expectations.items():
        print(f"  continuum flat-band width at {theta:.3f}° over Γ_m, K_m, M_m: {1e3 * cm.flat_band_width():7.2f} meV"
              f"  [{name}]")

    # --- H(R)
    hamiltonians, sigmas = {}, {}
    for name, source in sources.items():
        with Timer() as t:
            hamiltonians[name] = source(atoms)
        sigmas[name] = dirac_energy(source(graphene_bilayer("AB"))) + args.offset
        print(f"\n{name}: H(R) of {len(atoms)} atoms in {t}; {len(hamiltonians[name].edges)} blocks; "
              f"peak memory {peak_mib():.0f} MiB; σ = E_D + {1e3 * args.offset:.2f} meV = {sigmas[name]:.5f} eV; "
              f"{load_line()}", flush=True)

    # --- solver comparison on the first source's H(k)
    first = next(iter(hamiltonians))
    h_ref = hamiltonians[first]
    k_label, k_frac = KPOINTS[args.compare_k]
    hk = h_ref.hk(np.asarray(k_frac) @ h_ref.reciprocal_cell()).tocsc()
    print(f"\nfactorisations for shift-invert at {k_label} ({first} H(k), {hk.shape[0]} orbitals, {hk.nnz} non-zeros, "
          f"{args.bands} states):", flush=True)
    results = compare_factorizations(hk, sigmas[first], args.bands, args.factorizations, args.compare_timeout)
    done = {s: r for s, r in results.items() if "error" not in r}
    if len(done) > 1:
        ref = next(iter(done.values()))["values"]
        print("  max |ΔE| between solvers: "
              f"{max(np.abs(r['values'] - ref).max() for r in done.values()):.1e} eV")
    choice = args.factorization
    if choice is None:
        if done:
            best = min(done, key=lambda s: done[s]["factor"].cpu + done[s]["eigsh"].cpu)
            choice = best.partition(":")[0]
            print(f"  chosen (least CPU time): {best}")
        else:
            choice = "auto"
            print("  none finished within --compare-timeout: bands with factorization='auto'")

    # --- bands
    widths = {}
    for name, h in hamiltonians.items():
        bands = {}
        for key in args.kpoints:
            lbl, kf = KPOINTS[key]
            if name == first and key == args.compare_k and choice in done:
                r = done[choice]
            else:
                r = nearest_states(h.hk(np.asarray(kf) @ h.reciprocal_cell()).tocsc(), sigmas[name], args.bands, choice)
            bands[lbl] = r["values"]
            print(f"{name:>22s} {lbl:4s} E − σ (meV): {np.array2string(1e3 * (r['values'] - sigmas[name]), precision=2)}"
                  f"  factorise {r['factor']}, Lanczos {r['eigsh']}; peak {peak_mib():.0f} MiB", flush=True)
        width, e_cnp, flat = flat_band_width(bands, sigmas[name])
        widths[name] = width
        print(f"{name:>22s} flat bands (meV from E_CNP = σ {1e3 * (e_cnp - sigmas[name]):+.2f} meV): "
              + "; ".join(f"{k} {np.array2string(1e3 * (v - e_cnp), precision=2)}" for k, v in flat.items()))
    print(f"\nflat-band width at θ = {theta:.3f}° (4 bands, Γ_m/K_m/M_m only, rigid unrelaxed cell):")
    for name, width in widths.items():
        print(f"  {name:44s} {1e3 * width:7.2f} meV")
    for name, cm in expectations.items():
        print(f"  {name:44s} {1e3 * cm.flat_band_width():7.2f} meV (continuum)")
    print(f"peak memory of this process {peak_mib():.0f} MiB; {load_line()}")


if __name__ == "__main__":
    main()
