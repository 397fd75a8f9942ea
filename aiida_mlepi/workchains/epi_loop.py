"""`EpiLoopWorkChain`: the finite-difference EPI loop — phonons → thermal sampling (MC or ZG) → H(R) →
unfolded spectral functions → band renormalisation (T) (or the legacy chord ⟨vF⟩(T)).

``inference`` (see :mod:`.inference`) is passed to the HedgeNet stages: with ``mode='calcjob'`` the model
forces of the phonon stage and the H(R) of each temperature's samples run as batched CalcJobs on the
computer of ``inference.code`` (e.g. a GPU node); the one undisplaced supercell's H(R) stays in process."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mlepi.calculations.observables import compute_fermi_velocity
from aiida_mlepi.calculations.sampling import SAMPLERS
from aiida_mlepi.calculations.spectral import compute_unfolded_spectrum, estimate_static_lattice
from aiida_mlepi.calculations.summary import (plot_band_renormalisation, plot_fermi_velocity_summary,
                                              plot_spectral_function_maps, summarize_band_renormalisation,
                                              summarize_fermi_velocity)
from aiida_mlepi.core.spectral_estimators import EstimatorInputError, SpectralSettings
from aiida_mlepi.core.engine.relax import supercell_kpoints_mesh
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData
from aiida_mlepi.calculations.electron import electron_model_problem
from aiida_mlepi.calculations.inference import HedgeNetHamiltonianCalculation

from .common import (FORCE_PROVIDERS, HAMILTONIAN_PROVIDERS, child_failure, define_structure_exit_codes,
                     structure_elements, temperatures_problem, unsupported_elements)
from .engine_jobs import EngineHamiltonianSteps, EngineJobs, define_engine_inputs, resolve_engine
from .inference import define_inference_inputs, inference_inputs, inference_problem
from .observable import ESTIMATORS, ObservableWorkChain, estimator_of, hamiltonian_of
from .phonons import PhononWorkChain, model_input_problem
from .resume import resumable_call
from .sampling import ThermalSamplingWorkChain

#: the spectral estimator (unfolded A(k, E), AB four-band fit clear of the folded point) is the default;
#: ``estimator='chord'`` (with ``k_radius_inv_angstrom``, ``n_directions``) is the legacy chord velocity
DEFAULT_OBSERVABLE_SETTINGS = {"electrons_per_atom": 4.0, "estimator": "spectral", "spectral": {"model": "ab-bilayer"},
                               "k_radius_inv_angstrom": 0.05, "n_directions": 6}


#: providers of the loop: the reference engine, HedgeNet, or 'engine' (any dataset engine named by `engine`, e.g. GPAW
#: CalcJobs: the engine-only loop of a non-carbon material)
LOOP_FORCE_PROVIDERS = (*FORCE_PROVIDERS, "engine")
LOOP_HAMILTONIAN_PROVIDERS = (*HAMILTONIAN_PROVIDERS, "engine")


def temperature_key(temperature_k: float) -> str:
    return f"T_{temperature_k:g}K".replace(".", "p")


class EpiLoopWorkChain(EngineHamiltonianSteps, WorkChain):
    """The whole loop for one layered material, every step recorded.

    ``force_provider`` / ``hamiltonian_provider`` ``'engine'``: the dataset engine named by ``engine`` (e.g.
    ``'gpaw'``, with ``engine_inputs``: its code) gives the phonon forces and the H(R) of the static supercell and
    of every sample, through its own processes (GPAW CalcJobs), at most ``engine_max_concurrent`` at once, on
    the k mesh ``phonon_kpoints_mesh`` (H(R) exact only if the mesh supercell exceeds twice the basis range).

    Exit codes: 300 single layer, 301 unsupported element, 302 invalid input (also: non-numeric temperatures,
    bad model files, unknown sampler or estimator), 303 negative temperature, 304 bad sample count,
    401–403 a stage failed (the child's exit status and message are in the message), 405 an engine H(R) failed.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=LayeredStructureData, help="Relaxed unit cell with ≥ 2 layers.")
        spec.input("supercell_matrix", valid_type=orm.List, default=lambda: orm.List([6, 6, 1]))
        spec.input("temperatures_k", valid_type=orm.List, default=lambda: orm.List([0.0, 150.0, 300.0]),
                   help="Temperatures (K) at which to sample.")
        spec.input("n_samples", valid_type=orm.Int, default=lambda: orm.Int(16),
                   help="Samples per temperature (Monte Carlo; ignored by 'zg').")
        spec.input("sampler", valid_type=orm.Str, default=lambda: orm.Str("mc"),
                   help=f"Thermal sampler, one of {SAMPLERS}: 'mc' Monte Carlo, 'zg' special displacements "
                        "(with antithetic: the configuration and its antipode).")
        spec.input("exclude_rigid_layer_modes", valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="Leave the Γ interlayer shear/breathing modes unsampled (their weight in an n×n cell "
                        "is 1/n², their amplitude the largest; see core.sampling.excluding_rigid_layer_modes).")
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(20240601))
        spec.input("antithetic", valid_type=orm.Bool, default=lambda: orm.Bool(True))
        spec.input("displacement_angstrom", valid_type=orm.Float, default=lambda: orm.Float(0.01))
        spec.input("subtract_residual_forces", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Phonons: subtract the undisplaced supercell's forces from the displaced ones (a catalogue "
                        "geometry that the force provider has not relaxed, e.g. with GPAW).")
        spec.input("engine_parameters", valid_type=orm.Dict, default=lambda: orm.Dict({}))
        spec.input("force_provider", valid_type=orm.Str, default=lambda: orm.Str("reference"),
                   help=f"Forces of the phonon stage: one of {LOOP_FORCE_PROVIDERS} ('hedgenet' needs phonon_model; "
                        "'engine' the dataset engine `engine`).")
        spec.input("phonon_model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Phonon used with force_provider='hedgenet'.")
        spec.input("hamiltonian_provider", valid_type=orm.Str, default=lambda: orm.Str("reference"),
                   help=f"H(R) of the samples: one of {LOOP_HAMILTONIAN_PROVIDERS} ('hedgenet' needs hamiltonian_model; "
                        "'engine' the dataset engine `engine`).")
        spec.input("hamiltonian_model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Electron used with hamiltonian_provider='hedgenet'.")
        spec.input("phonon_kpoints_mesh", valid_type=orm.List, required=False,
                   help="Γ-centred k-mesh of the supercell force calculations; default: the smallest mesh "
                        "equivalent to 12×12 in the unit cell (e.g. [2, 2, 1] for 6×6). Relax the unit cell "
                        "with the equivalent mesh (supercell × this mesh).")
        spec.input("observable_settings", valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help=f"Overrides of {DEFAULT_OBSERVABLE_SETTINGS}.")
        define_engine_inputs(spec, "engine_max_concurrent", 2, "the 'engine' providers")
        define_inference_inputs(spec)
        spec.outline(
            cls.validate_inputs,
            cls.run_phonons,
            cls.inspect_phonons,
            cls.run_sampling,
            cls.inspect_sampling,
            if_(cls.uses_engine_hamiltonians)(
                cls.queue_sample_hamiltonians,
                while_(cls.has_pending_engine_hamiltonians)(cls.submit_engine_hamiltonians,
                                                            cls.inspect_engine_hamiltonians)),
            cls.run_observables,
            cls.inspect_observables,
            cls.summarize,
        )
        spec.output("modes", help="Phonon modes of the supercell.")
        spec.output("static_lattice", valid_type=orm.Dict,
                    help="The undisplaced supercell through the same provider and estimator.")
        spec.output("static_spectrum", valid_type=orm.ArrayData, required=False,
                    help="Unfolded spectrum of the undisplaced supercell (spectral estimator).")
        spec.output_namespace("averages", valid_type=orm.Dict, dynamic=True,
                              help="Thermal average per temperature (band parameters ± s.e., or ⟨vF⟩).")
        spec.output_namespace("spectral_functions", valid_type=orm.ArrayData, dynamic=True, required=False,
                              help="Configuration-averaged A(k, E) per temperature (spectral estimator).")
        spec.output("summary", valid_type=orm.Dict, help="The table over temperatures.")
        spec.output("plot", valid_type=orm.SinglefileData,
                    help="Renormalisation vs T with ±1 s.e. bars (PNG; legacy chord: ⟨vF⟩(T)).")
        spec.output("spectral_plot", valid_type=orm.SinglefileData, required=False,
                    help="Heat maps of the averaged A(k, E) around K: static lattice and temperatures (PNG).")
        define_structure_exit_codes(spec)
        spec.exit_code(303, "ERROR_NEGATIVE_TEMPERATURE", message="Temperatures must be ≥ 0 K, got {values}.")
        spec.exit_code(304, "ERROR_INVALID_SAMPLE_COUNT", message="{reason}")
        spec.exit_code(401, "ERROR_PHONONS_FAILED", message="The phonon stage failed: {message}")
        spec.exit_code(402, "ERROR_SAMPLING_FAILED", message="The sampling stage failed at {temperature} K: {message}")
        spec.exit_code(403, "ERROR_OBSERVABLE_FAILED",
                       message="The observable stage failed at {temperature} K: {message}")
        spec.exit_code(405, "ERROR_ENGINE_HAMILTONIAN_FAILED", message="An engine H(R) failed: {message}")

    # ------------------------------------------------------------------ validation
    def validate_inputs(self):
        structure = self.inputs.structure
        if structure.num_layers < 2:
            return self.exit_codes.ERROR_SINGLE_LAYER.format(count=structure.num_layers)
        # the reference engine has parameters for carbon only; HedgeNet models check their own elements below
        providers = (self.inputs.force_provider.value, self.inputs.hamiltonian_provider.value)
        missing = unsupported_elements(structure) if "reference" in providers else []
        if missing:
            return self.exit_codes.ERROR_UNSUPPORTED_ELEMENT.format(elements=", ".join(missing))
        if "engine" in providers:
            reason = self._engine_problem()
            if reason:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=reason)
            missing = self.engine_hamiltonian_jobs().backend.unsupported_elements(structure_elements(structure))
            if missing:
                return self.exit_codes.ERROR_UNSUPPORTED_ELEMENT.format(elements=", ".join(missing))
        problem = temperatures_problem(self.inputs.temperatures_k.get_list())
        if problem:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=problem)
        temperatures = [float(t) for t in self.inputs.temperatures_k.get_list()]
        if min(temperatures) < 0:
            return self.exit_codes.ERROR_NEGATIVE_TEMPERATURE.format(values=temperatures)
        n = self.inputs.n_samples.value
        if n < 1 or (self.inputs.antithetic.value and n % 2):
            return self.exit_codes.ERROR_INVALID_SAMPLE_COUNT.format(
                reason=f"n_samples must be ≥ 1 (and even with antithetic pairs), got {n}")
        matrix = self.inputs.supercell_matrix.get_list()
        if len(matrix) != 3 or not all(isinstance(n, int) and n >= 1 for n in matrix):
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"supercell_matrix must be three positive integers [n1, n2, n3], got {matrix}")
        provider = self.inputs.force_provider.value
        if provider not in LOOP_FORCE_PROVIDERS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"force_provider {provider!r} is not one of {LOOP_FORCE_PROVIDERS}")
        if provider == "hedgenet":
            reason = model_input_problem(self.inputs.get("phonon_model"), structure)
            if reason:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=reason.replace("`model`", "`phonon_model`"))
        h_provider = self.inputs.hamiltonian_provider.value
        if h_provider not in LOOP_HAMILTONIAN_PROVIDERS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"hamiltonian_provider {h_provider!r} is not one of {LOOP_HAMILTONIAN_PROVIDERS}")
        if h_provider == "hedgenet":
            problem = electron_model_problem(self.inputs.get("hamiltonian_model"))
            if problem:
                return self.exit_codes.ERROR_INVALID_INPUT.format(reason=problem)
        problem = inference_problem(self, HedgeNetHamiltonianCalculation)
        if problem:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=problem)
        sampler = self.inputs.sampler.value
        if sampler not in SAMPLERS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=f"sampler {sampler!r} is not one of {SAMPLERS}")
        settings = {**DEFAULT_OBSERVABLE_SETTINGS, **self.inputs.observable_settings.get_dict()}
        if settings["estimator"] not in ESTIMATORS:
            return self.exit_codes.ERROR_INVALID_INPUT.format(
                reason=f"observable_settings: estimator {settings['estimator']!r} is not one of {ESTIMATORS}")
        try:
            SpectralSettings.from_dict(settings.get("spectral"))
        except (EstimatorInputError, TypeError) as exc:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=f"observable_settings.spectral: {exc}")
        self.ctx.supercell_diagonal = matrix
        self.ctx.temperatures = temperatures
        return None

    # ------------------------------------------------------------------ the dataset engine ('engine' providers)
    def _kpoints_mesh(self) -> orm.List:
        """Γ-centred mesh of the supercell's engine calculations (forces and H(R))."""
        mesh = self.inputs.get("phonon_kpoints_mesh")
        if mesh is None:
            matrix = self.inputs.supercell_matrix.get_list()
            mesh = orm.List(list(supercell_kpoints_mesh(tuple(matrix))))
        return mesh

    def engine_hamiltonian_jobs(self) -> EngineJobs:
        return EngineJobs(self.inputs.engine.value, self.inputs.engine_parameters, self._kpoints_mesh(),
                          dict(self.inputs.get("engine_inputs", {})))

    def engine_max_concurrent(self) -> int:
        return self.inputs.engine_max_concurrent.value

    def _engine_problem(self) -> str | None:
        name = self.inputs.engine.value
        backend, problem = resolve_engine(name)
        if problem:
            return problem
        if self.inputs.engine_max_concurrent.value < 1:
            return f"engine_max_concurrent must be ≥ 1, got {self.inputs.engine_max_concurrent.value}"
        hamiltonian = self.inputs.hamiltonian_provider.value == "engine"
        if hamiltonian and not backend.provides_hamiltonian:
            return f"hamiltonian_provider 'engine': engine {name!r} gives no H(R)"
        if self.inputs.force_provider.value == "engine" and not backend.provides_forces_node:
            return f"force_provider 'engine': engine {name!r} gives no forces node for phonons"
        jobs = self.engine_hamiltonian_jobs()
        return backend.validate(self.inputs.structure, jobs.parameters.get_dict(), jobs.kpoints_mesh.get_list(),
                                hamiltonian, jobs.engine_inputs)

    def uses_engine_hamiltonians(self) -> bool:
        return self.inputs.hamiltonian_provider.value == "engine"

    def queue_sample_hamiltonians(self):
        """The engine's H(R) of the undisplaced supercell (``static``) and of every sample (``T_…K_<label>``)."""
        structures = {"static": self.ctx.phonons.outputs.supercell}
        for temperature in self.ctx.temperatures:
            key = temperature_key(temperature)
            samples = self.ctx[f"sampling_{key}"].outputs.samples
            structures.update({f"{key}_{label}": samples[label] for label in samples})
        self.queue_engine_hamiltonians(structures)
        self.report(f"H(R) of {len(structures)} structures from engine {self.inputs.engine.value!r}")

    # ------------------------------------------------------------------ phonons
    def run_phonons(self):
        mesh = self._kpoints_mesh()
        inputs = dict(structure=self.inputs.structure, supercell_matrix=self.inputs.supercell_matrix,
                      displacement_angstrom=self.inputs.displacement_angstrom,
                      subtract_residual_forces=self.inputs.subtract_residual_forces,
                      # modes the sampling leaves out cannot spoil the samples: imaginary ones are reported only
                      tolerate_imaginary_rigid_layer_modes=self.inputs.exclude_rigid_layer_modes,
                      engine_parameters=self.inputs.engine_parameters, kpoints_mesh=mesh,
                      force_provider=self.inputs.force_provider)
        if self.inputs.force_provider.value == "engine":
            inputs.update(engine=self.inputs.engine, engine_inputs=dict(self.inputs.get("engine_inputs", {})),
                          max_concurrent=self.inputs.engine_max_concurrent)
        if "phonon_model" in self.inputs:
            inputs["model"] = self.inputs.phonon_model
        if self.inputs.force_provider.value == "hedgenet" and inference_inputs(self):
            inputs["inference"] = inference_inputs(self)
        running = self.submit(PhononWorkChain, **inputs)
        self.report(f"launched PhononWorkChain<{running.pk}>")
        return ToContext(phonons=running)

    def inspect_phonons(self):
        phonons = self.ctx.phonons
        if not phonons.is_finished_ok:
            return self.exit_codes.ERROR_PHONONS_FAILED.format(message=child_failure(phonons))
        self.out("modes", phonons.outputs.modes)
        return None

    # ------------------------------------------------------------------ sampling
    def run_sampling(self):
        for temperature in self.ctx.temperatures:
            running = self.submit(ThermalSamplingWorkChain, modes=self.ctx.phonons.outputs.modes,
                                  temperature_k=orm.Float(temperature), n_samples=self.inputs.n_samples,
                                  seed=self.inputs.seed, antithetic=self.inputs.antithetic,
                                  sampler=self.inputs.sampler,
                                  exclude_rigid_layer_modes=self.inputs.exclude_rigid_layer_modes)
            self.to_context(**{f"sampling_{temperature_key(temperature)}": running})

    def inspect_sampling(self):
        for temperature in self.ctx.temperatures:
            node = self.ctx[f"sampling_{temperature_key(temperature)}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_SAMPLING_FAILED.format(
                    temperature=temperature, message=child_failure(node))
        return None

    # ------------------------------------------------------------------ observables
    def _observable_settings(self) -> orm.Dict:
        if "observable_settings_node" not in self.ctx:
            settings = {**DEFAULT_OBSERVABLE_SETTINGS, **self.inputs.observable_settings.get_dict()}
            unit_cell = self.inputs.structure.get_ase()
            settings["primitive_cell"] = self.inputs.structure.cell
            settings["primitive_positions"] = unit_cell.get_positions().tolist()
            settings["primitive_numbers"] = unit_cell.get_atomic_numbers().tolist()
            self.ctx.observable_settings_node = orm.Dict(settings)
        return self.ctx.observable_settings_node

    def run_observables(self):
        settings = self._observable_settings()
        # the static (undisplaced) lattice, the reference of the renormalisation: same provider, same estimator
        supercell = self.ctx.phonons.outputs.supercell
        if self.uses_engine_hamiltonians():
            hamiltonian = self.ctx.engine_hamiltonians["static"]
        else:
            hamiltonian = hamiltonian_of(self, "static_hamiltonian", supercell, self.inputs.hamiltonian_provider.value,
                                         self.inputs.get("hamiltonian_model"), self.inputs.engine_parameters)
        spectral = estimator_of(settings) == "spectral"
        static_inputs = {}
        if spectral:
            static_spectrum, _ = resumable_call(self, compute_unfolded_spectrum, "static_unfolded_spectrum",
                                                hamiltonian, settings)
            self.ctx.static_spectrum = static_spectrum
            self.ctx.static_lattice, _ = resumable_call(self, estimate_static_lattice, "static_estimate",
                                                        static_spectrum, settings)
            static_inputs["static_spectrum"] = static_spectrum
        else:
            self.ctx.static_lattice, _ = resumable_call(self, compute_fermi_velocity, "static_fermi_velocity",
                                                        hamiltonian, settings)
        for temperature in self.ctx.temperatures:
            sampling = self.ctx[f"sampling_{temperature_key(temperature)}"]
            samples = {label: sampling.outputs.samples[label] for label in sampling.outputs.samples}
            extra = {"hamiltonian_model": self.inputs.hamiltonian_model} if "hamiltonian_model" in self.inputs else {}
            if self.inputs.hamiltonian_provider.value == "hedgenet" and inference_inputs(self):
                extra["inference"] = inference_inputs(self)
            if self.uses_engine_hamiltonians():
                key = temperature_key(temperature)
                extra["hamiltonians"] = {label: self.ctx.engine_hamiltonians[f"{key}_{label}"] for label in samples}
            running = self.submit(ObservableWorkChain, structures=samples, temperature_k=orm.Float(temperature),
                                  settings=settings, engine_parameters=self.inputs.engine_parameters,
                                  antithetic=self.inputs.antithetic,
                                  hamiltonian_provider=self.inputs.hamiltonian_provider, **static_inputs, **extra)
            self.to_context(**{f"observable_{temperature_key(temperature)}": running})

    def inspect_observables(self):
        for temperature in self.ctx.temperatures:
            node = self.ctx[f"observable_{temperature_key(temperature)}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_OBSERVABLE_FAILED.format(temperature=temperature,
                                                                      message=child_failure(node))
        return None

    def summarize(self):
        averages = {
            temperature_key(t): self.ctx[f"observable_{temperature_key(t)}"].outputs.average
            for t in self.ctx.temperatures
        }
        self.out("static_lattice", self.ctx.static_lattice)
        self.out("averages", averages)
        if estimator_of(self._observable_settings()) == "chord":
            summary, _ = resumable_call(self, summarize_fermi_velocity, "summary", self.ctx.static_lattice, **averages)
            self.out("summary", summary)
            plot, _ = resumable_call(self, plot_fermi_velocity_summary, "plot", summary)
            self.out("plot", plot)
            return
        spectra = {temperature_key(t): self.ctx[f"observable_{temperature_key(t)}"].outputs.spectral_function
                   for t in self.ctx.temperatures}
        summary, _ = resumable_call(self, summarize_band_renormalisation, "summary", self.ctx.static_lattice,
                                    **averages)
        self.out("static_spectrum", self.ctx.static_spectrum)
        self.out("spectral_functions", spectra)
        self.out("summary", summary)
        plot, _ = resumable_call(self, plot_band_renormalisation, "plot", summary)
        self.out("plot", plot)
        if SpectralSettings.from_dict(self._observable_settings().get("spectral")).line_points:
            maps, _ = resumable_call(self, plot_spectral_function_maps, "spectral_plot", summary, **spectra)
            self.out("spectral_plot", maps)
