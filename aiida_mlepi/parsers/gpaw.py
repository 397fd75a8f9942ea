"""`GpawLcaoParser` (``mlepi.gpaw``): the ``.npz`` of a GpawLcaoCalculation → forces, parameters, H(R)."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from aiida_mlepi.core.engine.gpaw_lcao import ERROR_FILENAME, OUTPUT_FILENAME, read_hamiltonian
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.engines.reference import energy_forces_node


class GpawLcaoParser(Parser):
    """Outputs ``forces`` (energy eV + forces eV/Å), ``output_parameters`` and optionally ``hamiltonian``."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = retrieved.base.repository.list_object_names()
        if OUTPUT_FILENAME not in names:
            if ERROR_FILENAME in names:
                error = json.loads(retrieved.base.repository.get_object_content(ERROR_FILENAME))
                if "Convergence" in error["type"]:
                    return self.exit_codes.ERROR_SCF_NOT_CONVERGED.format(message=error["message"])
                if error["type"] == "GpawHamiltonianError":
                    return self.exit_codes.ERROR_HAMILTONIAN.format(message=error["message"])
                return self.exit_codes.ERROR_GPAW.format(type=error["type"], message=error["message"])
            return self.exit_codes.ERROR_OUTPUT_MISSING
        content = retrieved.base.repository.get_object_content(OUTPUT_FILENAME, mode="rb")
        try:
            with np.load(io.BytesIO(content)) as data:
                arrays = {key: data[key] for key in data.files}
            missing = sorted({"energy", "forces", "fermi_level", "info"} - set(arrays))
            if missing:
                raise KeyError(f"arrays {missing} missing")
            energy, forces = float(arrays["energy"][0]), np.asarray(arrays["forces"], dtype=float)
            info = json.loads(str(arrays["info"]))
            hamiltonian = read_hamiltonian(arrays)
            if hamiltonian is None and "hamiltonian" in self.node.inputs and self.node.inputs.hamiltonian.value:
                raise KeyError("H(R) was asked for but is not in the output")
        except Exception as exception:  # noqa: BLE001 - zipfile/pickle/EOF/JSON errors of a damaged file
            return self.exit_codes.ERROR_OUTPUT_CORRUPT.format(message=f"{type(exception).__name__}: {exception}")
        self.out("forces", energy_forces_node(energy, forces))
        self.out("output_parameters", orm.Dict({
            "energy_ev": energy, "fermi_level_ev": float(arrays["fermi_level"][0]),
            "max_force_ev_per_angstrom": float(np.abs(forces).max()), **info}))
        if hamiltonian is not None:
            self.out("hamiltonian", HamiltonianData.from_hamiltonian(hamiltonian))
        return None
