"""Calcfunctions of the phonon stage: phonopy displacements and the supercell modes from forces."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.phonons import PhononSetup
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.phonon_modes import PhononModesData


def displacement_label(index: int) -> str:
    return f"displacement_{index:04d}"


#: label of the undisplaced supercell among the supercells of :func:`generate_displacements`
UNDISPLACED_LABEL = "undisplaced"


@calcfunction
def generate_displacements(structure: LayeredStructureData, supercell_matrix: orm.List,
                           displacement_angstrom: orm.Float, include_undisplaced: orm.Bool | None = None) -> dict:
    """Symmetry-reduced finite displacements of the supercell (phonopy).

    Outputs: ``phonopy_setup`` (Dict, the serialised phonopy setup) and ``supercells`` (a namespace of
    displaced supercells, ``displacement_0000`` …, and with ``include_undisplaced`` the undisplaced supercell
    as ``undisplaced``, whose forces :func:`collect_supercell_modes` subtracts as residual forces).
    """
    setup = PhononSetup.create(structure.get_ase(), supercell_matrix=supercell_matrix.get_list(),
                               displacement_angstrom=displacement_angstrom.value)
    material = structure.material
    supercells = {
        displacement_label(n): LayeredStructureData.from_ase(atoms, material=material)
        for n, atoms in enumerate(setup.displaced_supercells())
    }
    if include_undisplaced is not None and include_undisplaced.value:
        supercells[UNDISPLACED_LABEL] = LayeredStructureData.from_ase(setup.supercell, material=material)
    return {"phonopy_setup": orm.Dict(setup.to_dict()), "supercells": supercells}


@calcfunction
def collect_supercell_modes(phonopy_setup: orm.Dict, material: orm.Str, **forces: orm.ArrayData) -> dict:
    """Force constants (phonopy, acoustic sum rule enforced) and every mode of the supercell.

    ``forces`` are the ``forces`` ArrayData of each displaced supercell, keyed by its label; those of
    ``undisplaced``, if given, are subtracted from every displaced supercell's (residual-force correction).
    """
    setup = PhononSetup.from_dict(phonopy_setup.get_dict())
    residual = forces[UNDISPLACED_LABEL].get_array("forces") if UNDISPLACED_LABEL in forces else None
    ordered = [forces[key].get_array("forces") for key in sorted(forces) if key != UNDISPLACED_LABEL]
    modes = setup.supercell_modes(ordered, residual)
    supercell = LayeredStructureData.from_ase(modes.supercell, material=material.value or None)
    return {"modes": PhononModesData.from_modes(modes, material=material.value or None), "supercell": supercell}
