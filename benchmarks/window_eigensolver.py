"""Seconds for the states of an energy window near E_F at one generic k: dense vs shift-invert, and LU reuse.

Hamiltonian: the reference engine's (sp³, orthogonal) AB bilayer, primitive cell tiled to n×n
(:func:`~aiida_mlepi.core.bands.repeat_hamiltonian`; 6×6: 576 orbitals, 12×12: 2304, 24×24: 9216).
E_F: midpoint of the 6×6 cell's HOMO/LUMO at Γ (K folds onto Γ). Windows E_F ± ``--half-widths`` eV.
Rows: ``states_in_window`` with solver 'dense' (``eigh(subset_by_value)``; skipped above
``--dense-max`` orbitals), 'sparse' (one LU + Lanczos) and, for reference, full dense ``eigh``.

LU reuse across k: the LU of H(k₀) − σ as the preconditioner of GMRES for H(k₀ + δk) − σ: iterations
per solve to 1e-10 against a fresh LU (factorisation + one solve). 1 thread. Writes
``benchmarks/output/window_eigensolver.txt``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/window_eigensolver.py [--sizes 6 12 24]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"
K_FRAC = np.array([0.1234, 0.0567, 0.0])  #: generic k, fractional coordinates of the n×n cell


def _timed(f):
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 12, 24])
    parser.add_argument("--half-widths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--dense-max", type=int, default=4000, help="largest N_orb solved densely")
    parser.add_argument("--dk", type=float, nargs="+", default=[1e-3, 1e-2], help="k offsets, 1/Å")
    args = parser.parse_args()

    import scipy.linalg
    import scipy.sparse as sp
    import scipy.sparse.linalg

    from aiida_mlepi.core.bands import ShiftInvert, frac_to_cart, repeat_hamiltonian, states_in_window
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.structures import graphene_bilayer

    primitive = ReferenceEngine().hamiltonian(graphene_bilayer("AB"))
    h6 = repeat_hamiltonian(primitive, 6, 6)
    gamma = scipy.linalg.eigh(h6.hk(np.zeros(3)).toarray(), eigvals_only=True)
    n_occ = 2 * len(h6)  # 4 valence electrons per C, spin-degenerate states
    fermi = 0.5 * (gamma[n_occ - 1] + gamma[n_occ])
    lines = [f"E_F = {fermi:.4f} eV (6x6 HOMO/LUMO midpoint at Γ); k = {K_FRAC.tolist()} (fractional); 1 thread",
             "", f"{'cell':>6} {'N_orb':>6} {'window':>9} {'n':>4} {'dense window':>13} {'sparse window':>14} "
             f"{'full eigh':>10} {'max|ΔE|':>9}"]
    reuse = []
    for n in args.sizes:
        h = repeat_hamiltonian(primitive, n, n)
        k = frac_to_cart(h, K_FRAC)
        full_t = None
        if h.num_orbitals <= args.dense_max:
            full, full_t = _timed(lambda: scipy.linalg.eigh(h.hk(k).toarray(), eigvals_only=True))
        for hw in args.half_widths:
            lo, hi = fermi - hw, fermi + hw
            (e_s, _), t_s = _timed(lambda: states_in_window(h, k, lo, hi, solver="sparse"))
            t_d, diff = float("nan"), float("nan")
            if h.num_orbitals <= args.dense_max:
                (e_d, _), t_d = _timed(lambda: states_in_window(h, k, lo, hi, solver="dense"))
                ref = full[(full >= lo) & (full <= hi)]
                diff = max(np.abs(e_d - ref).max(), np.abs(e_s - ref).max()) if len(ref) else 0.0
            lines.append(f"{n:>4}x{n:<1} {h.num_orbitals:>6} ±{hw:<4} eV {len(e_s):>4} {t_d:>11.3f} s "
                         f"{t_s:>12.3f} s {full_t if full_t is not None else float('nan'):>8.3f} s {diff:>9.1e}")
            print(lines[-1], flush=True)
        # LU reuse across k
        solver, t_lu = _timed(lambda: ShiftInvert(h, k, fermi))
        (e_n, _), t_lanczos = _timed(lambda: solver.nearest(16))
        reuse.append(f"{n:>4}x{n:<1} 16 states nearest E_F: LU {t_lu:.3f} s, Lanczos {t_lanczos:.3f} s "
                     f"({solver.solves} solves)")
        b = np.random.default_rng(0).normal(size=h.num_orbitals) + 0j
        _, t_solve = _timed(lambda: solver.lu.solve(b))
        precond = solver.op_inverse
        for dk in args.dk:
            k2 = k + np.array([dk, 0.0, 0.0])
            a2 = (h.hk(k2) - fermi * sp.identity(h.num_orbitals)).tocsc()
            iterations = []

            def count(_):
                iterations.append(1)

            (x, info), t_gmres = _timed(lambda: scipy.sparse.linalg.gmres(a2, b, M=precond, rtol=1e-10,
                                                                          restart=200, maxiter=5,
                                                                          callback=count,
                                                                          callback_type="pr_norm"))
            residual = np.linalg.norm(a2 @ x - b) / np.linalg.norm(b)
            reuse.append(f"{n:>4}x{n:<1} δk = {dk:.0e} 1/Å: fresh LU {t_lu:.3f} s + solve {t_solve:.4f} s; "
                         f"LU(k0)-preconditioned GMRES {len(iterations)} it, {t_gmres:.3f} s per solve "
                         f"(info {info}, residual {residual:.1e})")
            print(reuse[-1], flush=True)
    text = "\n".join(lines + ["", "LU reuse across k (per linear solve):"] + reuse)
    print(text)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "window_eigensolver.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
