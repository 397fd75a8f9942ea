"""The reference tight-binding engine as a dataset engine (one calcfunction per member, in-process)."""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.calculations.engine import make_engine, structure_labels
from aiida_mlepi.core.engine import SUPPORTED_ELEMENTS, EngineParameters
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData

from .base import DatasetEngine, MemberFailure, require_output


def energy_forces_node(energy_ev: float, forces_ev_per_angstrom: np.ndarray) -> orm.ArrayData:
    """ArrayData with arrays ``forces`` (N, 3) eV/Å and ``energy`` (1,) eV, attribute ``energy_ev``."""
    node = orm.ArrayData()
    node.set_array("forces", np.asarray(forces_ev_per_angstrom, dtype=float))
    node.set_array("energy", np.array([float(energy_ev)]))
    node.base.attributes.set("energy_ev", float(energy_ev))
    node.base.attributes.set("units", {"forces": "eV/Angstrom", "energy": "eV"})
    return node


def read_energy_forces(node: orm.ArrayData) -> tuple[float, np.ndarray]:
    """Inverse of :func:`energy_forces_node`."""
    return float(node.get_array("energy")[0]), np.asarray(node.get_array("forces"), dtype=float)


@calcfunction
def reference_single_point(structure: LayeredStructureData, parameters: orm.Dict, kpoints_mesh: orm.List,
                           hamiltonian: orm.Bool) -> dict:
    """Free energy (eV), forces (eV/Å) and, if ``hamiltonian``, H(R) of the reference engine.

    Outputs ``forces`` (see :func:`energy_forces_node`) and optionally ``hamiltonian`` (HamiltonianData).
    """
    result = make_engine(parameters).compute(structure.get_ase(), kpts=tuple(kpoints_mesh.get_list()),
                                             hamiltonian=bool(hamiltonian.value))
    outputs = {"forces": energy_forces_node(result.energy, result.forces)}
    if result.hamiltonian is not None:
        outputs["hamiltonian"] = HamiltonianData.from_hamiltonian(result.hamiltonian, **structure_labels(structure))
    return outputs


class ForcesArrayEngine(DatasetEngine):
    """An engine whose process returns ``forces`` (see :func:`energy_forces_node`) and, when asked,
    ``hamiltonian`` (HamiltonianData): the shared result handling of the reference and GPAW engines."""

    provides_forces_node = True

    def result_nodes(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        return {"forces": require_output(node, "forces")}

    def forces_node(self, node: orm.ProcessNode) -> orm.ArrayData:
        return require_output(node, "forces")

    @staticmethod
    def energy_and_forces(nodes: dict[str, orm.Data]) -> tuple[float, np.ndarray]:
        return read_energy_forces(nodes["forces"])

    def hamiltonian_node(self, node: orm.ProcessNode) -> orm.Data:
        out = require_output(node, "hamiltonian")
        if not isinstance(out, HamiltonianData):
            raise MemberFailure(f"output 'hamiltonian' is a {type(out).__name__}, not HamiltonianData")
        return out


class ReferenceDatasetEngine(ForcesArrayEngine):
    """``engine='reference'``: :class:`~aiida_mlepi.core.engine.ReferenceEngine`; parameters = EngineParameters."""

    name = "reference"
    provides_hamiltonian = True
    orthogonal_basis = True

    def unsupported_elements(self, symbols: set[str]) -> list[str]:
        return sorted(set(symbols) - set(SUPPORTED_ELEMENTS))

    def validate(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs) -> str | None:
        try:
            EngineParameters.from_dict(parameters)
        except (TypeError, ValueError) as exception:
            return f"invalid reference-engine parameters: {exception}"
        if engine_inputs:
            return f"the reference engine takes no engine_inputs, got {sorted(engine_inputs)}"
        return super().validate(structure, parameters, kpoints_mesh, hamiltonian, engine_inputs)

    def process_inputs(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs
                       ) -> tuple[Any, dict[str, Any]]:
        return reference_single_point, {"structure": structure, "parameters": parameters,
                                        "kpoints_mesh": kpoints_mesh, "hamiltonian": orm.Bool(hamiltonian)}
