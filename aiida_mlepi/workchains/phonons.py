"""`PhononWorkChain`: force constants and supercell modes from a force provider (via phonopy).

The reference forces run one displaced supercell per outline step, each call through
:func:`~aiida_mlepi.workchains.resume.resumable_call`: a daemon stopped mid-stage neither recomputes the
finished supercells nor leaves a process node active (see :mod:`aiida_mlepi.workchains.resume`).
The model forces run in one batched calcfunction, or — ``inference.mode = 'calcjob'`` (see
:mod:`.inference`) — in one ``mlepi.predict_forces`` CalcJob on the computer of ``inference.code`` (exit
code 404 when it fails).

``force_provider='engine'`` takes the forces from any dataset engine (input ``engine``, e.g. ``'gpaw'``,
with its ``engine_inputs``), one engine process per displaced supercell (a CalcJob for GPAW), at most
``max_concurrent`` at a time (:mod:`aiida_mlepi.workchains.engine_jobs`). With ``engine='reference'`` this
gives the same forces as ``force_provider='reference'`` through the engine's dataset process.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mlepi.calculations.engine import compute_engine_forces
from aiida_mlepi.calculations.inference import HedgeNetForcesCalculation
from aiida_mlepi.calculations.model_forces import DEFAULT_BATCH_SIZE, PHONON_MODEL_KIND, compute_model_forces
from aiida_mlepi.calculations.phonons import collect_supercell_modes, generate_displacements
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData
from aiida_mlepi.data.phonon_modes import PhononModesData

from .common import FORCE_PROVIDERS, child_failure, progress_message, structure_elements, unsupported_elements
from .engine_jobs import EngineJobs, collect_batch, define_engine_inputs, resolve_engine
from .inference import define_inference_inputs, inference_job_inputs, inference_mode, inference_problem
from .resume import resumable_call, resumable_submit

#: force providers of the phonons: those of the loop and ``'engine'`` (any dataset engine, input ``engine``)
PHONON_FORCE_PROVIDERS = (*FORCE_PROVIDERS, "engine")


def model_input_problem(model: TrainedModelData | None, structure: LayeredStructureData) -> str | None:
    """Why ``model`` cannot give the forces of ``structure`` (None if it can)."""
    if model is None:
        return "force_provider 'hedgenet' needs a trained model: pass the input `model` (TrainedModelData)"
    if model.model_kind != PHONON_MODEL_KIND:
        return f"the model is a {model.model_kind!r} model; force_provider 'hedgenet' needs {PHONON_MODEL_KIND!r}"
    problem = model.file_problem(PHONON_MODEL_KIND)
    if problem:
        return f"`model`: {problem}"
    from ase.data import chemical_symbols

    known = {chemical_symbols[z] for z in model.atomic_numbers}
    missing = sorted(structure_elements(structure) - known) if known else []
    if missing:
        return f"the model was not trained on the element(s) {', '.join(missing)}"
    return None


def imaginary_rigid_layer_modes(modes) -> int:
    """Number of imaginary modes (below −IMAGINARY_TOLERANCE_THZ) of ``modes`` that are Γ rigid-layer modes."""
    import numpy as np

    from aiida_mlepi.core.phonons import IMAGINARY_TOLERANCE_THZ
    from aiida_mlepi.core.sampling import rigid_layer_mode_mask

    imaginary = np.asarray(modes.frequencies_thz) < -IMAGINARY_TOLERANCE_THZ
    return int((imaginary & rigid_layer_mode_mask(modes)).sum())


class PhononWorkChain(WorkChain):
    """Displace (phonopy, symmetry-reduced) → forces of each displaced supercell → all supercell modes."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=LayeredStructureData,
                   help="Relaxed unit cell with layer ids (Å).")
        spec.input("supercell_matrix", valid_type=orm.List, default=lambda: orm.List([6, 6, 1]),
                   help="Diagonal [n1, n2, n3] or a 3×3 supercell matrix.")
        spec.input("displacement_angstrom", valid_type=orm.Float, default=lambda: orm.Float(0.01),
                   help="Finite displacement amplitude (Å).")
        spec.input("force_provider", valid_type=orm.Str, default=lambda: orm.Str("reference"),
                   help=f"Which model gives the forces: one of {PHONON_FORCE_PROVIDERS} ('engine': the "
                        "dataset engine named by `engine`).")
        spec.input("model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Phonon (needed with force_provider='hedgenet').")
        spec.input("model_batch_size", valid_type=orm.Int, default=lambda: orm.Int(DEFAULT_BATCH_SIZE),
                   help="Displaced supercells per model evaluation (force_provider='hedgenet').")
        spec.input("engine_parameters", valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help="Parameters of the reference engine (defaults if empty).")
        spec.input("kpoints_mesh", valid_type=orm.List, default=lambda: orm.List([1, 1, 1]),
                   help="Γ-centred k mesh used for the forces of the supercell.")
        spec.input("tolerate_imaginary_rigid_layer_modes", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Finish (not 410) when every imaginary mode is a Γ rigid-layer mode (interlayer shear or "
                        "breathing; core.sampling.rigid_layer_mode_mask): the loop does not sample those modes.")
        spec.input("subtract_residual_forces", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Also compute the undisplaced supercell and subtract its forces from every displaced one "
                        "(for a structure that is not a stationary point of the force provider, e.g. a catalogue "
                        "geometry with GPAW; costs one more force calculation).")
        define_inference_inputs(spec)
        define_engine_inputs(spec, "max_concurrent", 4, "force_provider='engine'")
        spec.outline(
            cls.validate_inputs,
            cls.displace,
            if_(cls.uses_model)(
                cls.compute_forces_with_model,
                cls.inspect_model_forces,
            ).elif_(cls.uses_engine)(
                while_(cls.has_next_supercell)(cls.submit_engine_forces, cls.collect_engine_forces),
            ).else_(
                while_(cls.has_next_supercell)(cls.compute_next_forces),
            ),
            cls.collect,
        )
        spec.output("modes", valid_type=PhononModesData, help="Force constants and all supercell modes.")
        spec.output("supercell", valid_type=LayeredStructureData, help="The undisplaced supercell.")
        spec.exit_code(301, "ERROR_UNSUPPORTED_ELEMENT",
                       message="The force provider has no parameters for the element(s) {elements}.")
        spec.exit_code(302, "ERROR_INVALID_INPUT", message="Invalid input: {reason}")
        spec.exit_code(404, "ERROR_INFERENCE_FAILED", message="The model-forces inference job failed: {message}")
        spec.exit_code(411, "ERROR_ENGINE_FORCES_FAILED", message="The engine forces failed: {message}")
        spec.exit_code(410, "ERROR_IMAGINARY_MODES",
                       message="{count} imaginary mode(s), lowest {lowest:.1f} cm⁻¹: the structure is not relaxed.")

    def validate_inputs(self):
        provider = self.inputs.force_provider.value
        if provider not in PHONON_FORCE_PROVIDERS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"force_provider {provider!r} is not one of {PHONON_FORCE_PROVIDERS}")
        if provider == "hedgenet":
            reason = model_input_problem(self.inputs.get("model"), self.inputs.structure)
            if reason:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=reason)
            reason = inference_problem(self, HedgeNetForcesCalculation)
            if reason:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=reason)
        elif provider == "engine":
            reason = self._engine_problem()
            if reason:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=reason)
            missing = self._engine_jobs().backend.unsupported_elements(structure_elements(self.inputs.structure))
            if missing:
                return self.exit_codes.ERROR_UNSUPPORTED_ELEMENT.format(elements=", ".join(missing))
        else:
            missing = unsupported_elements(self.inputs.structure)
            if missing:
                return self.exit_codes.ERROR_UNSUPPORTED_ELEMENT.format(elements=", ".join(missing))
        matrix = self.inputs.supercell_matrix.get_list()
        if len(matrix) not in (3,) or any(
                (isinstance(m, list) and len(m) != 3) for m in matrix):
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"supercell_matrix must be [n1, n2, n3] or 3×3, got {matrix}")
        if self.inputs.displacement_angstrom.value <= 0:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="displacement_angstrom must be positive")
        return None

    def _engine_jobs(self) -> EngineJobs:
        return EngineJobs(self.inputs.engine.value, self.inputs.engine_parameters, self.inputs.kpoints_mesh,
                          dict(self.inputs.get("engine_inputs", {})))

    def _engine_problem(self) -> str | None:
        name = self.inputs.engine.value
        backend, problem = resolve_engine(name)
        if problem:
            return problem
        if not backend.provides_forces_node:
            return f"engine {name!r} gives no forces node for phonons"
        if self.inputs.max_concurrent.value < 1:
            return "max_concurrent must be ≥ 1"
        jobs = self._engine_jobs()
        return backend.validate(self.inputs.structure, jobs.parameters.get_dict(), jobs.kpoints_mesh.get_list(),
                                False, jobs.engine_inputs)

    def displace(self):
        extra = {"include_undisplaced": self.inputs.subtract_residual_forces} \
            if self.inputs.subtract_residual_forces.value else {}
        result, _ = resumable_call(self, generate_displacements, "generate_displacements", self.inputs.structure,
                                   self.inputs.supercell_matrix, self.inputs.displacement_angstrom, **extra)
        self.ctx.phonopy_setup = result["phonopy_setup"]
        self.ctx.supercells = result["supercells"]
        self.ctx.pending = sorted(self.ctx.supercells)
        self.ctx.forces = {}

    def uses_model(self) -> bool:
        return self.inputs.force_provider.value == "hedgenet"

    def compute_forces_with_model(self):
        """All displaced supercells in one batched calcfunction (or CalcJob), linked to the model."""
        if inference_mode(self) == "calcjob":
            inputs = inference_job_inputs(self, self.inputs.model, dict(self.ctx.supercells))
            inputs.setdefault("parameters", orm.Dict({"batch_size": self.inputs.model_batch_size.value}))
            job = resumable_submit(self, HedgeNetForcesCalculation, "model_forces", **inputs)
            self.report(f"model forces of {len(self.ctx.supercells)} supercells: {job.process_label}<{job.pk}>")
            return ToContext(forces_job=job)
        out, _ = resumable_call(self, compute_model_forces, "model_forces", self.inputs.model,
                                self.inputs.model_batch_size, **self.ctx.supercells)
        self.ctx.forces = dict(out["forces"])
        return None

    def inspect_model_forces(self):
        if "forces_job" in self.ctx:
            job = self.ctx.forces_job
            if not job.is_finished_ok:
                return self.exit_codes.ERROR_INFERENCE_FAILED.format(message=child_failure(job))
            self.ctx.forces = {label: job.outputs.forces[label] for label in self.ctx.supercells}
        total = len(self.ctx.supercells)
        self.report(progress_message("phonon-forces", total, total, "(hedgenet)"))
        return None

    def uses_engine(self) -> bool:
        return self.inputs.force_provider.value == "engine"

    def submit_engine_forces(self):
        """Submit the next ``max_concurrent`` displaced supercells to the engine."""
        batch = self._engine_jobs().submit_batch(self, self.ctx.supercells, self.ctx.pending, hamiltonian=False,
                                                 prefix="forces_", max_concurrent=self.inputs.max_concurrent.value)
        self.ctx.pending, self.ctx.batch, self.ctx.batch_failed = batch.rest, batch.keys(), batch.failed
        for key, node in batch.done.items():
            self.ctx[key] = node
        return ToContext(**batch.running)

    def collect_engine_forces(self):
        forces, failure = collect_batch(self, self._engine_jobs().backend, self.ctx.batch, self.ctx.batch_failed,
                                        hamiltonian=False, prefix="forces_")
        if failure is not None:
            return self.exit_codes.ERROR_ENGINE_FORCES_FAILED.format(message=failure)
        self.ctx.forces.update(forces)
        total = len(self.ctx.supercells)
        self.report(progress_message("phonon-forces", total - len(self.ctx.pending), total,
                                     f"({self.inputs.engine.value})"))
        return None

    def has_next_supercell(self) -> bool:
        return bool(self.ctx.pending)

    def compute_next_forces(self):
        """Reference forces of one displaced supercell per step (checkpointed)."""
        label, *self.ctx.pending = self.ctx.pending
        out, _ = resumable_call(self, compute_engine_forces, f"forces_{label}", self.ctx.supercells[label],
                                self.inputs.engine_parameters, self.inputs.kpoints_mesh)
        self.ctx.forces[label] = out["forces"]
        total = len(self.ctx.supercells)
        self.report(progress_message("phonon-forces", total - len(self.ctx.pending), total))

    def collect(self):
        material = orm.Str(self.inputs.structure.material or "")
        result, _ = resumable_call(self, collect_supercell_modes, "collect_supercell_modes", self.ctx.phonopy_setup,
                                   material, **self.ctx.forces)
        self.out("modes", result["modes"])
        self.out("supercell", result["supercell"])
        count = result["modes"].base.attributes.get("num_imaginary")
        if not count:
            return None
        lowest = result["modes"].base.attributes.get("frequency_min_cm1")
        if self.inputs.tolerate_imaginary_rigid_layer_modes.value:
            rigid = imaginary_rigid_layer_modes(result["modes"].get_modes())
            if rigid == count:
                self.report(f"{count} imaginary mode(s) (lowest {lowest:.1f} cm⁻¹), all Γ rigid-layer modes "
                            "(interlayer shear/breathing), which the sampling leaves out: tolerated")
                return None
        return self.exit_codes.ERROR_IMAGINARY_MODES.format(count=count, lowest=lowest)
