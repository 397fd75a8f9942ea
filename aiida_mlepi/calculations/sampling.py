"""Calcfunctions of the thermal sampling stage: Monte Carlo (paper Eq. 1–2) and special displacements (ZG)."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.sampling import excluding_rigid_layer_modes, sample_displacements, sampled_structures
from aiida_mlepi.core.special_displacements import special_displacements
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.phonon_modes import PhononModesData

#: the thermal samplers: Monte Carlo and the special displacement method of Zacharias & Giustino
SAMPLERS = ("mc", "zg")


def sample_label(index: int) -> str:
    return f"sample_{index:04d}"


def temperature_seed(seed: int, temperature_k: float) -> int:
    """An independent, reproducible random stream for each (seed, temperature)."""
    return int(np.random.SeedSequence([int(seed), int(round(temperature_k * 1000))]).generate_state(1)[0])


def sampled_modes(modes: PhononModesData, exclude_rigid_layer_modes: orm.Bool | None):
    """The core modes to sample: all (but the Γ translations), or also without the Γ interlayer
    shear/breathing modes (:func:`~aiida_mlepi.core.sampling.excluding_rigid_layer_modes`)."""
    core_modes = modes.get_modes()
    if exclude_rigid_layer_modes is not None and exclude_rigid_layer_modes.value:
        return excluding_rigid_layer_modes(core_modes)
    return core_modes


@calcfunction
def sample_configurations(modes: PhononModesData, temperature_k: orm.Float, n_samples: orm.Int,
                          seed: orm.Int, antithetic: orm.Bool,
                          exclude_rigid_layer_modes: orm.Bool | None = None) -> dict:
    """``n_samples`` thermally displaced supercells at ``temperature_k`` (zero point included).

    Every output (``sample_0000`` …) is a :class:`LayeredStructureData` carrying the queryable
    attributes ``material``, ``temperature_k``, ``sample_index``, ``seed`` and ``sampler`` (``'mc'``).
    """
    core_modes = sampled_modes(modes, exclude_rigid_layer_modes)
    temperature = float(temperature_k.value)
    displacements = sample_displacements(core_modes, temperature, int(n_samples.value),
                                         seed=temperature_seed(seed.value, temperature),
                                         antithetic=bool(antithetic.value))
    structures = sampled_structures(core_modes, displacements)
    return {
        sample_label(n): LayeredStructureData.from_ase(atoms, material=modes.material, temperature_k=temperature,
                                                       sample_index=n, seed=int(seed.value), sampler="mc")
        for n, atoms in enumerate(structures)
    }


@calcfunction
def special_configurations(modes: PhononModesData, temperature_k: orm.Float, antipode: orm.Bool,
                           exclude_rigid_layer_modes: orm.Bool | None = None) -> dict:
    """The ZG special-displacement supercell at ``temperature_k`` (``sample_0000``) and, with ``antipode``,
    its mirror −u (``sample_0001``); see :mod:`aiida_mlepi.core.special_displacements`.

    Outputs are :class:`LayeredStructureData` with ``material``, ``temperature_k``, ``sample_index`` and
    ``sampler`` (``'zg'``); no ``seed``: the configuration is deterministic.
    """
    core_modes = sampled_modes(modes, exclude_rigid_layer_modes)
    temperature = float(temperature_k.value)
    structures = sampled_structures(core_modes, special_displacements(core_modes, temperature,
                                                                      antipode=bool(antipode.value)))
    return {
        sample_label(n): LayeredStructureData.from_ase(atoms, material=modes.material, temperature_k=temperature,
                                                       sample_index=n, sampler="zg")
        for n, atoms in enumerate(structures)
    }
