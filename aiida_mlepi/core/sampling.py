"""Monte-Carlo thermal sampling of atomic displacements in the harmonic approximation (paper Eq. 1–2).

Each configuration is y = y_eq + Δσ with the displacement of atom a along Cartesian α

    u_aα = Σ_μ ε_μ,aα / √M_a · A_μ,     A_μ ~ N(0, σ_μ²),     σ_μ² = ħ/(2ω_μ) · coth(ħω_μ / 2k_BT),

where ε_μ are the real orthonormal mass-weighted eigenvectors of *all* modes of the supercell
(:class:`~aiida_mlepi.core.phonons.SupercellModes`), ω_μ = 2π·f_μ. This is Eq. 2 of the paper written
in normal-mode form: ⟨v²⟩ = ħ/(2Mω)·coth(ħω/2k_BT) is the variance per atom and mode, σ_μ² the variance of
the mass-weighted normal coordinate (unit amu·Å²). Zero-point motion is included (coth → 1 at T = 0).
The three Γ acoustic translations (``modes.acoustic_mask``) are excluded: they move the whole crystal.

Why not ``phonopy.phonon.random_displacements.RandomDisplacements``: it draws the same distribution but
(i) needs a live Phonopy object with the primitive cell and force constants, whereas here the sampling
must run from the stored supercell modes alone (an AiiDA node), (ii) silently replaces imaginary
frequencies by |ω| and drops every mode below a cutoff (0.01 THz) — here imaginary or soft non-acoustic
modes are an error the user must see, and (iii) works with complex Bloch modes at half of the commensurate
q-points, which makes the per-mode bookkeeping (acoustic exclusion, antithetic pairs) less transparent.
Drawing from real supercell eigenvectors is a few lines of numpy.

Units: frequencies THz, masses amu, displacements Å, temperature K; constants from
:mod:`aiida_mlepi.core.units` (CODATA 2018).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ase import Atoms

from .layers import LAYER_ARRAY, get_layer_ids
from .phonons import IMAGINARY_TOLERANCE_THZ, SupercellModes
from .units import AMU_KG, ANGSTROM_M, EV_J, HBAR_EV_S, KB_EV_PER_K, THZ_TO_CM1

#: ħ/(2ω) for ω = 2π·(1 THz), in amu·Å²: σ² = NORMAL_VARIANCE_AMU_A2_THZ / f_THz · coth(…)
NORMAL_VARIANCE_AMU_A2_THZ = HBAR_EV_S * EV_J / (2.0 * 2.0 * np.pi * 1e12) / (AMU_KG * ANGSTROM_M**2)


class SamplingError(ValueError):
    """The thermal sampling cannot be done as asked (bad temperature, sample count, unstable modes)."""


def _check_temperature(temperature_k: float) -> float:
    t = float(temperature_k)
    if not np.isfinite(t) or t < 0:
        raise SamplingError(f"temperature must be a finite number ≥ 0 K, got {temperature_k}")
    return t


def sampled_mode_mask(modes: SupercellModes, tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> np.ndarray:
    """(3N,) bool: the modes that are sampled (all but the Γ acoustic translations).

    Raises :class:`SamplingError` if a sampled mode is imaginary (f < −tol_thz) or soft
    (|f| ≤ tol_thz, whose amplitude would diverge), naming how many and the lowest frequency.
    """
    tol = abs(float(tol_thz))
    mask = ~np.asarray(modes.acoustic_mask, dtype=bool)
    freqs = np.asarray(modes.frequencies_thz, dtype=float)[mask]
    imaginary = freqs < -tol
    if imaginary.any():
        lowest = freqs.min()
        raise SamplingError(
            f"{int(imaginary.sum())} imaginary non-acoustic mode(s) below −{tol:.3g} THz, lowest "
            f"{lowest:.4g} THz ({lowest * THZ_TO_CM1:.4g} cm⁻¹): the structure is not at a minimum of the "
            "force field (relax it, or check the force constants) so harmonic sampling is undefined")
    soft = np.abs(freqs) <= tol
    if soft.any():
        raise SamplingError(
            f"{int(soft.sum())} non-acoustic mode(s) with |f| ≤ {tol:.3g} THz (e.g. {freqs[soft][0]:.3g} THz): "
            "their thermal amplitude diverges; only the 3 Γ acoustic translations may be zero")
    return mask


def rigid_layer_mode_mask(modes: SupercellModes, threshold: float = 0.99) -> np.ndarray:
    """(3N,) bool: the Γ modes in which every layer moves as a rigid body.

    A mode is rigid-layer if ≥ ``threshold`` of its mass-weighted norm lies in the span of the uniform
    translations of each layer: the 3 acoustic translations and, for n layers, 3(n − 1) interlayer
    shear (in-plane) and breathing (out-of-plane) modes.
    """
    ids = get_layer_ids(modes.supercell)
    masses = np.sqrt(np.asarray(modes.masses_amu, dtype=float))
    basis = []
    for layer in np.unique(ids):
        for axis in range(3):
            v = np.zeros((len(ids), 3))
            v[ids == layer, axis] = masses[ids == layer]
            basis.append((v / np.linalg.norm(v)).ravel())
    eig = np.asarray(modes.eigenvectors, dtype=float).reshape(len(modes.frequencies_thz), -1)
    return np.sum((eig @ np.array(basis).T) ** 2, axis=1) >= threshold


def excluding_rigid_layer_modes(modes: SupercellModes) -> SupercellModes:
    """The same modes with the Γ interlayer shear/breathing modes excluded from sampling, like the
    acoustic translations (``acoustic_mask`` is the set of excluded modes).

    Why (measured, reference engine, 6×6 AB bilayer): at 300 K the two Γ shear modes (24 cm⁻¹) give
    0.0139 of the 0.0172 Å² in-plane MSD per atom, 5× what all other modes give together. In an n×n
    cell each represents the q → 0 end of its branch with Brillouin-zone weight 1/n² but the largest
    amplitude (σ² ∝ coth(ħω/2k_BT)/ω), and it moves whole layers against each other (a change of
    stacking, not a lattice vibration that changes either layer's bands); its share of the MSD vanishes
    as 1/n² in the converged limit. The out-of-plane (ZA) branch is kept: its MSD grows slowly (log n)
    with the supercell, but long-wavelength flexural waves are locally rigid rotations that barely
    change the bands; the supercell-convergence benchmark shows the observable converges regardless.
    """
    excluded = np.asarray(modes.acoustic_mask, dtype=bool) | rigid_layer_mode_mask(modes)
    return replace(modes, acoustic_mask=excluded)


def mode_variances(modes: SupercellModes, temperature_k: float,
                   tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> np.ndarray:
    """(3N,) σ_μ² = ħ/(2ω_μ)·coth(ħω_μ/2k_BT) in amu·Å²; 0 for the excluded Γ acoustic modes."""
    t = _check_temperature(temperature_k)
    mask = sampled_mode_mask(modes, tol_thz)
    freqs = np.asarray(modes.frequencies_thz, dtype=float)[mask]
    if t == 0.0:
        coth = np.ones_like(freqs)
    else:
        x = (HBAR_EV_S * 2.0 * np.pi * 1e12 * freqs) / (2.0 * KB_EV_PER_K * t)
        coth = 1.0 / np.tanh(x)
    variances = np.zeros(mask.shape)
    variances[mask] = NORMAL_VARIANCE_AMU_A2_THZ / freqs * coth
    return variances


def mode_patterns(modes: SupercellModes) -> np.ndarray:
    """(3N, N, 3) Cartesian displacement per unit normal coordinate: ε_μ / √M (Å per √amu·Å)."""
    masses = np.asarray(modes.masses_amu, dtype=float)
    return np.asarray(modes.eigenvectors, dtype=float) / np.sqrt(masses)[None, :, None]


def analytic_displacement_tensors(modes: SupercellModes, temperature_k: float,
                                  tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> np.ndarray:
    """(N, 3, 3) thermal anisotropic displacement tensors ⟨u_a u_aᵀ⟩ in Å²: U_a = Σ_μ σ_μ² e_μa e_μaᵀ / M_a.

    Γ acoustic modes excluded; the diagonal is the per-component mean-square displacement ⟨u_aα²⟩.
    """
    weighted = np.sqrt(mode_variances(modes, temperature_k, tol_thz))[:, None, None] * mode_patterns(modes)
    return np.einsum("mia,mib->iab", weighted, weighted)


def analytic_mean_square_displacement(modes: SupercellModes, temperature_k: float,
                                      tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> np.ndarray:
    """(N,) ⟨|u_a|²⟩ in Å² from the modes: Σ_μ σ_μ² Σ_α ε_μ,aα² / M_a (Γ acoustic modes excluded)."""
    return np.trace(analytic_displacement_tensors(modes, temperature_k, tol_thz), axis1=1, axis2=2)


def sample_displacements(modes: SupercellModes, temperature_k: float, n_samples: int, seed: int,
                         antithetic: bool = False, tol_thz: float = IMAGINARY_TOLERANCE_THZ) -> np.ndarray:
    """(n_samples, N, 3) thermal displacements in Å drawn from Eq. 2 (seeded, reproducible).

    With ``antithetic=True`` the samples come in pairs (u, −u) — sample 2k+1 is −(sample 2k) — which
    cancels every odd-order term of an observable's expansion in u; an odd ``n_samples`` ends with an
    unpaired sample.
    """
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise SamplingError(f"n_samples must be an integer ≥ 1, got {n_samples}")
    n_samples = int(n_samples)
    variances = mode_variances(modes, temperature_k, tol_thz)
    keep = variances > 0
    sigma = np.sqrt(variances[keep])
    patterns = mode_patterns(modes)[keep]
    n_draws = (n_samples + 1) // 2 if antithetic else n_samples
    rng = np.random.default_rng(seed)
    amplitudes = rng.standard_normal((n_draws, sigma.size)) * sigma
    u = np.einsum("sm,mia->sia", amplitudes, patterns)
    if antithetic:
        u = np.stack([u, -u], axis=1).reshape((2 * n_draws,) + u.shape[1:])[:n_samples]
    return u


def sampled_structures(modes: SupercellModes, displacements: np.ndarray) -> list[Atoms]:
    """The supercell displaced by each ``displacements[s]`` (Å), with its layer ids and pbc."""
    u = np.asarray(displacements, dtype=float)
    n = len(modes.supercell)
    if u.ndim == 2:
        u = u[None]
    if u.shape[1:] != (n, 3):
        raise SamplingError(f"displacements must have shape (n_samples, {n}, 3), got {np.shape(displacements)}")
    ids = get_layer_ids(modes.supercell)
    out = []
    for disp in u:
        atoms = modes.supercell.copy()
        atoms.positions = atoms.positions + disp
        if LAYER_ARRAY in atoms.arrays:
            del atoms.arrays[LAYER_ARRAY]
        atoms.set_array(LAYER_ARRAY, ids.copy())
        out.append(atoms)
    return out
