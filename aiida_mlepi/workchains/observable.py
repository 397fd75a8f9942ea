"""`ObservableWorkChain`: H(R) of every configuration → Fermi velocity → thermal average.

One outline step per configuration (``while_(has_next_sample)(compute_next_sample)``): AiiDA checkpoints
between steps, so a daemon stopped mid-stage redoes at most the configuration it was on, and
:func:`~aiida_mlepi.workchains.resume.resumable_call` reuses that configuration's calls that had already
finished and retires (marks killed) the one left unterminated — no duplicate H(R), no orphan node.
Provenance lookup rather than AiiDA caching: see :mod:`aiida_mlepi.workchains.resume`.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain, while_

from aiida_mlepi.calculations.electron import electron_model_problem, predict_hedgenet_hamiltonian
from aiida_mlepi.calculations.engine import compute_engine_hamiltonian
from aiida_mlepi.calculations.observables import average_fermi_velocity, compute_fermi_velocity
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData

from .common import HAMILTONIAN_PROVIDERS, progress_message
from .resume import resumable_call


class ObservableWorkChain(WorkChain):
    """For each sampled configuration: H(R) (one node), vF (one node); then ⟨vF⟩ and its standard error."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("structures", valid_type=LayeredStructureData, dynamic=True,
                             help="The configurations (e.g. the samples of one temperature).")
        spec.input("temperature_k", valid_type=orm.Float, help="Temperature of the configurations (K).")
        spec.input("settings", valid_type=orm.Dict,
                   help="Observable settings: primitive_cell (Å), electrons_per_atom, k_radius_inv_angstrom, "
                        "n_directions.")
        spec.input("hamiltonian_provider", valid_type=orm.Str, default=lambda: orm.Str("reference"),
                   help=f"Which model gives H(R): one of {HAMILTONIAN_PROVIDERS} "
                        "('hedgenet' needs hamiltonian_model).")
        spec.input("hamiltonian_model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Electron used with hamiltonian_provider='hedgenet'.")
        spec.input("engine_parameters", valid_type=orm.Dict, default=lambda: orm.Dict({}))
        spec.input("antithetic", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="The configurations are ± pairs (0, 1), (2, 3), …")
        spec.outline(cls.validate_inputs, cls.setup,
                     while_(cls.has_next_sample)(cls.compute_next_sample),
                     cls.average)
        spec.output_namespace("per_sample", valid_type=orm.Dict, dynamic=True, help="vF of each configuration.")
        spec.output("average", valid_type=orm.Dict, help="⟨vF⟩(T), standard error, running convergence.")
        spec.exit_code(302, "ERROR_INVALID_INPUT", message="Invalid input: {reason}")

    def validate_inputs(self):
        if not self.inputs.structures:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="no structures given")
        provider = self.inputs.hamiltonian_provider.value
        if provider not in HAMILTONIAN_PROVIDERS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"hamiltonian_provider {provider!r} is not one of {HAMILTONIAN_PROVIDERS}")
        if provider == "hedgenet":
            problem = electron_model_problem(self.inputs.get("hamiltonian_model"))
            if problem:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=problem)
        if "primitive_cell" not in self.inputs.settings.get_dict():
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="settings need 'primitive_cell' (3×3, Å)")
        return None

    def setup(self):
        self.ctx.pending = sorted(self.inputs.structures)
        self.ctx.per_sample = {}

    def has_next_sample(self) -> bool:
        return bool(self.ctx.pending)

    def compute_next_sample(self):
        """One configuration per step (checkpointed): its ``per_sample`` node goes to the context."""
        label, *self.ctx.pending = self.ctx.pending
        outputs = self._compute_sample(label, self.inputs.structures[label])
        self.ctx.per_sample[label] = outputs["per_sample"]
        total = len(self.inputs.structures)
        self.report(progress_message(f"samples-{self.inputs.temperature_k.value:g}K", total - len(self.ctx.pending),
                                     total))

    def _compute_sample(self, label: str, structure: LayeredStructureData) -> dict[str, orm.Data]:
        """The nodes of one configuration: ``hamiltonian`` (H(R)) and ``per_sample`` (its vF Dict, an output).

        Every call is labelled with ``label`` (``resumable_call``), so a rerun after an interruption reuses it.
        """
        if self.inputs.hamiltonian_provider.value == "hedgenet":
            hamiltonian, _ = resumable_call(self, predict_hedgenet_hamiltonian, f"hamiltonian_{label}",
                                            structure, self.inputs.hamiltonian_model)
        else:
            hamiltonian, _ = resumable_call(self, compute_engine_hamiltonian, f"hamiltonian_{label}",
                                            structure, self.inputs.engine_parameters)
        velocity, _ = resumable_call(self, compute_fermi_velocity, f"fermi_velocity_{label}",
                                     hamiltonian, self.inputs.settings)
        return {"hamiltonian": hamiltonian, "per_sample": velocity}

    def average(self):
        material = self.inputs.structures[sorted(self.inputs.structures)[0]].material or ""
        average, _ = resumable_call(self, average_fermi_velocity, "average", orm.Str(material),
                                    self.inputs.temperature_k, self.inputs.antithetic, **self.ctx.per_sample)
        self.out("per_sample", self.ctx.per_sample)
        self.out("average", average)
