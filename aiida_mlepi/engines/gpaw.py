"""GPAW LCAO as a dataset engine (``engine='gpaw'``): one GpawLcaoCalculation (CalcJob) per member.

``engine_inputs`` must hold ``code``: an InstalledCode whose executable is a Python interpreter of an
environment with GPAW and aiida-mlepi (e.g. this ``.venv/bin/python``). Parameters:
:class:`~aiida_mlepi.core.engine.gpaw_lcao.GpawLcaoSettings` (defaults from ``protocols/dataset.yaml``).
Optional ``engine_inputs['options']`` (Dict) updates ``metadata.options`` (resources, wall time, …).
"""

from __future__ import annotations

from typing import Any

from aiida import orm

from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings

from .reference import ForcesArrayEngine


class GpawDatasetEngine(ForcesArrayEngine):
    """``engine='gpaw'``: :class:`~aiida_mlepi.calculations.gpaw.GpawLcaoCalculation`."""

    name = "gpaw"
    provides_hamiltonian = True

    def validate(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs) -> str | None:
        try:
            GpawLcaoSettings.from_dict(parameters)
        except (TypeError, ValueError) as exception:
            return f"invalid GPAW parameters: {exception}"
        if not isinstance(engine_inputs.get("code"), orm.AbstractCode):
            return "engine_inputs.code (a Python interpreter with GPAW and aiida-mlepi) is required"
        unknown = set(engine_inputs) - {"code", "options"}
        if unknown:
            return f"unknown engine_inputs {sorted(unknown)} for GPAW (allowed: code, options)"
        return super().validate(structure, parameters, kpoints_mesh, hamiltonian, engine_inputs)

    def process_inputs(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs
                       ) -> tuple[Any, dict[str, Any]]:
        from aiida_mlepi.calculations.gpaw import GpawLcaoCalculation

        options = {"environment_variables": {"OMP_NUM_THREADS": "1"}}
        if "options" in engine_inputs:
            options.update(engine_inputs["options"].get_dict())
        return GpawLcaoCalculation, {"code": engine_inputs["code"], "structure": structure,
                                     "parameters": parameters, "kpoints_mesh": kpoints_mesh,
                                     "hamiltonian": orm.Bool(hamiltonian), "metadata": {"options": options}}
