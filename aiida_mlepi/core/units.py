"""Physical constants and unit conversions (CODATA 2018). Every name carries its unit."""

from __future__ import annotations

HBAR_EV_S = 6.582119569e-16  #: reduced Planck constant in eV·s
KB_EV_PER_K = 8.617333262e-5  #: Boltzmann constant in eV/K
AMU_KG = 1.66053906660e-27  #: atomic mass unit in kg
EV_J = 1.602176634e-19  #: electron volt in J
ANGSTROM_M = 1.0e-10  #: ångström in m
THZ_TO_CM1 = 1.0e12 / 2.99792458e10  #: frequency conversion THz -> cm⁻¹ (≈ 33.356)
THZ_TO_EV = 4.135667696e-3  #: h·(1 THz) in eV

#: group velocity (1/ħ)·dE/dk for E in eV and k in Å⁻¹, expressed in m/s (≈ 1.519e5)
EV_ANGSTROM_TO_M_PER_S = ANGSTROM_M / HBAR_EV_S

#: m/s per displayed unit of a Fermi velocity: every table and plot shows vF in 10⁶ m/s
VELOCITY_DISPLAY_M_PER_S = 1.0e6
