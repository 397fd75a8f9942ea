"""Calcfunction that builds a training set: perturbed supercells labelled by the reference engine.

``label_perturbed_configurations(structure, n_configurations, perturbation, kpoints_mesh,
engine_parameters, seed)`` → :class:`~aiida_mlepi.data.configuration_set.ConfigurationSetData` with
energies (eV) and forces (eV/Å) of ``n_configurations`` perturbed supercells
(:func:`aiida_mlepi.core.perturbations.perturbed_configurations`; ``perturbation`` holds
:class:`~aiida_mlepi.core.perturbations.PerturbationSettings` fields). For a 4×4 supercell of
graphene, kpoints_mesh [3, 3, 1] samples like 12×12 in the unit cell.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.dataset import ConfigurationSet
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.data.configuration_set import ConfigurationSetData
from aiida_mlepi.data.layered_structure import LayeredStructureData

from .engine import make_engine


def label_configurations(configurations, engine, kpts) -> ConfigurationSet:
    """Energies and forces of each structure with ``engine`` at ``kpts`` (database-free)."""
    results = [engine.compute(atoms, kpts=tuple(kpts)) for atoms in configurations]
    return ConfigurationSet(list(configurations), [r.energy for r in results], [r.forces for r in results])


@calcfunction
def label_perturbed_configurations(structure: LayeredStructureData, n_configurations: orm.Int,
                                   perturbation: orm.Dict, kpoints_mesh: orm.List, engine_parameters: orm.Dict,
                                   seed: orm.Int) -> ConfigurationSetData:
    """Perturbed supercells of ``structure`` with reference-engine energies (eV) and forces (eV/Å)."""
    settings = PerturbationSettings.from_dict(perturbation.get_dict())
    atoms = perturbed_configurations(structure.get_ase(), n_configurations.value, settings, seed=seed.value)
    data = label_configurations(atoms, make_engine(engine_parameters), kpoints_mesh.get_list())
    node = ConfigurationSetData.from_configuration_set(data, material=structure.material, source="reference-engine")
    node.base.attributes.set("perturbation", settings.as_dict())
    node.base.attributes.set("kpoints_mesh", list(kpoints_mesh.get_list()))
    node.base.attributes.set("seed", seed.value)
    return node
