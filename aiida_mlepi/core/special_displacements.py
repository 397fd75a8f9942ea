"""Special displacement method (ZG): one thermal configuration instead of many Monte-Carlo samples.

Zacharias & Giustino, Phys. Rev. B 94, 075125 (2016); Phys. Rev. Research 2, 013357 (2020).

Definition. With the real supercell Γ modes of :class:`~aiida_mlepi.core.phonons.SupercellModes`
(mass-weighted orthonormal ε_μ, frequencies ω_μ = 2π·f_μ) and the thermal variances of the normal
coordinates σ_μ² = ħ/(2ω_μ)·coth(ħω_μ/2k_BT) of :func:`~aiida_mlepi.core.sampling.mode_variances`,
the ZG configuration replaces the Gaussian amplitudes A_μ ~ N(0, σ_μ²) of Monte Carlo by

    u_a = Σ_μ S_μ σ_μ ε_μa / √M_a,      S_μ = ±1,

i.e. every mode at exactly its thermal root-mean-square amplitude with a sign S_μ. ZG (2016) take the
modes in ascending frequency and alternate the signs, S = (+, −, +, −, …), so that the cross terms
S_μ S_ν σ_μ σ_ν (μ ≠ ν) of u uᵀ nearly cancel between neighbouring (nearly degenerate) modes. Here that
choice is only the start: the signs are then improved by a deterministic single-flip local search that
minimises the error of the per-atom anisotropic displacement tensor

    E(S) = Σ_a ‖u_a u_aᵀ − U_a‖²_F  (Å⁴),     U_a = Σ_μ σ_μ² ε_μa ε_μaᵀ / M_a

(:func:`~aiida_mlepi.core.sampling.analytic_displacement_tensors`), which also controls the per-atom
mean-square displacement |u_a|² − tr U_a. A flip of S_μ changes u by d = −2 S_μ σ_μ ε_μ/√M, and

    ΔE = Σ_a [ |u_a + d_a|⁴ − |u_a|⁴ − 2 (u_a + d_a)ᵀ U_a (u_a + d_a) + 2 u_aᵀ U_a u_a ],

O(N) per candidate flip. Sweeps go over the modes in frequency order, accept every flip that lowers E,
and stop after a sweep without a flip (a local minimum of E under single flips) or after ``max_sweeps``.
The three Γ acoustic translations are excluded (σ = 0, sign 0) as in the Monte-Carlo sampler.
The antipode −u has the same E; the pair {u, −u} is returned by default.

What is exact and what is not. For any signs each mode carries exactly its thermal amplitude, so the
mode-diagonal (μ = ν) part of every second-order term is exact; the ± pair cancels every odd-order term
of an observable exactly. The off-diagonal cross terms Σ_{μ≠ν} S_μ S_ν σ_μ σ_ν (…) do not vanish for a
finite supercell: they are what the sign choice makes small, and ZG show they vanish as the supercell
grows. So in a finite supercell the displacement tensors (and the MSD) of the configuration match the
thermal ones only approximately — per atom the residual is what :class:`SpecialDisplacement` reports;
averages over many atoms are much closer. Degenerate modes (arbitrary eigenvector gauge within a
degenerate subspace) make the plain alternating choice gauge dependent; the local search on E reduces
that dependence but does not remove it. Fourth- and higher-order terms are not thermal averages.

Units: displacements Å, σ_μ in √amu·Å, tensors Å², E in Å⁴, temperature K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phonons import IMAGINARY_TOLERANCE_THZ, SupercellModes
from .sampling import SamplingError, analytic_displacement_tensors, mode_patterns, mode_variances

#: default upper bound on the sign-search sweeps (each sweep tries every mode once)
DEFAULT_MAX_SWEEPS = 100


@dataclass(frozen=True)
class SpecialDisplacement:
    """A ZG configuration u (Å) with its signs and its error against the exact thermal tensors."""

    displacements: np.ndarray  #: (N, 3) Å; the antipode is −displacements
    signs: np.ndarray  #: (3N,) int: ±1, 0 for the Γ acoustic translations
    temperature_k: float  #: K
    target_tensors: np.ndarray  #: (N, 3, 3) exact thermal ⟨u_a u_aᵀ⟩, Å²
    error_initial: float  #: E(S) of the start signs (ZG alternating unless given), Å⁴
    error: float  #: E(S) of the returned signs, Å⁴
    n_sweeps: int  #: sweeps of the local search done
    n_flips: int  #: accepted sign flips
    converged: bool  #: True when the last sweep found no improving flip

    @property
    def msd_relative_error(self) -> np.ndarray:
        """(N,) (|u_a|² − ⟨|u_a|²⟩) / ⟨|u_a|²⟩, dimensionless."""
        exact = np.trace(self.target_tensors, axis1=1, axis2=2)
        return (self.displacements**2).sum(axis=1) / exact - 1.0

    @property
    def component_relative_error(self) -> np.ndarray:
        """(N, 3) (u_aα² − ⟨u_aα²⟩) / ⟨u_aα²⟩, dimensionless."""
        exact = np.diagonal(self.target_tensors, axis1=1, axis2=2)
        return self.displacements**2 / exact - 1.0

    @property
    def tensor_relative_error(self) -> np.ndarray:
        """(N,) ‖u_a u_aᵀ − U_a‖_F / ‖U_a‖_F, dimensionless."""
        u = self.displacements
        diff = np.einsum("ia,ib->iab", u, u) - self.target_tensors
        return np.linalg.norm(diff, axis=(1, 2)) / np.linalg.norm(self.target_tensors, axis=(1, 2))

    @property
    def total_relative_error(self) -> float:
        """√(E / Σ_a ‖U_a‖²_F), dimensionless."""
        return float(np.sqrt(self.error / np.sum(self.target_tensors**2)))


def alternating_signs(modes: SupercellModes) -> np.ndarray:
    """(3N,) ZG signs (+1, −1, +1, …) over the sampled modes in ascending frequency; 0 on Γ translations."""
    sampled = ~np.asarray(modes.acoustic_mask, dtype=bool)
    order = np.argsort(np.asarray(modes.frequencies_thz, dtype=float), kind="stable")
    order = order[sampled[order]]
    signs = np.zeros(sampled.size, dtype=int)
    signs[order] = np.where(np.arange(order.size) % 2 == 0, 1, -1)
    return signs


def _check_signs(signs: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    s = np.asarray(signs)
    if s.shape != sampled.shape:
        raise SamplingError(f"signs must have shape {sampled.shape} (one per mode), got {s.shape}")
    if not np.all(np.abs(s[sampled]) == 1):
        raise SamplingError("signs must be ±1 on every sampled (non-acoustic) mode")
    return np.where(sampled, s, 0).astype(int)


def _tensor_error(u: np.ndarray, target: np.ndarray) -> float:
    """E = Σ_a ‖u_a u_aᵀ − U_a‖²_F in Å⁴."""
    return float(np.sum((np.einsum("ia,ib->iab", u, u) - target) ** 2))


def displacement_tensor_error(modes: SupercellModes, temperature_k: float, signs: np.ndarray,
                              tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> float:
    """E(S) = Σ_a ‖u_a u_aᵀ − U_a‖²_F in Å⁴ of u = Σ_μ S_μ σ_μ ε_μ/√M for any signs S (±1 per mode)."""
    variances = mode_variances(modes, temperature_k, tol_thz)
    s = _check_signs(signs, variances > 0)
    u = np.einsum("m,mia->ia", s * np.sqrt(variances), mode_patterns(modes))
    return _tensor_error(u, analytic_displacement_tensors(modes, temperature_k, tol_thz))


def optimise_special_displacement(modes: SupercellModes, temperature_k: float,
                                  initial_signs: np.ndarray | None = None,
                                  max_sweeps: int = DEFAULT_MAX_SWEEPS,
                                  tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> SpecialDisplacement:
    """The ZG configuration at ``temperature_k`` (K) with signs from the single-flip local search on E(S).

    Starts from ``initial_signs`` (default: :func:`alternating_signs`), deterministic. Raises
    :class:`~aiida_mlepi.core.sampling.SamplingError` for a bad temperature, imaginary/soft modes or
    bad signs / ``max_sweeps``.
    """
    if isinstance(max_sweeps, bool) or int(max_sweeps) != max_sweeps or max_sweeps < 0:
        raise SamplingError(f"max_sweeps must be an integer ≥ 0, got {max_sweeps}")
    variances = mode_variances(modes, temperature_k, tol_thz)
    sampled = variances > 0
    signs = _check_signs(alternating_signs(modes) if initial_signs is None else initial_signs, sampled)
    target = analytic_displacement_tensors(modes, temperature_k, tol_thz)
    # d_μ = σ_μ ε_μ/√M per sampled mode (Å); u = Σ S_μ d_μ
    steps = np.sqrt(variances)[:, None, None] * mode_patterns(modes)
    u = np.einsum("m,mia->ia", signs, steps)
    error_start = _tensor_error(u, target)
    # relative threshold: floating-point noise in ΔE must not make the search cycle
    threshold = 1e-12 * float(np.sum(target**2))
    order = np.flatnonzero(sampled)[np.argsort(np.asarray(modes.frequencies_thz)[sampled], kind="stable")]

    # per atom a, with v = u + d the flipped configuration (d = −2 S_μ steps_μ):
    # |v|² = |u|² + 2 d·u + |d|²,  vᵀUv = uᵀUu + 2 dᵀUu + dᵀUd  — only row dot products per candidate
    target_steps = np.einsum("iab,mib->mia", target, steps)
    step_sq = (steps**2).sum(axis=2)
    step_u_step = (steps * target_steps).sum(axis=2)
    u_target = np.einsum("iab,ib->ia", target, u)
    u_sq = (u**2).sum(axis=1)
    u_u_target = (u * u_target).sum(axis=1)
    n_sweeps = n_flips = 0
    converged = False
    while n_sweeps < int(max_sweeps):
        n_sweeps += 1
        flips = 0
        for mu in order:
            c = -2.0 * signs[mu]
            v_sq = u_sq + 2.0 * c * (steps[mu] * u).sum(axis=1) + c * c * step_sq[mu]
            v_u_target = u_u_target + 2.0 * c * (steps[mu] * u_target).sum(axis=1) + c * c * step_u_step[mu]
            delta = np.sum(v_sq**2 - u_sq**2 - 2.0 * (v_u_target - u_u_target))
            if delta < -threshold:
                u = u + c * steps[mu]
                u_target = u_target + c * target_steps[mu]
                u_sq, u_u_target = v_sq, v_u_target
                signs[mu] = -signs[mu]
                flips += 1
        n_flips += flips
        if flips == 0:
            converged = True
            break
    # rebuild u from the signs (no accumulated round-off from the flips)
    u = np.einsum("m,mia->ia", signs, steps)
    return SpecialDisplacement(displacements=u, signs=signs, temperature_k=float(temperature_k),
                               target_tensors=target, error_initial=error_start,
                               error=_tensor_error(u, target), n_sweeps=n_sweeps, n_flips=n_flips,
                               converged=converged)


def special_displacements(modes: SupercellModes, temperature_k: float, antipode: bool = True,
                          max_sweeps: int = DEFAULT_MAX_SWEEPS,
                          tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> np.ndarray:
    """(n_cfg, N, 3) ZG displacements in Å: [u, −u] with ``antipode`` (default), else [u].

    u from :func:`optimise_special_displacement` (alternating start, single-flip search on E(S)).
    """
    u = optimise_special_displacement(modes, temperature_k, max_sweeps=max_sweeps, tol_thz=tol_thz).displacements
    return np.stack([u, -u]) if antipode else u[None]
