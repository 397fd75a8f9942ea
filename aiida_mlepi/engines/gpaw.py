"""GPAW LCAO as a dataset engine (``engine='gpaw'``): one GpawBaseWorkChain per member.

Each member is a :class:`~aiida_mlepi.workchains.gpaw_base.GpawBaseWorkChain` (``mlepi.gpaw.base``)
around the CalcJob :class:`~aiida_mlepi.calculations.gpaw.GpawLcaoCalculation`: a member whose SCF
does not converge is relaunched with more iterations and gentler mixing (never with another
smearing: all members of a dataset share one), so datasets heal themselves; what could not be
healed is excluded and reported by the DatasetWorkChain with the WorkChain's exit code (410–412).

``engine_inputs`` must hold ``code``: an InstalledCode whose executable is a Python interpreter of an
environment with GPAW and aiida-mlepi (e.g. this ``.venv/bin/python``). Parameters:
:class:`~aiida_mlepi.core.engine.gpaw_lcao.GpawLcaoSettings` (defaults from ``protocols/dataset.yaml``).
Optional ``engine_inputs['options']`` (Dict) updates ``metadata.options`` (resources, wall time, …);
optional ``engine_inputs['max_iterations']`` (Int) caps the CalcJobs per member (default: the ladder's).
"""

from __future__ import annotations

from typing import Any

from aiida import orm

from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings

from .reference import ForcesArrayEngine

#: engine_inputs the GPAW engine accepts
ENGINE_INPUTS = ("code", "options", "max_iterations")


class GpawDatasetEngine(ForcesArrayEngine):
    """``engine='gpaw'``: :class:`~aiida_mlepi.workchains.gpaw_base.GpawBaseWorkChain` per member."""

    name = "gpaw"
    provides_hamiltonian = True

    def validate(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs) -> str | None:
        try:
            GpawLcaoSettings.from_dict(parameters)
        except (TypeError, ValueError) as exception:
            return f"invalid GPAW parameters: {exception}"
        if not isinstance(engine_inputs.get("code"), orm.AbstractCode):
            return "engine_inputs.code (a Python interpreter with GPAW and aiida-mlepi) is required"
        unknown = set(engine_inputs) - set(ENGINE_INPUTS)
        if unknown:
            return f"unknown engine_inputs {sorted(unknown)} for GPAW (allowed: {', '.join(ENGINE_INPUTS)})"
        return super().validate(structure, parameters, kpoints_mesh, hamiltonian, engine_inputs)

    def process_inputs(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs
                       ) -> tuple[Any, dict[str, Any]]:
        from aiida_mlepi.workchains.gpaw_base import GpawBaseWorkChain

        options = {"environment_variables": {"OMP_NUM_THREADS": "1"}}
        if "options" in engine_inputs:
            options.update(engine_inputs["options"].get_dict())
        inputs = {"gpaw": {"code": engine_inputs["code"], "structure": structure, "parameters": parameters,
                           "kpoints_mesh": kpoints_mesh, "hamiltonian": orm.Bool(hamiltonian),
                           "metadata": {"options": options}},
                  "allow_smearing_increase": orm.Bool(False)}
        if "max_iterations" in engine_inputs:
            inputs["max_iterations"] = engine_inputs["max_iterations"]
        return GpawBaseWorkChain, inputs
