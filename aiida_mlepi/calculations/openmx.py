"""`OpenmxCalculation`: one OpenMX 3.9 SCF run (energy, forces and, with ``HS.fileout on``, the
``.scfout`` holding H(R), S(R)).

Inputs: ``structure`` (Å), ``parameters`` (keys of
:class:`aiida_mlepi.core.io.openmx_input.OpenmxInputParameters`; ``species`` values as
``[pao, vps, valence]``; ``kgrid`` and ``system_name`` are set by the CalcJob), ``kpoints``
(a mesh; its offset must be zero, OpenMX's ``scf.Kgrid`` has none), ``code`` (the ``openmx``
executable; its ``DFT_DATA19`` folder goes in ``parameters['data_path']``). The run writes
``aiida.out``, ``aiida.scfout`` and stdout ``aiida.std``, which are retrieved.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_mlepi.core.io.openmx_input import OpenmxInputError, OpenmxInputParameters, write_openmx_input

SYSTEM_NAME = "aiida"
INPUT_FILENAME = f"{SYSTEM_NAME}.dat"
OUT_FILENAME = f"{SYSTEM_NAME}.out"
SCFOUT_FILENAME = f"{SYSTEM_NAME}.scfout"
STDOUT_FILENAME = f"{SYSTEM_NAME}.std"


class OpenmxCalculation(CalcJob):
    """OpenMX 3.9 SCF calculation of a periodic structure."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="Structure (Å).")
        spec.input("parameters", valid_type=orm.Dict, help="OpenMX settings (OpenmxInputParameters fields).")
        spec.input("kpoints", valid_type=orm.KpointsData, help="Monkhorst–Pack mesh for scf.Kgrid (zero offset).")
        spec.inputs["metadata"]["options"]["parser_name"].default = "mlepi.openmx"
        spec.inputs["metadata"]["options"]["input_filename"].default = INPUT_FILENAME
        spec.inputs["metadata"]["options"]["output_filename"].default = STDOUT_FILENAME
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}

        spec.output("output_parameters", valid_type=orm.Dict, help="Energy (eV), chemical potential (eV), SCF info.")
        spec.output("forces", valid_type=orm.ArrayData, help="Array 'forces' (N, 3) in eV/Å.")
        spec.output("hamiltonian", valid_type=orm.Data, required=False, help="H(R) (eV), S(R) from the .scfout.")
        spec.default_output_node = "output_parameters"

        spec.exit_code(300, "ERROR_NO_RETRIEVED_FOLDER", message="The retrieved folder data node could not be accessed.")
        spec.exit_code(301, "ERROR_OUTPUT_STDOUT_MISSING", message="The OpenMX main output file (.out) was not retrieved.")
        spec.exit_code(302, "ERROR_OUTPUT_STDOUT_INCOMPLETE",
                       message="The OpenMX .out file is incomplete: the run was interrupted or the file truncated.")
        spec.exit_code(303, "ERROR_OUTPUT_SCFOUT_MISSING", message="The .scfout file (HS.fileout on) was not retrieved.")
        spec.exit_code(304, "ERROR_OUTPUT_SCFOUT_CORRUPT", message="The .scfout file is truncated or corrupt: {message}")
        spec.exit_code(305, "ERROR_OUTPUT_STDOUT_PARSE", message="The OpenMX .out file could not be parsed: {message}")
        spec.exit_code(410, "ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED",
                       message="The SCF cycle did not converge within scf.maxIter; outputs are attached but unreliable.")

    def prepare_for_submission(self, folder):
        values = dict(self.inputs.parameters.get_dict())
        for forced in ("kgrid", "system_name"):
            if forced in values:
                raise OpenmxInputError(f"parameter {forced!r} is set by OpenmxCalculation; remove it")
        mesh, offset = self.inputs.kpoints.get_kpoints_mesh()
        if any(abs(o) > 0 for o in offset):
            raise OpenmxInputError(f"OpenMX scf.Kgrid has no offset; got kpoint mesh offset {offset}")
        params = OpenmxInputParameters.from_dict({**values, "kgrid": tuple(mesh), "system_name": SYSTEM_NAME})
        text = write_openmx_input(self.inputs.structure.get_ase(), params)
        with folder.open(INPUT_FILENAME, "w") as handle:
            handle.write(text)

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [INPUT_FILENAME]
        codeinfo.stdout_name = STDOUT_FILENAME

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [OUT_FILENAME, SCFOUT_FILENAME, STDOUT_FILENAME]
        return calcinfo
