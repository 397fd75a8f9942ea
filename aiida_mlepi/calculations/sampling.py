"""Calcfunction of the Monte-Carlo thermal sampling stage (paper Eq. 1–2)."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.sampling import sample_displacements, sampled_structures
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.phonon_modes import PhononModesData


def sample_label(index: int) -> str:
    return f"sample_{index:04d}"


def temperature_seed(seed: int, temperature_k: float) -> int:
    """An independent, reproducible random stream for each (seed, temperature)."""
    return int(np.random.SeedSequence([int(seed), int(round(temperature_k * 1000))]).generate_state(1)[0])


@calcfunction
def sample_configurations(modes: PhononModesData, temperature_k: orm.Float, n_samples: orm.Int,
                          seed: orm.Int, antithetic: orm.Bool) -> dict:
    """``n_samples`` thermally displaced supercells at ``temperature_k`` (zero point included).

    Every output (``sample_0000`` …) is a :class:`LayeredStructureData` carrying the queryable
    attributes ``material``, ``temperature_k``, ``sample_index`` and ``seed``.
    """
    core_modes = modes.get_modes()
    temperature = float(temperature_k.value)
    displacements = sample_displacements(core_modes, temperature, int(n_samples.value),
                                         seed=temperature_seed(seed.value, temperature),
                                         antithetic=bool(antithetic.value))
    structures = sampled_structures(core_modes, displacements)
    return {
        sample_label(n): LayeredStructureData.from_ase(atoms, material=modes.material, temperature_k=temperature,
                                                       sample_index=n, seed=int(seed.value))
        for n, atoms in enumerate(structures)
    }
