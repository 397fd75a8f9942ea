"""`GpawBaseWorkChain` (``mlepi.gpaw.base``): ``mlepi.gpaw`` with automatic restarts of a non-converged SCF.

A :class:`~aiida.engine.BaseRestartWorkChain` (the aiida-quantumespresso ``PwBaseWorkChain`` mould)
around :class:`~aiida_mlepi.calculations.gpaw.GpawLcaoCalculation`: the CalcJob's inputs are exposed
in the namespace ``gpaw``, its outputs (``forces``, ``output_parameters``, ``hamiltonian``) are the
outputs of this WorkChain.

Process handlers (highest priority first):

* ``handle_unrecoverable`` — CalcJob exit 311 (k mesh too coarse for an exact H(R)) → exit 411, and
  312 (any other GPAW error, e.g. a missing basis file or an unknown setup) → exit 412. Both are
  deterministic: relaunching the same inputs would fail the same way, so nothing is relaunched.
* ``handle_scf_not_converged`` — CalcJob exit 310 (GPAW raised ``KohnShamConvergenceError``) →
  relaunch with the next rung of the ladder of :mod:`aiida_mlepi.core.engine.scf_ladder` (more
  iterations; then smaller mixing β with a longer Pulay history; optionally, with
  ``allow_smearing_increase``, a larger Fermi–Dirac width). Past the top rung → exit 410.

Other failures (300: the job died before writing; 301: a truncated output) are not handled: the
base class relaunches the same inputs once and stops with 402 if that fails again. Every relaunch
is a new ``iteration_NN`` CalcJob whose ``parameters`` input records the settings it ran with; the
rung and its description are in the WorkChain's report (``verdi process report``).
"""

from __future__ import annotations

from dataclasses import fields

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from aiida_mlepi.calculations.gpaw import GpawLcaoCalculation
from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings
from aiida_mlepi.core.engine.scf_ladder import ladder_size, scf_rung


class GpawBaseWorkChain(BaseRestartWorkChain):
    """One GPAW LCAO single point that relaunches a non-converged SCF with safer settings."""

    _process_class = GpawLcaoCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(GpawLcaoCalculation, namespace="gpaw")
        spec.input("allow_smearing_increase", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Let the last rung double the Fermi–Dirac width (changes the free energy; off for datasets).")
        spec.inputs["max_iterations"].default = lambda: orm.Int(ladder_size(True) + 2)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.expose_outputs(GpawLcaoCalculation)
        spec.exit_code(410, "ERROR_SCF_LADDER_EXHAUSTED",
                       message="The SCF did not converge on any of the {rungs} rungs of the restart ladder.")
        spec.exit_code(411, "ERROR_HAMILTONIAN_MESH",
                       message="H(R) cannot be built on this k mesh (not retried): {message}")
        spec.exit_code(412, "ERROR_GPAW_UNRECOVERABLE", message="GPAW failed deterministically (not retried): {message}")

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(GpawLcaoCalculation, "gpaw"))
        self.ctx.original_parameters = self.ctx.inputs.parameters.get_dict()
        self.ctx.scf_rung = 0

    # ------------------------------------------------------------------ handlers
    @process_handler(priority=600, exit_codes=[GpawLcaoCalculation.exit_codes.ERROR_HAMILTONIAN,
                                               GpawLcaoCalculation.exit_codes.ERROR_GPAW])
    def handle_unrecoverable(self, node):
        """311 / 312: deterministic failures; stop with 411 / 412 and the CalcJob's message."""
        if node.exit_status == GpawLcaoCalculation.exit_codes.ERROR_HAMILTONIAN.status:
            exit_code = self.exit_codes.ERROR_HAMILTONIAN_MESH
        else:
            exit_code = self.exit_codes.ERROR_GPAW_UNRECOVERABLE
        self.report(f"{self.ctx.process_name}<{node.pk}> failed with exit {node.exit_status}: not retried")
        return ProcessHandlerReport(True, exit_code.format(message=node.exit_message))

    @process_handler(priority=500, exit_codes=[GpawLcaoCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED])
    def handle_scf_not_converged(self, node):
        """310: relaunch with the next rung of the SCF ladder (:mod:`aiida_mlepi.core.engine.scf_ladder`)."""
        allow = self.inputs.allow_smearing_increase.value
        original = GpawLcaoSettings.from_dict(self.ctx.original_parameters)
        periodic = any(self.ctx.inputs.structure.pbc)
        rung = self.ctx.scf_rung + 1
        step = scf_rung(original, rung, periodic, allow)
        if step is None:
            self.report(f"SCF of {self.ctx.process_name}<{node.pk}> not converged on the last rung: giving up")
            return ProcessHandlerReport(True, self.exit_codes.ERROR_SCF_LADDER_EXHAUSTED.format(
                rungs=ladder_size(allow)))
        settings, description = step
        self.ctx.scf_rung = rung
        self.ctx.inputs.parameters = orm.Dict(changed_parameters(self.ctx.original_parameters, settings))
        self.report(f"SCF of {self.ctx.process_name}<{node.pk}> not converged: relaunching on rung {rung}: "
                    f"{description}")
        return ProcessHandlerReport(True)


def changed_parameters(original: dict, settings: GpawLcaoSettings) -> dict:
    """``original`` plus every field of ``settings`` that differs from what ``original`` implies."""
    implied = GpawLcaoSettings.from_dict(original)
    changed = {f.name: getattr(settings, f.name) for f in fields(GpawLcaoSettings)
               if getattr(settings, f.name) != getattr(implied, f.name)}
    return {**original, **changed}
