"""Calcfunctions of the phonon stage: phonopy displacements and the supercell modes from forces."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.phonons import PhononSetup
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.phonon_modes import PhononModesData


def displacement_label(index: int) -> str:
    return f"displacement_{index:04d}"


@calcfunction
def generate_displacements(structure: LayeredStructureData, supercell_matrix: orm.List,
                           displacement_angstrom: orm.Float) -> dict:
    """Symmetry-reduced finite displacements of the supercell (phonopy).

    Outputs: ``phonopy_setup`` (Dict, the serialised phonopy setup) and ``supercells`` (a namespace of
    displaced supercells, ``displacement_0000`` …).
    """
    setup = PhononSetup.create(structure.get_ase(), supercell_matrix=supercell_matrix.get_list(),
                               displacement_angstrom=displacement_angstrom.value)
    material = structure.material
    supercells = {
        displacement_label(n): LayeredStructureData.from_ase(atoms, material=material)
        for n, atoms in enumerate(setup.displaced_supercells())
    }
    return {"phonopy_setup": orm.Dict(setup.to_dict()), "supercells": supercells}


@calcfunction
def collect_supercell_modes(phonopy_setup: orm.Dict, material: orm.Str, **forces: orm.ArrayData) -> dict:
    """Force constants (phonopy, acoustic sum rule enforced) and every mode of the supercell.

    ``forces`` are the ``forces`` ArrayData of each displaced supercell, keyed by its label.
    """
    setup = PhononSetup.from_dict(phonopy_setup.get_dict())
    ordered = [forces[key].get_array("forces") for key in sorted(forces)]
    modes = setup.supercell_modes(ordered)
    supercell = LayeredStructureData.from_ase(modes.supercell, material=material.value or None)
    return {"modes": PhononModesData.from_modes(modes, material=material.value or None), "supercell": supercell}
