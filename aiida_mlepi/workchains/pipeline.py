"""`MlepiWorkChain` (``mlepi.pipeline``): the MLEPI pipeline as one submission.

unit cell ─► training datasets (:class:`DatasetWorkChain`: forces of perturbed phonon-training cells; H(R) of
electron-training cells — one dataset with ``hamiltonian=True`` when the engine gives both and no separate
``electron_data`` is given) ─► HedgeNet-Phonon and HedgeNet-Electron trained in parallel (the CalcJobs
``mlepi.train_phonon`` / ``mlepi.train_electron``) ─► :class:`EpiLoopWorkChain` on the production supercell with
both networks (``force_provider = hamiltonian_provider = 'hedgenet'``) ─► ground-truth check ─► ``summary``.

Ground-truth check (``n_check`` > 0): per temperature ``n_check`` of the loop's samples, chosen at random
from ``check_seed`` (± pairs kept together when the loop sampled pairs), go through
:class:`ObservableWorkChain` twice, with the engine's H(R) (``hamiltonian_provider='engine'``) and with
``'hedgenet'``, each against its own static lattice (the undisplaced supercell through the same provider);
``compare_renormalisation`` gives ML − engine of every band parameter's change and whether it lies within
the combined standard error. The engine's phonons of the production supercell (:class:`PhononWorkChain`,
``force_provider='engine'``) are compared with the ML phonons mode by mode (|Δω| in cm⁻¹).

The engine of the check is the dataset engine (input ``engine``; any engine that gives H(R) and a forces node,
see :mod:`aiida_mlepi.engines.base`), run through its own processes (CalcJobs for GPAW,
:mod:`aiida_mlepi.workchains.engine_jobs`): H(R) of the checked samples and of the static supercell, forces of
the displaced production supercells. Its settings (namespace ``check``): ``engine_parameters`` (default: those
of the phonon dataset, so that the check and the training data agree, else ``loop.engine_parameters``),
``kpoints_mesh`` of the production supercell (default: the loop's phonon mesh), ``engine_inputs`` (default:
those of the phonon, else the electron dataset; GPAW: ``code``) and ``max_concurrent``.

Non-orthogonal engines (GPAW LCAO, S(R) ≠ 1): HedgeNet-Electron learns H(R) in an orthogonal basis, so the
training H(R), S(R) are Löwdin-orthogonalised first (:func:`orthogonalise_hamiltonians`, blocks within the
network's block cutoffs; the band error of that truncation is in the summary's ``stages.orthogonalisation``).
The species and orbital shells of the network follow the training H(R) unless the protocol sets them. The
check keeps the engine's own H(R), S(R), so the ML − engine difference includes the truncation.

Committee uncertainty (``committee``: members per network, trained in parallel with shifted seeds; member 0
drives the loop) and one optional round of active learning (``active_learning``): see
:mod:`aiida_mlepi.workchains.committee`. The summary gives per temperature the ML value ± sampling standard
error ± committee std, and the samples whose spread exceeds ``committee_threshold``.

Any stage can be skipped by giving its result: ``phonon_dataset`` / ``electron_dataset`` (skip the dataset),
``phonon_model`` / ``hamiltonian_model`` (skip dataset and training; a committee is then the given model plus
the models in ``phonon_committee`` / ``hamiltonian_committee``, and ``committee`` is not used for it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from aiida import orm
from ase.data import atomic_numbers
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mlepi.calculations.electron import electron_model_problem
from aiida_mlepi.calculations.electron_training import HedgeNetElectronTrainingCalculation
from aiida_mlepi.calculations.orthogonalisation import REPORT_LABEL as ORTHOGONALISATION_REPORT
from aiida_mlepi.calculations.orthogonalisation import orthogonalise_hamiltonians
from aiida_mlepi.calculations.pipeline import compare_phonon_modes, compare_renormalisation, summarize_pipeline
from aiida_mlepi.calculations.sampling import SAMPLERS
from aiida_mlepi.calculations.spectral import compute_unfolded_spectrum
from aiida_mlepi.calculations.training import HedgeNetPhononTrainingCalculation
from aiida_mlepi.core.engine.relax import supercell_kpoints_mesh
from aiida_mlepi.core.orthogonalisation import OrthogonalisationError
from aiida_mlepi.data.configuration_set import ConfigurationSetData
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData
from aiida_mlepi.engines.base import UnknownEngineError, available_engines, get_engine

from .committee import CommitteeSteps, member_parameters
from .common import (child_failure, define_structure_exit_codes, progress_message, structure_elements,
                     temperatures_problem)
from .dataset import DatasetWorkChain, protocol_inputs, supercell_kpoints
from .engine_jobs import EngineHamiltonianSteps, EngineJobs
from .epi_loop import DEFAULT_OBSERVABLE_SETTINGS, EpiLoopWorkChain, temperature_key
from .observable import ObservableWorkChain
from .phonons import PhononWorkChain, model_input_problem
from .resume import resumable_call

PROTOCOL_FILE = Path(__file__).resolve().parent.parent / "protocols" / "pipeline.yaml"
#: inputs of the EPI loop set by the pipeline itself (the rest is exposed in the ``loop`` namespace)
LOOP_OWN_INPUTS = ("structure", "supercell_matrix", "temperatures_k", "n_samples", "sampler", "force_provider",
                   "phonon_model", "hamiltonian_provider", "hamiltonian_model")
DATASET_OWN_INPUTS = ("structure", "engine")
#: training-set members needed for a train/validation/test split
MIN_TRAINING_CONFIGURATIONS = 3
#: keys of the trainers' ``metrics`` copied into the summary
METRIC_KEYS = ("epochs_run", "best_epoch", "stopped_early", "split_sizes", "test", "seed")


def choose_checked_samples(labels: list[str], n_check: int, pairs: bool, seed: int, index: int) -> list[str]:
    """``n_check`` of the sample ``labels`` (sorted), chosen at random from ``(seed, index)``.

    With ``pairs`` the samples are ± pairs (labels 0–1, 2–3, … in sorted order) and whole pairs are chosen."""
    ordered = sorted(labels)
    group = 2 if pairs else 1
    groups = [ordered[i:i + group] for i in range(0, len(ordered) - group + 1, group)]
    count = n_check // group
    if count > len(groups):
        raise ValueError(f"cannot check {n_check} of {len(ordered)} samples")
    picked = np.random.default_rng([seed, index]).choice(len(groups), size=count, replace=False)
    return [label for k in sorted(picked.tolist()) for label in groups[k]]


def structure_atomic_numbers(structure: LayeredStructureData) -> list[int]:
    """Sorted atomic numbers of the elements of ``structure``."""
    from ase.data import atomic_numbers

    return sorted(atomic_numbers[symbol] for symbol in structure_elements(structure))


def electron_parameters_for_data(parameters: dict, hamiltonians: dict[str, HamiltonianData]) -> dict:
    """HedgeNet-Electron training parameters with the species and orbital basis of the training H(R) where the
    protocol leaves them out (a protocol serves any material; the engine's basis decides the shells)."""
    model = dict(parameters.get("model", {}))
    if "atomic_numbers" in model and "basis" in model:
        return parameters
    basis: dict[str, list[int]] = {}
    for node in hamiltonians.values():
        for symbol, shells in node.base.attributes.get("basis").items():
            basis[str(atomic_numbers[symbol])] = list(shells)
    model.setdefault("atomic_numbers", sorted(int(z) for z in basis))
    model.setdefault("basis", basis)
    return {**parameters, "model": model}


def stage_wall_time(nodes: list[orm.ProcessNode]) -> float | None:
    """Seconds from the first node's creation to the last node's last change (None without nodes)."""
    if not nodes:
        return None
    return float((max(n.mtime for n in nodes) - min(n.ctime for n in nodes)).total_seconds())


class MlepiWorkChain(CommitteeSteps, EngineHamiltonianSteps, WorkChain):
    """Datasets → both HedgeNet committees → the EPI loop with member 0 → committee spread (→ one round of
    active learning) → ground-truth check → summary.

    Exit codes: 300 single layer, 301 unsupported element, 302 invalid input, 401 a dataset failed,
    402 the phonon training failed, 403 the electron training failed, 404 the EPI loop failed,
    405 a ground-truth observable failed, 406 the engine phonons failed, 407 a committee member's observable
    failed, 408 an engine H(R) of the ground-truth check failed, 409 the Löwdin orthogonalisation failed (each with
    the reason).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=LayeredStructureData, help="Relaxed unit cell with ≥ 2 layers (Å).")
        spec.input("engine", valid_type=orm.Str, default=lambda: orm.Str("reference"),
                   help="Labelling engine of the datasets (aiida_mlepi.dataset_engines).")
        spec.input("code", valid_type=orm.AbstractCode, required=False,
                   help="Python interpreter with aiida-mlepi[ml] for the training CalcJobs (needed unless both "
                        "models are given).")
        spec.input("supercell_matrix", valid_type=orm.List, default=lambda: orm.List([6, 6, 1]),
                   help="Production supercell [n1, n2, 1] of the loop.")
        spec.input("temperatures_k", valid_type=orm.List, default=lambda: orm.List([0.0, 150.0, 300.0]),
                   help="Temperatures (K).")
        spec.input("n_samples", valid_type=orm.Int, default=lambda: orm.Int(16), help="Samples per temperature (mc).")
        spec.input("sampler", valid_type=orm.Str, default=lambda: orm.Str("mc"), help=f"One of {SAMPLERS}.")
        spec.input("n_check", valid_type=orm.Int, default=lambda: orm.Int(2),
                   help="Samples per temperature recomputed by the engine (ground-truth check); 0 skips the check.")
        spec.input("check_seed", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="Seed of the random choice of the checked samples.")
        spec.input("phonon_dataset", valid_type=ConfigurationSetData, required=False,
                   help="Existing forces dataset: skips the phonon dataset.")
        spec.input_namespace("electron_dataset", valid_type=HamiltonianData, dynamic=True, required=False,
                             help="Existing H(R) of the electron-training structures: skips the electron dataset.")
        spec.input("phonon_model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Phonon: skips the phonon dataset and training.")
        spec.input("hamiltonian_model", valid_type=TrainedModelData, required=False,
                   help="Trained HedgeNet-Electron: skips the electron dataset and training.")
        spec.input_namespace("phonon_committee", valid_type=TrainedModelData, dynamic=True, required=False,
                             help="Further HedgeNet-Phonon members next to a given `phonon_model` (committee).")
        spec.input_namespace("hamiltonian_committee", valid_type=TrainedModelData, dynamic=True, required=False,
                             help="Further HedgeNet-Electron members next to a given `hamiltonian_model`.")
        spec.input("committee", valid_type=orm.Dict, default=lambda: orm.Dict({"phonon": 1, "electron": 1}),
                   help="Members per trained network {'phonon': n, 'electron': n}; member k trains with the seeds "
                        "+ k, all in parallel; member 0 drives the loop, the others give the spread.")
        spec.input("committee_threshold", valid_type=orm.Dict,
                   default=lambda: orm.Dict({"forces_ev_per_angstrom": 0.05, "hamiltonian_mev": 2.0}),
                   help="A sample is flagged when its committee spread exceeds forces_ev_per_angstrom (RMS over "
                        "atoms of the member std, eV/Å) or hamiltonian_mev (RMS member std of the H blocks, meV).")
        spec.input("active_learning", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="One round: the flagged samples are labelled by the engine, added to the training sets, "
                        "every member retrained and the loop rerun; the summary keeps both rounds.")
        optional = {"required": False, "populate_defaults": False}
        spec.expose_inputs(DatasetWorkChain, namespace="phonon_data", exclude=DATASET_OWN_INPUTS,
                           namespace_options={**optional, "help": "DatasetWorkChain of the phonon training set "
                                              "(also gives H(R) when `electron_data` is absent)."})
        spec.expose_inputs(DatasetWorkChain, namespace="electron_data", exclude=DATASET_OWN_INPUTS,
                           namespace_options={**optional, "help": "A separate DatasetWorkChain for the H(R) "
                                              "(hamiltonian=True is set)."})
        spec.expose_inputs(HedgeNetPhononTrainingCalculation, namespace="phonon_training",
                           exclude=("code", "dataset"), namespace_options={**optional,
                                                                           "help": "mlepi.train_phonon inputs."})
        spec.expose_inputs(HedgeNetElectronTrainingCalculation, namespace="electron_training",
                           exclude=("code", "hamiltonians"),
                           namespace_options={**optional, "help": "mlepi.train_electron inputs."})
        spec.input_namespace("check", required=False, populate_defaults=False,
                             help="The engine of the ground-truth check (defaults: see the module docstring).")
        spec.input("check.engine_parameters", valid_type=orm.Dict, required=False,
                   help="Engine parameters of the check (default: the phonon dataset's).")
        spec.input("check.kpoints_mesh", valid_type=orm.List, required=False,
                   help="Γ-centred k mesh of the production supercell for the engine's H(R) and forces.")
        spec.input_namespace("check.engine_inputs", dynamic=True, required=False, populate_defaults=False,
                             help="Further inputs of the engine's processes (GPAW: code, options).")
        spec.input("check.max_concurrent", valid_type=orm.Int, required=False,
                   help="Engine processes of the H(R) check (and of the engine phonons) at once (default 4).")
        spec.expose_inputs(EpiLoopWorkChain, namespace="loop", exclude=LOOP_OWN_INPUTS,
                           namespace_options={"help": "Further EpiLoopWorkChain inputs (seed, antithetic, "
                                              "engine_parameters, observable_settings, …)."})
        spec.outline(
            cls.validate_inputs,
            if_(cls.needs_datasets)(cls.run_datasets, cls.inspect_datasets),
            if_(cls.needs_orthogonalisation)(cls.orthogonalise_electron_data),
            if_(cls.needs_training)(cls.run_training, cls.inspect_training),
            cls.run_loop,
            cls.inspect_loop,
            if_(cls.has_committee)(cls.run_committee, cls.inspect_committee),
            if_(cls.does_active_learning)(
                cls.run_labelling, cls.run_training, cls.inspect_training, cls.run_loop, cls.inspect_loop,
                if_(cls.has_committee)(cls.run_committee, cls.inspect_committee)),
            if_(cls.checks_ground_truth)(
                cls.run_engine_check,
                while_(cls.has_pending_engine_hamiltonians)(cls.submit_engine_hamiltonians,
                                                            cls.inspect_engine_hamiltonians),
                cls.run_check_observables,
                cls.inspect_ground_truth,
            ),
            cls.summarize,
        )
        spec.output("phonon_model", valid_type=TrainedModelData, help="HedgeNet-Phonon used by the loop.")
        spec.output("hamiltonian_model", valid_type=TrainedModelData, help="HedgeNet-Electron used by the loop.")
        spec.output_namespace("committee", valid_type=orm.Dict, dynamic=True, required=False,
                              help="Committee spread per temperature (T_…K) and `summary` (of the last round).")
        spec.output("committee_plot", valid_type=orm.SinglefileData, required=False,
                    help="PNG: change vs T with sampling s.e. and committee std; per-sample spreads vs thresholds.")
        spec.expose_outputs(EpiLoopWorkChain, namespace="loop")
        spec.output_namespace("ground_truth", valid_type=orm.Dict, dynamic=True, required=False,
                              help="ML vs engine per temperature (T_…K) and `phonons` (|Δω| cm⁻¹).")
        spec.output("summary", valid_type=orm.Dict, help="observable 'mlepi_pipeline_summary'.")
        define_structure_exit_codes(spec)
        spec.exit_code(401, "ERROR_DATASET_FAILED", message="The {which} dataset failed: {message}")
        spec.exit_code(402, "ERROR_PHONON_TRAINING_FAILED", message="The HedgeNet-Phonon training failed: {message}")
        spec.exit_code(403, "ERROR_ELECTRON_TRAINING_FAILED",
                       message="The HedgeNet-Electron training failed: {message}")
        spec.exit_code(404, "ERROR_LOOP_FAILED", message="The EPI loop failed: {message}")
        spec.exit_code(405, "ERROR_CHECK_FAILED",
                       message="The ground-truth observable ({provider}) failed at {temperature} K: {message}")
        spec.exit_code(406, "ERROR_ENGINE_PHONONS_FAILED", message="The engine phonons failed: {message}")
        spec.exit_code(407, "ERROR_COMMITTEE_FAILED",
                       message="The observable of committee member {member} failed at {temperature} K: {message}")
        spec.exit_code(408, "ERROR_ENGINE_HAMILTONIAN_FAILED",
                       message="The engine H(R) of the ground-truth check failed: {message}")
        spec.exit_code(409, "ERROR_ORTHOGONALISATION_FAILED",
                       message="The Löwdin orthogonalisation of the engine's H(R), S(R) failed: {message}")

    # ------------------------------------------------------------------ protocol
    @classmethod
    def get_builder_from_protocol(cls, structure: LayeredStructureData, engine: str = "reference",
                                  protocol: str | None = None, code: orm.AbstractCode | None = None,
                                  overrides: dict | None = None, engine_inputs: dict[str, Any] | None = None):
        """A builder filled from ``protocols/pipeline.yaml`` (``fast`` | ``balanced`` | ``stringent`` |
        ``gpaw_cpu``).

        ``overrides`` is merged key by key into the protocol values (see the YAML header for the keys), e.g.
        ``{'production': {'sampler': 'zg'}, 'n_check': 0}``. ``engine_inputs`` go to the datasets (and so to the
        ground-truth check), e.g. ``{'code': python_with_gpaw}`` for ``engine='gpaw'``.
        """
        values = protocol_inputs(protocol, overrides, PROTOCOL_FILE)
        builder = cls.get_builder()
        builder.structure = structure
        builder.engine = orm.Str(engine)
        if code is not None:
            builder.code = code
        production = values["production"]
        builder.supercell_matrix = orm.List([int(n) for n in production["supercell"]])
        builder.temperatures_k = orm.List([float(t) for t in production["temperatures_k"]])
        builder.n_samples = orm.Int(production["n_samples"])
        builder.sampler = orm.Str(production["sampler"])
        if production.get("subtract_residual_forces"):
            builder.loop.subtract_residual_forces = orm.Bool(True)
        builder.n_check = orm.Int(values["n_check"])
        builder.committee = orm.Dict({which: int(n) for which, n in values["committee"].items()})
        builder.committee_threshold = orm.Dict(values["committee_threshold"])
        builder.active_learning = orm.Bool(bool(values["active_learning"]))
        builder.loop.engine_parameters = orm.Dict(values["engine_parameters"])
        for which in ("phonon", "electron"):
            dataset = values["datasets"].get(which)
            if dataset is not None:
                sub = DatasetWorkChain.get_builder_from_protocol(structure, engine, dataset.get("protocol"),
                                                                 dataset.get("overrides"), engine_inputs)
                builder[f"{which}_data"] = {key: sub[key] for key in sub if key not in DATASET_OWN_INPUTS}
            training = values[f"{which}_training"]
            parameters = training["training_parameters"]
            if which == "phonon" and "atomic_numbers" not in parameters.get("model", {}):
                # HedgeNet-Phonon's species are the structure's (its default is carbon only); E0 = 0 as the default
                numbers = structure_atomic_numbers(structure)
                parameters = {**parameters, "model": {**parameters.get("model", {}), "atomic_numbers": numbers,
                                                      "atomic_energies": [0.0] * len(numbers)}}
            builder[f"{which}_training"].training_parameters = orm.Dict(parameters)
            for option, value in (training.get("options") or {}).items():
                builder[f"{which}_training"].metadata.options[option] = value
        check = values.get("check") or {}
        if "kpoints_unit_cell" in check:
            builder.check.kpoints_mesh = orm.List(supercell_kpoints(check["kpoints_unit_cell"],
                                                                    builder.supercell_matrix.get_list()[:2]))
        if "max_concurrent" in check:
            builder.check.max_concurrent = orm.Int(check["max_concurrent"])
        return builder

    # ------------------------------------------------------------------ validation
    def _invalid(self, reason: str):
        return self.exit_codes.ERROR_INVALID_INPUT.format(reason=reason)

    def validate_inputs(self):  # noqa: PLR0911 - one early exit per user mistake
        structure = self.inputs.structure
        if structure.num_layers < 2:
            return self.exit_codes.ERROR_SINGLE_LAYER.format(count=structure.num_layers)
        engine = self.inputs.engine.value
        try:
            backend = get_engine(engine)
        except UnknownEngineError:
            return self._invalid(f"unknown engine {engine!r}; registered: {', '.join(available_engines())}")
        missing = backend.unsupported_elements(structure_elements(structure))
        if missing:
            return self.exit_codes.ERROR_UNSUPPORTED_ELEMENT.format(elements=", ".join(missing))
        reason = self._production_problem() or self._check_problem(engine)
        if reason:
            return self._invalid(reason)
        reason = self._plan_sources(backend.provides_hamiltonian)
        if reason:
            return self._invalid(reason)
        settings = {**DEFAULT_OBSERVABLE_SETTINGS, **self.inputs.loop.observable_settings.get_dict()}
        reason = self.committee_problem(engine, settings["estimator"])
        if reason:
            return self._invalid(reason)
        return None

    def _electron_model_settings(self) -> dict:
        """The HedgeNet-Electron model settings to be trained (the protocol's, before the data fill the species)."""
        parameters = self.inputs.get("electron_training", {}).get("training_parameters")
        return dict(parameters.get_dict().get("model", {})) if parameters is not None else {}

    def _production_problem(self) -> str | None:
        temperatures = self.inputs.temperatures_k.get_list()
        problem = temperatures_problem(temperatures)
        if problem:
            return problem
        if min(temperatures) < 0:
            return f"temperatures must be ≥ 0 K, got {temperatures}"
        matrix = self.inputs.supercell_matrix.get_list()
        if len(matrix) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in matrix):
            return f"supercell_matrix must be three positive integers [n1, n2, n3], got {matrix}"
        sampler = self.inputs.sampler.value
        if sampler not in SAMPLERS:
            return f"sampler {sampler!r} is not one of {SAMPLERS}"
        n = self.inputs.n_samples.value
        if n < 1 or (self.inputs.loop.antithetic.value and n % 2):
            return f"n_samples must be ≥ 1 (and even with antithetic pairs), got {n}"
        return None

    def samples_per_temperature(self) -> int:
        if self.inputs.sampler.value == "zg":
            return 2 if self.inputs.loop.antithetic.value else 1
        return self.inputs.n_samples.value

    def _check_problem(self, engine: str) -> str | None:
        n_check = self.inputs.n_check.value
        if n_check == 0:
            return None
        available = self.samples_per_temperature()
        pairs = self.inputs.loop.antithetic.value
        if n_check < 0 or n_check > available or (pairs and n_check % 2):
            return (f"n_check must be between 0 and the {available} samples per temperature"
                    + (" and even (± pairs are checked together)" if pairs else "") + f", got {n_check}")
        settings = {**DEFAULT_OBSERVABLE_SETTINGS, **self.inputs.loop.observable_settings.get_dict()}
        if settings["estimator"] != "spectral":
            return f"the ground-truth check needs the spectral estimator, got {settings['estimator']!r}; set n_check = 0"
        backend = get_engine(engine)
        if not backend.provides_hamiltonian:
            return (f"the ground-truth check recomputes H(R) with the engine, and engine {engine!r} gives no H(R): "
                    "set n_check = 0")
        if not backend.provides_forces_node:
            return (f"the ground-truth check recomputes the phonons with the engine, and engine {engine!r} gives no "
                    "forces node: set n_check = 0")
        if self._check_max_concurrent() < 1:
            return f"check.max_concurrent must be ≥ 1, got {self._check_max_concurrent()}"
        jobs = self._check_jobs()
        reason = backend.validate(self.inputs.structure, jobs.parameters.get_dict(), jobs.kpoints_mesh.get_list(),
                                  True, jobs.engine_inputs)
        return None if reason is None else f"ground-truth check: {reason}"

    def _check_max_concurrent(self) -> int:
        return self.inputs.get("check", {}).get("max_concurrent", orm.Int(4)).value

    def _check_jobs(self, hamiltonian: bool = False) -> EngineJobs:
        """The engine, parameters, k mesh and engine inputs of the ground-truth check (defaults filled in); for the
        engine's H(R) (``hamiltonian``) the defaults come from the electron dataset first, so the check uses the
        basis the electron network was trained on."""
        check = self.inputs.get("check", {})
        names = ("electron_data", "phonon_data") if hamiltonian else ("phonon_data", "electron_data")
        datasets = [self.inputs[name] for name in names if self.inputs.get(name)]
        parameters = check.get("engine_parameters")
        if parameters is None:
            found = [d["engine_parameters"] for d in datasets if "engine_parameters" in d]
            parameters = found[0] if found else self.inputs.loop.engine_parameters
        mesh = check.get("kpoints_mesh") or self.inputs.loop.get("phonon_kpoints_mesh")
        if mesh is None:
            mesh = orm.List(list(supercell_kpoints_mesh(tuple(self.inputs.supercell_matrix.get_list()))))
        engine_inputs = dict(check.get("engine_inputs", {}))
        if not engine_inputs:
            found = [dict(d["engine_inputs"]) for d in datasets if d.get("engine_inputs")]
            engine_inputs = found[0] if found else {}
        return EngineJobs(self.inputs.engine.value, parameters, mesh, engine_inputs)

    def _plan_sources(self, engine_gives_hamiltonian: bool) -> str | None:
        """Where each model comes from: ``ctx.phonon_source`` / ``ctx.electron_source`` in
        {'model', 'dataset', 'compute', 'shared'} ('shared': the H(R) of the phonon DatasetWorkChain)."""
        inputs = self.inputs
        if "phonon_model" in inputs:
            problem = model_input_problem(inputs.phonon_model, inputs.structure)
            if problem:
                return problem.replace("`model`", "`phonon_model`")
            phonon = "model"
        elif "phonon_dataset" in inputs:
            phonon = "dataset"
            if inputs.phonon_dataset.num_configurations < MIN_TRAINING_CONFIGURATIONS:
                return (f"phonon_dataset has {inputs.phonon_dataset.num_configurations} configuration(s); training "
                        f"needs ≥ {MIN_TRAINING_CONFIGURATIONS}")
        elif "phonon_data" in inputs:
            phonon = "compute"
        else:
            return "give phonon_model, phonon_dataset or phonon_data (DatasetWorkChain inputs) for the forces"
        if "hamiltonian_model" in inputs:
            problem = electron_model_problem(inputs.hamiltonian_model)
            if problem:
                return problem
            electron = "model"
        elif inputs.get("electron_dataset"):
            electron = "dataset"
            if len(inputs.electron_dataset) < MIN_TRAINING_CONFIGURATIONS:
                return (f"electron_dataset has {len(inputs.electron_dataset)} H(R); training needs "
                        f"≥ {MIN_TRAINING_CONFIGURATIONS}")
        elif "electron_data" in inputs:
            electron = "compute"
        elif phonon == "compute" and engine_gives_hamiltonian:
            electron = "shared"
        elif phonon == "compute":
            return (f"engine {self.inputs.engine.value!r} gives no H(R): give electron_data with a Hamiltonian "
                    "engine, electron_dataset or hamiltonian_model")
        else:
            return "give hamiltonian_model, electron_dataset or electron_data (DatasetWorkChain inputs) for H(R)"
        for which, source in (("phonon", phonon), ("electron", electron)):
            data = inputs.get(f"{which}_data")
            if source in ("compute", "shared") and data is not None \
                    and data.num_configurations.value < MIN_TRAINING_CONFIGURATIONS:
                return (f"{which}_data.num_configurations must be ≥ {MIN_TRAINING_CONFIGURATIONS} "
                        f"(train/validation/test), got {data.num_configurations.value}")
        for which, source in (("phonon", phonon), ("electron", electron)):
            if source == "model":
                continue
            if "code" not in inputs:
                return (f"training HedgeNet-{which.capitalize()} needs `code`: a Python interpreter with "
                        "aiida-mlepi[ml] installed (a computer's python3 set up as an InstalledCode)")
            if "training_parameters" not in inputs.get(f"{which}_training", {}):
                return f"training HedgeNet-{which.capitalize()} needs {which}_training.training_parameters"
        self.ctx.phonon_source, self.ctx.electron_source = phonon, electron
        return None

    # ------------------------------------------------------------------ datasets
    def needs_datasets(self) -> bool:
        return "compute" in (self.ctx.phonon_source, self.ctx.electron_source)

    def run_datasets(self):
        futures = {}
        for which in ("phonon", "electron"):
            if self.ctx[f"{which}_source"] != "compute":
                continue
            inputs = self.exposed_inputs(DatasetWorkChain, namespace=f"{which}_data")
            if which == "electron" or self.ctx.electron_source == "shared":
                inputs["hamiltonian"] = orm.Bool(True)
            futures[f"{which}_dataset"] = self.submit(DatasetWorkChain, structure=self.inputs.structure,
                                                      engine=self.inputs.engine, **inputs)
            self.report(f"launched DatasetWorkChain<{futures[f'{which}_dataset'].pk}> ({which})")
        return ToContext(**futures)

    def inspect_datasets(self):
        for which in ("phonon", "electron"):
            node = self.ctx.get(f"{which}_dataset")
            if node is not None and not node.is_finished_ok:
                return self.exit_codes.ERROR_DATASET_FAILED.format(which=which, message=child_failure(node))
        return None

    def needs_orthogonalisation(self) -> bool:
        """Whether the H(R) to train on are in a non-orthogonal (LCAO) basis, S(R) ≠ 1."""
        _, electron = self._dataset_hamiltonians()
        return electron is not None and any(not h.base.attributes.get("orthogonal", True) for h in electron.values())

    def orthogonalisation_settings(self) -> orm.Dict:
        """Blocks kept by the orthogonalisation: those the network predicts (its block cutoffs, Å)."""
        from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectronConfig  # torch: only when training

        model = self._electron_model_settings()
        defaults = HedgeNetElectronConfig()
        return orm.Dict({"cutoff_intra_angstrom": float(model.get("block_cutoff_intra", defaults.block_cutoff_intra)),
                         "cutoff_inter_angstrom": float(model.get("block_cutoff_inter", defaults.block_cutoff_inter))})

    def orthogonalise_electron_data(self):
        """The engine's LCAO H(R), S(R) → Löwdin-orthogonal H(R) within the network's block cutoffs (what
        HedgeNet-Electron learns; :mod:`aiida_mlepi.core.orthogonalisation`). The check keeps the engine's own."""
        _, electron = self._dataset_hamiltonians()
        try:
            outputs, node = resumable_call(self, orthogonalise_hamiltonians, "orthogonalise_hamiltonians",
                                           self.orthogonalisation_settings(), **electron)
        except OrthogonalisationError as exc:
            return self.exit_codes.ERROR_ORTHOGONALISATION_FAILED.format(message=str(exc))
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_ORTHOGONALISATION_FAILED.format(message=child_failure(node))
        report = outputs[ORTHOGONALISATION_REPORT]
        self.ctx.orthogonal_hamiltonians = {label: outputs[label] for label in electron}
        self.ctx.orthogonalisation_report = report
        self.report(f"Löwdin-orthogonalised {len(electron)} H(R) (blocks within "
                    f"{report['cutoff_intra_angstrom']}/{report['cutoff_inter_angstrom']} Å): band error ≤ "
                    f"{report['band_error_max_mev']:.1f} meV within ±5 eV of E_F")
        return None

    def _training_data(self) -> tuple[ConfigurationSetData | None, dict[str, HamiltonianData] | None]:
        """The forces dataset and the H(R) namespace the trainers get (None where a model is given); in the
        active-learning round, with the engine-labelled flagged samples added."""
        if self.round_index > 0:
            return self.ctx.get("round1_phonon_dataset"), self.ctx.get("round1_hamiltonians")
        return self._base_training_data()

    def _base_training_data(self) -> tuple[ConfigurationSetData | None, dict[str, HamiltonianData] | None]:
        """The training data of round 0: the datasets as given or computed, the H(R) orthogonalised where the
        engine's basis is not."""
        phonon, electron = self._dataset_hamiltonians()
        if self.ctx.get("orthogonal_hamiltonians") is not None:
            electron = self.ctx.orthogonal_hamiltonians
        return phonon, electron

    def _dataset_hamiltonians(self) -> tuple[ConfigurationSetData | None, dict[str, HamiltonianData] | None]:
        """The forces dataset and the H(R) as given or computed by the datasets (None where a model is given)."""
        phonon = None
        if self.ctx.phonon_source == "dataset":
            phonon = self.inputs.phonon_dataset
        elif self.ctx.phonon_source == "compute":
            phonon = self.ctx.phonon_dataset.outputs.dataset
        source = self.ctx.electron_source
        if source == "dataset":
            electron = dict(self.inputs.electron_dataset)
        elif source in ("compute", "shared"):
            node = self.ctx.electron_dataset if source == "compute" else self.ctx.phonon_dataset
            electron = {label: node.outputs.hamiltonians[label] for label in node.outputs.hamiltonians}
        else:
            electron = None
        return phonon, electron

    # ------------------------------------------------------------------ training
    def needs_training(self) -> bool:
        return (self.ctx.phonon_source, self.ctx.electron_source) != ("model", "model")

    def run_training(self):
        dataset, hamiltonians = self._training_data()
        if hamiltonians is not None and len(hamiltonians) < MIN_TRAINING_CONFIGURATIONS:
            return self.exit_codes.ERROR_DATASET_FAILED.format(
                which="electron", message=f"only {len(hamiltonians)} H(R) (fewer than "
                                          f"{MIN_TRAINING_CONFIGURATIONS}) to train on")
        futures = {}
        # every member of both committees at once (parallel CalcJobs); member k: seeds + k
        for which, process, data in (("phonon", HedgeNetPhononTrainingCalculation, {"dataset": dataset}),
                                     ("electron", HedgeNetElectronTrainingCalculation, {"hamiltonians": hamiltonians})):
            if next(iter(data.values())) is None:
                continue
            inputs = self.exposed_inputs(process, namespace=f"{which}_training")
            parameters = inputs.pop("training_parameters").get_dict()
            if which == "electron":
                parameters = electron_parameters_for_data(parameters, data["hamiltonians"])
            for k in range(self.committee_size(which)):
                futures[self.key(f"{which}_training_{k}")] = self.submit(
                    process, code=self.inputs.code, training_parameters=orm.Dict(member_parameters(parameters, k)),
                    **data, **inputs)
        for name, node in futures.items():
            self.report(f"launched {node.process_label}<{node.pk}> ({name})")
        return ToContext(**futures)

    def _trainings(self, which: str) -> list:
        """The training CalcJobs of network ``which`` in the current round (member order; empty for a given model)."""
        if self.ctx[f"{which}_source"] == "model":
            return []
        return [self.ctx[self.key(f"{which}_training_{k}")] for k in range(self.committee_size(which))]

    def inspect_training(self):
        for which, code in (("phonon", self.exit_codes.ERROR_PHONON_TRAINING_FAILED),
                            ("electron", self.exit_codes.ERROR_ELECTRON_TRAINING_FAILED)):
            for k, node in enumerate(self._trainings(which)):
                if not node.is_finished_ok:
                    return code.format(message=f"committee member {k}: {child_failure(node)}")
        return None

    def _models(self) -> tuple[TrainedModelData, TrainedModelData]:
        """Member 0 of each committee (current round): the models of the loop."""
        return self.members("phonon")[0], self.members("electron")[0]

    # ------------------------------------------------------------------ the loop
    def run_loop(self):
        phonon_model, hamiltonian_model = self._models()
        running = self.submit(EpiLoopWorkChain, **self.exposed_inputs(EpiLoopWorkChain, namespace="loop"),
                              structure=self.inputs.structure, supercell_matrix=self.inputs.supercell_matrix,
                              temperatures_k=self.inputs.temperatures_k, n_samples=self.inputs.n_samples,
                              sampler=self.inputs.sampler, force_provider=orm.Str("hedgenet"),
                              phonon_model=phonon_model, hamiltonian_provider=orm.Str("hedgenet"),
                              hamiltonian_model=hamiltonian_model)
        self.report(f"launched EpiLoopWorkChain<{running.pk}> (round {self.round_index})")
        return ToContext(**{self.key("loop"): running})

    def inspect_loop(self):
        loop = self.ctx[self.key("loop")]
        if not loop.is_finished_ok:
            return self.exit_codes.ERROR_LOOP_FAILED.format(message=child_failure(loop))
        return None

    def final_loop(self) -> orm.WorkChainNode:
        """The EPI loop of the last round (the production result)."""
        return self.ctx[self.key("loop")]

    # ------------------------------------------------------------------ ground truth
    def checks_ground_truth(self) -> bool:
        return self.inputs.n_check.value > 0

    def _loop_children(self, process_class) -> list[orm.WorkChainNode]:
        return sorted((node for node in self.final_loop().called if node.process_class is process_class),
                      key=lambda node: node.pk)

    def run_engine_check(self):
        """Choose the checked samples; launch the engine phonons; queue the engine H(R) (checked + static)."""
        ml_phonons = self._loop_children(PhononWorkChain)[0]
        observables = {node.inputs.temperature_k.value: node for node in self._loop_children(ObservableWorkChain)}
        pairs = self.inputs.loop.antithetic.value
        structures = {"static": ml_phonons.outputs.supercell}
        checked = {}
        for index, temperature in enumerate(self.ctx_temperatures()):
            node = observables[temperature]
            labels = choose_checked_samples(list(node.inputs.structures), self.inputs.n_check.value, pairs,
                                            self.inputs.check_seed.value, index)
            key = temperature_key(temperature)
            checked[key] = labels
            structures.update({f"{key}_{label}": node.inputs.structures[label] for label in labels})
        self.ctx.ground_truth_labels = checked
        self.queue_engine_hamiltonians(structures)
        jobs = self._check_jobs()
        phonon_inputs = {name: ml_phonons.inputs[name] for name in ("structure", "supercell_matrix",
                                                                    "displacement_angstrom",
                                                                    "subtract_residual_forces")}
        running = self.submit(PhononWorkChain, **phonon_inputs, force_provider=orm.Str("engine"),
                              engine=self.inputs.engine, engine_parameters=jobs.parameters,
                              kpoints_mesh=jobs.kpoints_mesh, engine_inputs=jobs.engine_inputs,
                              max_concurrent=orm.Int(self._check_max_concurrent()))
        self.report(f"ground-truth check with engine {jobs.engine!r}: PhononWorkChain<{running.pk}> and the H(R) of "
                    f"{len(structures)} structures (checked samples + static supercell)")
        return ToContext(engine_phonons=running)

    # the engine H(R) of the check: EngineHamiltonianSteps with the check's jobs (link labels check_engine_h_*)
    ENGINE_HAMILTONIAN_PREFIX = "check_engine_h_"

    def engine_hamiltonian_jobs(self) -> EngineJobs:
        return self._check_jobs(hamiltonian=True)

    def engine_max_concurrent(self) -> int:
        return self._check_max_concurrent()

    def run_check_observables(self):
        """The checked samples through ObservableWorkChain with the engine's H(R) and with HedgeNet-Electron."""
        loop = self.final_loop()
        observables = {node.inputs.temperature_k.value: node for node in self._loop_children(ObservableWorkChain)}
        settings = next(iter(observables.values())).inputs.settings
        engine_parameters = self.inputs.loop.engine_parameters
        # the engine's static lattice: the undisplaced production supercell through the engine (the ML one is
        # the loop's own static spectrum)
        engine_static, _ = resumable_call(self, compute_unfolded_spectrum, "static_unfolded_spectrum_engine",
                                          self.ctx.engine_hamiltonians["static"], settings)
        futures = {}
        for temperature in self.ctx_temperatures():
            node = observables[temperature]
            key = temperature_key(temperature)
            labels = self.ctx.ground_truth_labels[key]
            samples = {label: node.inputs.structures[label] for label in labels}
            common = dict(structures=samples, temperature_k=node.inputs.temperature_k, settings=settings,
                          engine_parameters=engine_parameters, antithetic=node.inputs.antithetic)
            futures[f"check_engine_{key}"] = self.submit(
                ObservableWorkChain, **common, hamiltonian_provider=orm.Str("engine"), static_spectrum=engine_static,
                hamiltonians={label: self.ctx.engine_hamiltonians[f"{key}_{label}"] for label in labels})
            futures[f"check_hedgenet_{key}"] = self.submit(
                ObservableWorkChain, **common, hamiltonian_provider=orm.Str("hedgenet"),
                static_spectrum=loop.outputs.static_spectrum, hamiltonian_model=self._models()[1])
        self.report(f"ground-truth check: {len(futures)} ObservableWorkChains")
        return ToContext(**futures)

    def ctx_temperatures(self) -> list[float]:
        return [float(t) for t in self.inputs.temperatures_k.get_list()]

    def inspect_ground_truth(self):
        for temperature in self.ctx_temperatures():
            for provider in ("engine", "hedgenet"):
                node = self.ctx[f"check_{provider}_{temperature_key(temperature)}"]
                if not node.is_finished_ok:
                    return self.exit_codes.ERROR_CHECK_FAILED.format(provider=provider, temperature=temperature,
                                                                     message=child_failure(node))
        phonons = self.ctx.engine_phonons
        # imaginary engine modes (exit 410) are a result of the comparison, not a failure: the modes are output
        if not (phonons.is_finished_ok or "modes" in phonons.outputs):
            return self.exit_codes.ERROR_ENGINE_PHONONS_FAILED.format(message=child_failure(phonons))
        return None

    # ------------------------------------------------------------------ summary
    def _dataset_sizes(self, dataset, hamiltonians) -> dict[str, Any]:
        return {
            "phonon": None if dataset is None else {
                "source": self.ctx.phonon_source, "pk": dataset.pk, "num_configurations": dataset.num_configurations,
                "num_atoms": sorted(set(int(n) for n in dataset.get_configuration_set().num_atoms))},
            "electron": None if hamiltonians is None else {
                "source": self.ctx.electron_source, "num_configurations": len(hamiltonians),
                "num_atoms": sorted({int(h.base.attributes.get("num_atoms", 0)) for h in hamiltonians.values()})},
        }

    def _training_entries(self) -> dict[str, Any]:
        """Per network: member 0's metrics (the loop's model) and one line per committee member (current round)."""
        training = {}
        for which in ("phonon", "electron"):
            models, jobs = self.members(which), self._trainings(which)
            members = []
            for k, model in enumerate(models):
                entry = {"source": "trained" if jobs else "input", "model_pk": model.pk,
                         "num_parameters": model.base.attributes.get("num_parameters", None)}
                if jobs:
                    metrics = jobs[k].outputs.metrics.get_dict()
                    entry.update({"calcjob_pk": jobs[k].pk, **{key: metrics[key] for key in METRIC_KEYS
                                                               if key in metrics}})
                members.append(entry)
            training[which] = {**members[0], "committee": members}
        return training

    def _stages(self) -> dict[str, Any]:
        """Dataset sizes, training metrics, committee sizes and wall times (s, from the nodes' ctime/mtime)."""
        checks = [self.ctx[key] for key in self.ctx if key.startswith("check_")] + (
            [self.ctx.engine_phonons] if "engine_phonons" in self.ctx else [])
        trainings = [self.ctx[k] for k in self.ctx if "_training_" in k]
        committee = [self.ctx[k] for k in self.ctx if "committee_observable_" in k]
        loops = [self.ctx[k] for k in ("loop", "round1_loop") if k in self.ctx]
        wall = {
            "datasets": stage_wall_time([self.ctx[k] for k in ("phonon_dataset", "electron_dataset") if k in self.ctx]),
            "training": stage_wall_time(trainings),
            "loop": stage_wall_time(loops),
            "committee": stage_wall_time(committee),
            "ground_truth": stage_wall_time(checks),
        }
        stages = {"engine": self.inputs.engine.value, "n_check": self.inputs.n_check.value,
                  "datasets": self._dataset_sizes(*self._base_training_data()),
                  "training": self._training_entries(), "wall_time_s": wall,
                  "committee_size": {which: self.committee_size(which) for which in ("phonon", "electron")}}
        if self.inputs.active_learning.value:
            stages["active_learning"] = {
                "requested": True, "performed": self.round_index > 0,
                "labelled_samples": list(self.ctx.get("al_labelled", [])),
                "datasets": self._dataset_sizes(*self._training_data()) if self.round_index > 0 else None}
        if self.ctx.get("orthogonalisation_report") is not None:
            report = self.ctx.orthogonalisation_report.get_dict()
            stages["orthogonalisation"] = {key: report[key] for key in report if key != "per_structure"}
        if self.checks_ground_truth():
            jobs = self._check_jobs()
            stages["check_engine"] = {"engine": jobs.engine, "parameters": jobs.parameters.get_dict(),
                                      "kpoints_mesh": jobs.kpoints_mesh.get_list()}
        return stages

    def summarize(self):
        loop = self.final_loop()
        phonon_model, hamiltonian_model = self._models()
        self.out("phonon_model", phonon_model)
        self.out("hamiltonian_model", hamiltonian_model)
        self.out_many(self.exposed_outputs(loop, EpiLoopWorkChain, namespace="loop"))
        checks = {}
        phonon_comparison = None
        if self.checks_ground_truth():
            for temperature in self.ctx_temperatures():
                key = temperature_key(temperature)
                ml, engine = (self.ctx[f"check_{p}_{key}"].outputs.average for p in ("hedgenet", "engine"))
                checks[key], _ = resumable_call(self, compare_renormalisation, f"compare_{key}", ml, engine)
            phonon_comparison, _ = resumable_call(self, compare_phonon_modes, "compare_phonons", loop.outputs.modes,
                                                  self.ctx.engine_phonons.outputs.modes)
            self.out("ground_truth", {**checks, "phonons": phonon_comparison})
        extra = {} if phonon_comparison is None else {"phonon_comparison": phonon_comparison}
        committee = self.ctx.get(self.key("committee_summary"))
        if committee is not None:
            extra["committee"] = committee
            self.out("committee", {**self.ctx[self.key("committee_spreads")], "summary": committee})
            self.out("committee_plot", self.ctx[self.key("committee_plot")])
        if self.round_index > 0:
            extra["round0_loop_summary"] = self.ctx.loop.outputs.summary
            if self.ctx.get("committee_summary") is not None:
                extra["round0_committee"] = self.ctx.committee_summary
        summary, _ = resumable_call(self, summarize_pipeline, "summary", loop.outputs.summary,
                                    orm.Dict(self._stages()), **extra, **checks)
        self.out("summary", summary)
