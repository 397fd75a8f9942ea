"""Sparse direct factorisations of a shifted Bloch matrix A = H(k) − σ S(k), for shift-invert eigensolvers.

Shift-invert Lanczos (:class:`~aiida_mlepi.core.bands.ShiftInvert`) needs ``x = A⁻¹ b`` many times for
one A; its cost and memory are those of the factorisation, set by the fill-reducing ordering:

* ``"superlu"``: :func:`scipy.sparse.linalg.splu` (SuperLU, always available). ``ordering``:
  ``"COLAMD"`` (SuperLU's default, an ordering for unsymmetric LU) or ``"MMD_AT_PLUS_A"`` (minimum degree
  on A + Aᵀ, the symmetric pattern of a Hermitian A).
* ``"pardiso"``: Intel MKL PARDISO through ``pypardiso`` (optional extra ``aiida-mlepi[sparse]``), with
  METIS nested-dissection ordering and parallel supernodal LU. ``pypardiso`` takes real matrices only,
  so a complex A = A_r + i A_i is factorised as its real equivalent [[A_r, −A_i], [A_i, A_r]] of twice
  the size (same solution x = x_r + i x_i); a real A (Γ, or zone-boundary k of a real H(R)) directly.

Measured (``benchmarks/large_twisted_bands.py``, 2-core machine shared with ~30 other processes, so CPU
seconds are quoted): 1.08° twisted bilayer, engine H(Γ_m) − σ, 44,656 orbitals, 7.1 M non-zeros, 12 states
nearest E_F: PARDISO factorises in 10.8 s CPU (fill 48.8 M, 2 MKL threads) + 32.8 s CPU of Lanczos, process
peak 1.3 GiB; SuperLU (MMD_AT_PLUS_A) had not finished the factorisation after 99 s CPU (stopped), and the
1.79° cell (16k orbitals) took 100–235 s with SuperLU fill 60–78 M before. At 976 orbitals (7.3° cell)
SuperLU needs 0.2 s CPU and PARDISO 1.4 s. Hence ``"auto"``: PARDISO from :data:`PARDISO_MIN_SIZE`
orbitals when ``pypardiso`` imports, SuperLU otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg

#: factorisation methods, in the order ``"auto"`` tries them
FACTORIZATIONS = ("pardiso", "superlu")
#: ``"auto"`` uses PARDISO (when installed) from this many rows up, SuperLU below: measured crossover between
#: 976 orbitals (SuperLU 7× less CPU) and 44,656 (see the module docstring); 10⁴ lies in between
PARDISO_MIN_SIZE = 10_000
#: SuperLU column orderings accepted by :func:`factorize`
SUPERLU_ORDERINGS = ("COLAMD", "MMD_AT_PLUS_A", "MMD_ATA", "NATURAL")


class FactorizationError(ValueError):
    """A factorisation that was asked for cannot be done (unknown name, missing optional package)."""


@dataclass
class Factorization:
    """A factorised square matrix: :meth:`solve` gives A⁻¹ b."""

    method: str  #: "superlu" or "pardiso"
    size: int  #: N (rows of A)
    fill: int  #: non-zeros of the factors (L + U), the memory measure
    _solve: Callable[[np.ndarray], np.ndarray]
    _release: Callable[[], None] | None = None

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with A x = b (b: (N,) or (N, m), real or complex)."""
        return self._solve(b)

    def release(self) -> None:
        """Free the factors now (PARDISO holds them in MKL's memory until told)."""
        if self._release is not None:
            self._release()
            self._release = None


def pardiso_available() -> bool:
    """True if ``pypardiso`` (and MKL) can be imported."""
    try:
        import pypardiso  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def resolve_factorization(method: str = "auto", size: int | None = None) -> str:
    """``"auto"`` → PARDISO if installed and ``size`` ≥ :data:`PARDISO_MIN_SIZE` (or size unknown), else
    SuperLU; otherwise check ``method``."""
    if method == "auto":
        large = size is None or size >= PARDISO_MIN_SIZE
        return "pardiso" if large and pardiso_available() else "superlu"
    if method not in FACTORIZATIONS:
        raise FactorizationError(f"unknown factorisation {method!r}: use 'auto' or one of {list(FACTORIZATIONS)}")
    if method == "pardiso" and not pardiso_available():
        raise FactorizationError("factorization='pardiso' needs pypardiso and MKL: "
                                 "pip install 'aiida-mlepi[sparse]' (or use 'superlu')")
    return method


def factorize(a: sp.spmatrix, method: str = "auto", ordering: str = "COLAMD") -> Factorization:
    """Factorise the square sparse matrix ``a`` with ``method`` (see the module docstring)."""
    method = resolve_factorization(method, a.shape[0])
    if a.shape[0] != a.shape[1]:
        raise FactorizationError(f"need a square matrix, got shape {a.shape}")
    if method == "superlu":
        if ordering not in SUPERLU_ORDERINGS:
            raise FactorizationError(f"unknown SuperLU ordering {ordering!r}: use one of {list(SUPERLU_ORDERINGS)}")
        lu = scipy.sparse.linalg.splu(sp.csc_matrix(a), permc_spec=ordering)
        return Factorization("superlu", a.shape[0], int(lu.L.nnz + lu.U.nnz), lu.solve)
    return _pardiso(sp.csr_matrix(a))


def _pardiso(a: sp.csr_matrix) -> Factorization:
    """PARDISO, matrix type −2 (real symmetric indefinite, Bunch–Kaufman pivoting; upper triangle given).

    A Hermitian A = A_r + i A_i has A_r symmetric and A_i antisymmetric, so its real equivalent
    [[A_r, −A_i], [A_i, A_r]] is real symmetric too. (Type 11, real unsymmetric, pypardiso's default,
    returned wrong solutions, residual 10⁵ with condition number 19, for H(Γ) − σ of the 13° twisted
    bilayer with MKL 2026.2; type −2 solves it to 10⁻¹³.) Every factorisation is checked by one solve.
    """
    import pypardiso

    n = a.shape[0]
    if abs(a - a.conj().T).max() > 1e-10 * max(1.0, abs(a).max()):
        raise FactorizationError("factorization='pardiso' is implemented for Hermitian matrices (H − σS) only")
    is_complex = np.iscomplexobj(a.data) and bool(np.any(a.data.imag != 0.0))
    if is_complex:
        real = sp.bmat([[a.real, -a.imag], [a.imag, a.real]], format="csr")
    else:
        real = sp.csr_matrix(a.real if np.iscomplexobj(a.data) else a, dtype=float)
    upper = sp.triu(real, format="csr")
    upper.sort_indices()
    solver = pypardiso.PyPardisoSolver(mtype=-2)
    solver.factorize(upper)
    fill = int(solver.get_iparm(18))  # iparm(18): non-zeros in the factors

    def solve_real(b: np.ndarray) -> np.ndarray:
        return solver.solve(upper, np.ascontiguousarray(b, dtype=float))

    def solve(b: np.ndarray) -> np.ndarray:
        b = np.asarray(b)
        if is_complex:
            x = solve_real(np.concatenate([b.real, b.imag]))
            return x[:n] + 1j * x[n:]
        if np.iscomplexobj(b):
            stacked = np.column_stack([b.real, b.imag]) if b.ndim == 1 else np.hstack([b.real, b.imag])
            x = solve_real(stacked)
            m = 1 if b.ndim == 1 else b.shape[1]
            out = x[:, :m] + 1j * x[:, m:]
            return out[:, 0] if b.ndim == 1 else out
        return solve_real(b)

    probe = np.random.default_rng(0).normal(size=real.shape[0])
    residual = np.linalg.norm(real @ solve_real(probe) - probe) / np.linalg.norm(probe)
    if not residual < 1e-8:
        solver.free_memory(everything=False)
        raise FactorizationError(f"PARDISO factorisation failed its check (relative residual {residual:.1e}); "
                                 f"use factorization='superlu'")
    return Factorization("pardiso", n, fill, solve, lambda: solver.free_memory(everything=False))
