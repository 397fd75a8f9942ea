"""`OpenmxParser`: outputs of :class:`aiida_mlepi.calculations.openmx.OpenmxCalculation`.

``output_parameters`` (energy and chemical potential in eV, OpenMX version, SCF convergence),
``forces`` (ArrayData 'forces', eV/Å) from ``aiida.out``; ``hamiltonian``
(:class:`aiida_mlepi.data.hamiltonian.HamiltonianData`, H in eV) from ``aiida.scfout`` when
``HS.fileout`` is on (the default). Exit codes follow aiida-quantumespresso's numbering.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.common import exceptions
from aiida.parsers import Parser

from aiida_mlepi.calculations.openmx import OUT_FILENAME, SCFOUT_FILENAME
from aiida_mlepi.core.io.openmx_out import OpenmxOutputError, OpenmxOutputIncompleteError, parse_openmx_out
from aiida_mlepi.core.io.scfout import ScfoutFormatError, read_scfout, scfout_to_hamiltonian
from aiida_mlepi.data.hamiltonian import HamiltonianData


class OpenmxParser(Parser):
    """Parse an OpenMX 3.9 run: ``.out`` (energy, forces) and ``.scfout`` (H(R), S(R))."""

    def parse(self, **kwargs):
        try:
            retrieved = self.retrieved
        except exceptions.NotExistent:
            return self.exit_codes.ERROR_NO_RETRIEVED_FOLDER
        names = retrieved.base.repository.list_object_names()
        if OUT_FILENAME not in names:
            return self.exit_codes.ERROR_OUTPUT_STDOUT_MISSING
        text = retrieved.base.repository.get_object_content(OUT_FILENAME)
        try:
            out = parse_openmx_out(text)
        except OpenmxOutputIncompleteError:
            return self.exit_codes.ERROR_OUTPUT_STDOUT_INCOMPLETE
        except OpenmxOutputError as exc:
            return self.exit_codes.ERROR_OUTPUT_STDOUT_PARSE.format(message=str(exc))

        self.out("output_parameters", orm.Dict(out.as_dict()))
        forces = orm.ArrayData()
        forces.set_array("forces", np.asarray(out.forces))
        forces.base.attributes.set("units", "eV/Angstrom")
        forces.base.attributes.set("symbols", list(out.symbols))
        self.out("forces", forces)

        if self._wants_scfout():
            if SCFOUT_FILENAME not in names:
                return self.exit_codes.ERROR_OUTPUT_SCFOUT_MISSING
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / SCFOUT_FILENAME
                path.write_bytes(retrieved.base.repository.get_object_content(SCFOUT_FILENAME, mode="rb"))
                try:
                    h = scfout_to_hamiltonian(read_scfout(path))
                except ScfoutFormatError as exc:
                    return self.exit_codes.ERROR_OUTPUT_SCFOUT_CORRUPT.format(message=str(exc))
            self.out("hamiltonian", HamiltonianData.from_hamiltonian(h))

        if not out.converged:
            return self.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED
        return None

    def _wants_scfout(self) -> bool:
        try:
            params = self.node.inputs.parameters.get_dict()
        except (AttributeError, exceptions.NotExistent):
            return True
        return bool(params.get("hs_fileout", True))
