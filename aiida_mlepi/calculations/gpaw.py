"""`GpawLcaoCalculation` (``mlepi.gpaw``): one GPAW LCAO single point (energy, forces, optional H(R)).

A CalcJob (not a calcfunction) so it runs where GPAW is installed — localhost or an HPC machine —
under a scheduler, and so the DatasetWorkChain can submit many at once. The ``code`` is a Python
interpreter of an environment that has GPAW and this package (the ``gpaw`` extra); the job runs
``python -m aiida_mlepi.core.engine.gpaw_lcao aiida_input.json aiida_output.npz`` (see
:func:`aiida_mlepi.core.engine.gpaw_lcao.run_files`) and :class:`~aiida_mlepi.parsers.gpaw.GpawLcaoParser`
turns the ``.npz`` into nodes.

Inputs: ``structure`` (StructureData, Å; its ``pbc`` is used: bilayers are open along z),
``parameters`` (Dict of :class:`~aiida_mlepi.core.engine.gpaw_lcao.GpawLcaoSettings`),
``kpoints_mesh`` (List, Γ-centred), ``hamiltonian`` (Bool). Outputs: ``forces`` (ArrayData
``energy`` (1,) eV and ``forces`` (N, 3) eV/Å), ``output_parameters`` (Dict: energy_ev,
fermi_level_ev, scf_iterations, seconds, gpaw_version, max_force_ev_per_angstrom) and, if asked,
``hamiltonian`` (HamiltonianData, OpenMX orbital order, eV).

Exit codes (set by the parser): 300 neither output nor error file (the job died before writing),
301 the ``.npz`` is unreadable or lacks arrays (truncated), 310 GPAW's SCF did not converge within
``max_scf_iterations``, 311 H(R) could not be built exactly (k mesh too coarse), 312 any other GPAW
error (type and message of the exception, e.g. a missing basis file). All verified on real GPAW
runs in ``tests/workflows/test_dataset_workchain.py``.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_mlepi.core.engine.gpaw_lcao import (ERROR_FILENAME, INPUT_FILENAME, LOG_FILENAME, OUTPUT_FILENAME,
                                               GpawLcaoSettings, write_input)
from aiida_mlepi.data.hamiltonian import HamiltonianData


class GpawLcaoCalculation(CalcJob):
    """GPAW LCAO energy (eV), forces (eV/Å) and optionally H(R), S(R) of one structure."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="The structure (Å); pbc as stored.")
        spec.input("parameters", valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help="GpawLcaoSettings: basis, xc, grid_spacing_angstrom, smearing_width_ev, "
                        "density_convergence, max_scf_iterations.")
        spec.input("kpoints_mesh", valid_type=orm.List, help="Γ-centred k mesh [n1, n2, n3].")
        spec.input("hamiltonian", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Also return H(R), S(R) (needs a mesh supercell longer than twice the basis range).")
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["parser_name"].default = "mlepi.gpaw"
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.output("forces", valid_type=orm.ArrayData, help="Arrays `energy` (1,) eV and `forces` (N, 3) eV/Å.")
        spec.output("output_parameters", valid_type=orm.Dict, help="Energy, Fermi level, timings, GPAW version.")
        spec.output("hamiltonian", valid_type=HamiltonianData, required=False, help="H(R), S(R) in eV.")
        spec.exit_code(300, "ERROR_OUTPUT_MISSING", message="The runner wrote neither output nor error file.")
        spec.exit_code(301, "ERROR_OUTPUT_CORRUPT",
                       message="The output file is unreadable or incomplete (truncated?): {message}")
        spec.exit_code(310, "ERROR_SCF_NOT_CONVERGED", message="GPAW SCF did not converge: {message}")
        spec.exit_code(311, "ERROR_HAMILTONIAN", message="H(R) could not be built: {message}")
        spec.exit_code(312, "ERROR_GPAW", message="GPAW failed: {type}: {message}")

    def prepare_for_submission(self, folder):
        settings = GpawLcaoSettings.from_dict(self.inputs.parameters.get_dict())
        mesh = [int(k) for k in self.inputs.kpoints_mesh.get_list()]
        if len(mesh) != 3 or min(mesh) < 1:
            raise ValueError(f"kpoints_mesh must be three positive integers, got {mesh}")
        write_input(folder.get_abs_path(INPUT_FILENAME), self.inputs.structure.get_ase(), tuple(mesh), settings,
                    self.inputs.hamiltonian.value)
        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["-m", "aiida_mlepi.core.engine.gpaw_lcao", INPUT_FILENAME, OUTPUT_FILENAME]
        codeinfo.stdout_name = "aiida.out"
        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [OUTPUT_FILENAME, ERROR_FILENAME, LOG_FILENAME, "aiida.out"]
        return calcinfo
