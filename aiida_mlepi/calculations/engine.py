"""Calcfunctions that run the reference engine (energy, forces, H(R)) on one structure each."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.engine import EngineParameters, ReferenceEngine
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import SAMPLE_ATTRIBUTES, LayeredStructureData


def make_engine(parameters: orm.Dict | dict | None) -> ReferenceEngine:
    """The reference engine for a (possibly empty) parameter dictionary."""
    values = parameters.get_dict() if isinstance(parameters, orm.Dict) else dict(parameters or {})
    return ReferenceEngine(EngineParameters.from_dict(values))


def structure_labels(structure: LayeredStructureData) -> dict:
    """The queryable labels (material, temperature, sample index, seed) a structure carries."""
    attrs = structure.base.attributes
    labels = {key: attrs.get(key) for key in ("material", *SAMPLE_ATTRIBUTES) if attrs.get(key, None) is not None}
    return labels


@calcfunction
def compute_engine_forces(structure: LayeredStructureData, parameters: orm.Dict,
                          kpoints_mesh: orm.List) -> dict:
    """Energy (eV) and forces (eV/Å) of the reference engine.

    Output ``forces``: ArrayData with arrays ``forces`` (N, 3) eV/Å and ``energy`` (1,) eV.
    """
    result = make_engine(parameters).compute(structure.get_ase(), kpts=tuple(kpoints_mesh.get_list()))
    node = orm.ArrayData()
    node.set_array("forces", np.asarray(result.forces))
    node.set_array("energy", np.array([result.energy]))
    node.base.attributes.set("energy_ev", float(result.energy))
    node.base.attributes.set("units", {"forces": "eV/Angstrom", "energy": "eV"})
    return {"forces": node}


@calcfunction
def compute_engine_hamiltonian(structure: LayeredStructureData, parameters: orm.Dict) -> HamiltonianData:
    """Real-space H(R), S(R) of the reference engine for one structure (no diagonalisation)."""
    h = make_engine(parameters).hamiltonian(structure.get_ase())
    return HamiltonianData.from_hamiltonian(h, **structure_labels(structure))


@calcfunction
def relax_bilayer_graphene(stacking: orm.Str, parameters: orm.Dict, kpoints_mesh: orm.List) -> LayeredStructureData:
    """Bilayer graphene with lattice constant and interlayer distance relaxed with the reference engine."""
    from aiida_mlepi.core.engine.relax import relaxed_bilayer_graphene

    atoms = relaxed_bilayer_graphene(make_engine(parameters), stacking=stacking.value,
                                     kpts=tuple(kpoints_mesh.get_list()))
    return LayeredStructureData.from_ase(atoms, material=f"{stacking.value}-bilayer-graphene")
