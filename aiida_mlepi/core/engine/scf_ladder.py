"""The ladder of SCF settings a restart climbs when GPAW's SCF does not converge (no AiiDA here).

Used by :class:`~aiida_mlepi.workchains.gpaw_base.GpawBaseWorkChain` (in the mould of
aiida-quantumespresso's ``PwBaseWorkChain.handle_electronic_convergence_not_achieved``, which lowers
``mixing_beta`` and relaunches). Each rung is computed from the user's *original* settings, so the
ladder is the same whatever a run did before:

====  =======================================================================  ===================
rung  change (relative to the original settings)                               physics changed?
====  =======================================================================  ===================
1     ``max_scf_iterations`` × 2 (a slow but steady SCF)                        no
2     mixing β / 2, Pulay history ≥ 8, iterations × 3 (charge sloshing)         no
3     mixing β / 4, history ≥ 10, iterations × 4                                no
4     Fermi–Dirac width × 2 (≥ 0.05 eV), rung-3 mixing (metals, level          yes: opt-in
      crossings at the Fermi level)
====  =======================================================================  ===================

Rungs 1–3 change only how the fixed point is reached: the converged energy, forces and H(R) are
those of the original settings (to the density criterion). Rung 4 changes the Mermin free energy
(by O((k_B T)²) and the occupations), so it is only climbed when ``allow_smearing_increase`` is set:
members of one training set must share one smearing, and the dataset engine leaves it off (a member
that still fails is excluded and reported, not silently labelled with other physics).

GPAW's default mixer (``gpaw.mixer.get_mixer_from_keywords``, GPAW 25.7): β = 0.05, history 5,
weight 50 with any periodic direction; β = 0.25, history 3, weight 1 for a molecule. Halving β of
an oscillating Pulay SCF is the standard cure (Kresse & Furthmüller, Comput. Mater. Sci. 6, 15
(1996), Sec. 7; GPAW's "convergence issues" notes recommend smaller β and longer history).
"""

from __future__ import annotations

from dataclasses import replace

from .gpaw_lcao import GpawLcaoSettings

#: GPAW 25.7 default mixer (β, history) with / without periodic directions (gpaw.mixer)
GPAW_DEFAULT_MIXER = {True: (0.05, 5), False: (0.25, 3)}
#: (iteration factor, β divisor, minimum history) of rungs 1–3
MIXING_RUNGS = ((2, 1.0, None), (3, 2.0, 8), (4, 4.0, 10))
#: smearing rung: width × this factor, at least this many eV
SMEARING_FACTOR, SMEARING_MINIMUM_EV = 2.0, 0.05


def ladder_size(allow_smearing_increase: bool) -> int:
    """Number of rungs above the original settings."""
    return len(MIXING_RUNGS) + int(allow_smearing_increase)


def scf_rung(original: GpawLcaoSettings, rung: int, periodic: bool,
             allow_smearing_increase: bool = False) -> tuple[GpawLcaoSettings, str] | None:
    """Settings of ``rung`` (1, 2, …) built from ``original``, with a description; ``None`` past the top.

    ``periodic``: whether the structure has a periodic direction (selects GPAW's default β, history).
    """
    if rung < 1:
        raise ValueError(f"rung must be ≥ 1, got {rung}")
    if rung > ladder_size(allow_smearing_increase):
        return None
    default_beta, default_history = GPAW_DEFAULT_MIXER[bool(periodic)]
    beta0 = original.mixer_beta if original.mixer_beta is not None else default_beta
    history0 = original.mixer_history if original.mixer_history is not None else default_history
    factor, divisor, history = MIXING_RUNGS[min(rung, len(MIXING_RUNGS)) - 1]
    settings = replace(original, max_scf_iterations=factor * original.max_scf_iterations)
    if divisor != 1.0:
        settings = replace(settings, mixer_beta=beta0 / divisor, mixer_history=max(history0, history))
    description = (f"max_scf_iterations {original.max_scf_iterations} → {settings.max_scf_iterations}"
                   + (f", mixer β {beta0:g} → {settings.mixer_beta:g}, history {history0} → {settings.mixer_history}"
                      if divisor != 1.0 else ""))
    if rung > len(MIXING_RUNGS):
        width = max(SMEARING_FACTOR * original.smearing_width_ev, SMEARING_MINIMUM_EV)
        settings = replace(settings, smearing_width_ev=width)
        description += f", Fermi–Dirac width {original.smearing_width_ev:g} → {width:g} eV (changes the free energy)"
    return settings, description
