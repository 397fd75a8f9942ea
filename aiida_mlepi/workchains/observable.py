"""`ObservableWorkChain`: H(R) of every configuration → observable → thermal average.

Estimators (``settings['estimator']``): ``'spectral'`` (default) unfolds every configuration onto the
primitive Brillouin zone, averages A(k, E) and fits the band parameters clear of the disorder gap
(:mod:`aiida_mlepi.calculations.spectral`; needs ``static_spectrum``, the undisplaced supercell through
the same provider and estimator); ``'chord'`` is the legacy chord Fermi velocity at ``k_radius`` from
the folded K (:mod:`aiida_mlepi.core.observables`), kept for comparison: it reads the disorder gap.

One outline step per configuration (``while_(has_next_sample)(compute_next_sample)``): AiiDA checkpoints
between steps, so a daemon stopped mid-stage redoes at most the configuration it was on, and
:func:`~aiida_mlepi.workchains.resume.resumable_call` reuses that configuration's calls that had already
finished and retires (marks killed) the one left unterminated — no duplicate H(R), no orphan node.
Provenance lookup rather than AiiDA caching: see :mod:`aiida_mlepi.workchains.resume`.

With ``inference.mode = 'calcjob'`` (and the HedgeNet provider) the H(R) of all configurations come from one
batched CalcJob (``mlepi.predict_hamiltonians``, e.g. on a GPU node; see :mod:`.inference`) submitted
before the per-configuration loop; the loop then uses its outputs ``hamiltonians.<label>`` in place of
the per-sample calcfunctions. Exit code 404 when that job fails.

``hamiltonian_provider='engine'`` takes the H(R) of every configuration from the input ``hamiltonians``
(same labels as ``structures``), computed elsewhere by a dataset engine's own processes (e.g. GPAW CalcJobs
of the pipeline's ground-truth check, :mod:`aiida_mlepi.workchains.engine_jobs`).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mlepi.calculations.electron import electron_model_problem, predict_hedgenet_hamiltonian
from aiida_mlepi.calculations.engine import compute_engine_hamiltonian
from aiida_mlepi.calculations.inference import HedgeNetHamiltonianCalculation
from aiida_mlepi.calculations.observables import average_fermi_velocity, compute_fermi_velocity
from aiida_mlepi.calculations.spectral import average_unfolded_spectra, compute_unfolded_spectrum
from aiida_mlepi.core.spectral_estimators import EstimatorInputError, SpectralSettings
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData

from .common import HAMILTONIAN_PROVIDERS, child_failure, progress_message
from .inference import define_inference_inputs, inference_job_inputs, inference_mode, inference_problem
from .resume import resumable_call, resumable_submit


#: Hamiltonian providers of this WorkChain: the loop's, and 'engine' (H(R) given as `hamiltonians`)
OBSERVABLE_PROVIDERS = (*HAMILTONIAN_PROVIDERS, "engine")
#: the observable estimators (``settings['estimator']``)
ESTIMATORS = ("spectral", "chord")


def estimator_of(settings: orm.Dict) -> str:
    return settings.get_dict().get("estimator", "spectral")


def hamiltonian_of(process, label: str, structure: LayeredStructureData, provider: str,
                   model: TrainedModelData | None, engine_parameters: orm.Dict) -> HamiltonianData:
    """H(R) of ``structure`` from the provider (engine or HedgeNet-Electron), a resumable call labelled ``label``."""
    if provider == "hedgenet":
        hamiltonian, _ = resumable_call(process, predict_hedgenet_hamiltonian, label, structure, model)
    else:
        hamiltonian, _ = resumable_call(process, compute_engine_hamiltonian, label, structure, engine_parameters)
    return hamiltonian


class ObservableWorkChain(WorkChain):
    """For each sampled configuration: H(R) (one node) and its unfolded spectrum (or legacy vF, one node);
    then the thermal average with its standard error."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("structures", valid_type=LayeredStructureData, dynamic=True,
                             help="The configurations (e.g. the samples of one temperature).")
        spec.input("temperature_k", valid_type=orm.Float, help="Temperature of the configurations (K).")
        spec.input("settings", valid_type=orm.Dict,
                   help="Observable settings: primitive_cell (Å), primitive_positions/numbers, electrons_per_atom, "
                        f"estimator (one of {ESTIMATORS}), spectral (estimator settings); legacy chord: "
                        "k_radius_inv_angstrom, n_directions.")
        spec.input("static_spectrum", valid_type=orm.ArrayData, required=False,
                   help="Unfolded spectrum of the undisplaced supercell (same provider and estimator): the "
                        "reference of the spectral estimator.")
        spec.input("hamiltonian_provider", valid_type=orm.Str, default=lambda: orm.Str("reference"),
                   help=f"Which model gives H(R): one of {OBSERVABLE_PROVIDERS} "
                        "('hedgenet' needs hamiltonian_model, 'engine' needs hamiltonians).")
        spec.input_namespace("hamiltonians", valid_type=HamiltonianData, dynamic=True, required=False,
                             help="H(R) of every structure (same labels), computed by a dataset engine "
                                  "(hamiltonian_provider='engine').")
        spec.input("hamiltonian_model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Electron used with hamiltonian_provider='hedgenet'.")
        spec.input("engine_parameters", valid_type=orm.Dict, default=lambda: orm.Dict({}))
        spec.input("antithetic", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="The configurations are ± pairs (0, 1), (2, 3), … (ZG: the configuration and its antipode).")
        define_inference_inputs(spec)
        spec.outline(cls.validate_inputs, cls.setup,
                     if_(cls.predicts_in_job)(cls.submit_predictions, cls.inspect_predictions),
                     while_(cls.has_next_sample)(cls.compute_next_sample),
                     cls.average)
        spec.output_namespace("per_sample", valid_type=(orm.Dict, orm.ArrayData), dynamic=True,
                              help="Unfolded spectrum (or legacy vF) of each configuration.")
        spec.output("average", valid_type=orm.Dict,
                    help="The thermal average: band parameters ± standard error and their change vs the static "
                         "lattice (spectral), or ⟨vF⟩ (chord); running convergence with the sample count.")
        spec.output("spectral_function", valid_type=orm.ArrayData, required=False,
                    help="Configuration-averaged A(k, E) and its peaks (spectral estimator).")
        spec.exit_code(302, "ERROR_INVALID_INPUT", message="Invalid input: {reason}")
        spec.exit_code(404, "ERROR_INFERENCE_FAILED", message="The H(R) inference job failed: {message}")

    def validate_inputs(self):
        if not self.inputs.structures:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="no structures given")
        provider = self.inputs.hamiltonian_provider.value
        if provider not in OBSERVABLE_PROVIDERS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"hamiltonian_provider {provider!r} is not one of {OBSERVABLE_PROVIDERS}")
        given = sorted(self.inputs.get("hamiltonians", {}))
        if (provider == "engine") != bool(given) or (given and given != sorted(self.inputs.structures)):
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason="hamiltonians (one H(R) per structure, same labels) go with hamiltonian_provider='engine' "
                       f"only; got provider {provider!r}, labels {given} for structures "
                       f"{sorted(self.inputs.structures)}")
        if provider == "hedgenet":
            problem = electron_model_problem(self.inputs.get("hamiltonian_model"))
            if problem:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=problem)
        problem = inference_problem(self, HedgeNetHamiltonianCalculation)
        if problem:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=problem)
        if "primitive_cell" not in self.inputs.settings.get_dict():
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="settings need 'primitive_cell' (3×3, Å)")
        estimator = estimator_of(self.inputs.settings)
        if estimator not in ESTIMATORS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"estimator {estimator!r} is not one of {ESTIMATORS}")
        if estimator == "spectral":
            if "static_spectrum" not in self.inputs:
                return self.exit_codes.ERROR_INVALID_INPUT.format(
                    reason="the spectral estimator needs static_spectrum (the unfolded undisplaced supercell)")
            try:
                SpectralSettings.from_dict(self.inputs.settings.get_dict().get("spectral"))
            except (EstimatorInputError, TypeError) as exc:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=f"spectral settings: {exc}")
            if self.inputs.antithetic.value and len(self.inputs.structures) % 2:
                return self.exit_codes.ERROR_INVALID_INPUT.format(
                    reason=f"± pairs need an even number of configurations, got {len(self.inputs.structures)}")
        return None

    def setup(self):
        self.ctx.pending = sorted(self.inputs.structures)
        self.ctx.per_sample = {}
        self.ctx.predicted = {}

    def predicts_in_job(self) -> bool:
        return self.inputs.hamiltonian_provider.value == "hedgenet" and inference_mode(self) == "calcjob"

    def submit_predictions(self):
        """H(R) of every configuration in one batched CalcJob (awaited; an interrupted attempt's job is reused)."""
        inputs = inference_job_inputs(self, self.inputs.hamiltonian_model, dict(self.inputs.structures))
        job = resumable_submit(self, HedgeNetHamiltonianCalculation, "predict_hamiltonians", **inputs)
        self.report(f"H(R) of {len(self.inputs.structures)} configurations: "
                    f"{job.process_label}<{job.pk}> on {job.computer.label if job.computer else '?'}")
        return ToContext(prediction_job=job)

    def inspect_predictions(self):
        job = self.ctx.prediction_job
        if not job.is_finished_ok:
            return self.exit_codes.ERROR_INFERENCE_FAILED.format(message=child_failure(job))
        self.ctx.predicted = {label: job.outputs.hamiltonians[label] for label in self.inputs.structures}
        return None

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
        """The nodes of one configuration: ``hamiltonian`` (H(R)) and ``per_sample`` (its spectrum or vF).

        Every call is labelled with ``label`` (``resumable_call``), so a rerun after an interruption reuses it.
        """
        if self.inputs.hamiltonian_provider.value == "engine":
            hamiltonian = self.inputs.hamiltonians[label]
        else:
            hamiltonian = self.ctx.predicted.get(label)
            if hamiltonian is None:
                hamiltonian = hamiltonian_of(self, f"hamiltonian_{label}", structure,
                                             self.inputs.hamiltonian_provider.value,
                                             self.inputs.get("hamiltonian_model"), self.inputs.engine_parameters)
        if estimator_of(self.inputs.settings) == "chord":
            result, _ = resumable_call(self, compute_fermi_velocity, f"fermi_velocity_{label}",
                                       hamiltonian, self.inputs.settings)
        else:
            fermi = orm.Float(self.inputs.static_spectrum.base.attributes.get("fermi_level_ev"))
            result, _ = resumable_call(self, compute_unfolded_spectrum, f"unfolded_spectrum_{label}",
                                       hamiltonian, self.inputs.settings, fermi)
        return {"hamiltonian": hamiltonian, "per_sample": result}

    def average(self):
        self.out("per_sample", self.ctx.per_sample)
        if estimator_of(self.inputs.settings) == "chord":
            material = self.inputs.structures[sorted(self.inputs.structures)[0]].material or ""
            average, _ = resumable_call(self, average_fermi_velocity, "average", orm.Str(material),
                                        self.inputs.temperature_k, self.inputs.antithetic, **self.ctx.per_sample)
            self.out("average", average)
            return
        outputs, _ = resumable_call(self, average_unfolded_spectra, "average", self.inputs.static_spectrum,
                                    self.inputs.settings, self.inputs.temperature_k, self.inputs.antithetic,
                                    **self.ctx.per_sample)
        self.out("average", outputs["estimate"])
        self.out("spectral_function", outputs["spectral_function"])
