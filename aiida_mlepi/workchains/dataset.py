"""`DatasetWorkChain` (``mlepi.dataset``): a labelled training set of perturbed supercells (paper Sec. III.1).

unit cell ─► ``generate_perturbed_supercells`` (calcfunction; every configuration a
``LayeredStructureData`` node) ─► one *engine* calculation per configuration, at most
``max_concurrent`` at a time ─► ``collect_dataset`` (calcfunction) ─► ``dataset``
(:class:`~aiida_mlepi.data.configuration_set.ConfigurationSetData`, energies eV, forces eV/Å),
``failures`` (Dict label → reason) and, for Hamiltonian engines with ``hamiltonian=True``, the
namespace ``hamiltonians`` (one :class:`~aiida_mlepi.data.hamiltonian.HamiltonianData` per member).

Engines are pluggable (see :mod:`aiida_mlepi.engines.base`): ``engine='reference'`` (tight-binding
stand-in, calcfunction), ``'gpaw'`` (GPAW LCAO, CalcJob), and any other registered in the entry-point
group ``aiida_mlepi.dataset_engines`` (e.g. ``'vasp'``).

Concurrency: members whose engine process is a CalcJob or WorkChain are *submitted* in batches of
``max_concurrent`` and awaited together. A process function (calcfunction) cannot be submitted in
AiiDA; such members run one after another inside this WorkChain's step (they are in-process and
cheap, e.g. the reference engine).

Failures: a member whose process fails (non-zero exit status, exception) or whose outputs are
unusable (missing, non-finite, or |F|max above ``max_force_ev_per_angstrom`` if given) is reported
with ``self.report``, excluded from the dataset, listed in the dataset attribute ``failed_members``
and in the ``failures`` output. More than ``max_failure_fraction`` failed → exit code 410.

Caching: with ``aiida.manage.caching.enable_caching()`` a rerun with the same inputs clones the
supercell generation and every finished member calculation instead of recomputing it (the
perturbed structures are deterministic in ``seed``, so their hashes match).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, while_
from aiida.engine.utils import is_process_function

from aiida_mlepi.core.dataset import ConfigurationSet
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.data.configuration_set import ConfigurationSetData
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.engines.base import MemberFailure, UnknownEngineError, available_engines, get_engine

from .common import progress_message

PROTOCOL_FILE = Path(__file__).resolve().parent.parent / "protocols" / "dataset.yaml"


def member_label(index: int) -> str:
    """Link label of configuration ``index``: ``m0000``, ``m0001``, …"""
    return f"m{index:04d}"


# ---------------------------------------------------------------------------------------- calcfunctions
@calcfunction
def generate_perturbed_supercells(structure: LayeredStructureData, num_configurations: orm.Int,
                                  perturbations: orm.Dict, seed: orm.Int) -> dict:
    """The perturbed supercells (``m0000``, …), each a LayeredStructureData with ``sample_index``, ``seed``."""
    settings = PerturbationSettings.from_dict(perturbations.get_dict())
    atoms_list = perturbed_configurations(structure.get_ase(), num_configurations.value, settings, seed.value)
    material = structure.material
    return {member_label(n): LayeredStructureData.from_ase(atoms, material=material, sample_index=n,
                                                           seed=seed.value)
            for n, atoms in enumerate(atoms_list)}


@calcfunction
def collect_dataset(engine: orm.Str, failures: orm.Dict, **members: orm.Data) -> dict:
    """Assemble the ConfigurationSetData from the members' structures and engine outputs.

    ``members`` holds ``<label>__structure`` (LayeredStructureData) and ``<label>__<name>`` for every
    node the engine's :meth:`~aiida_mlepi.engines.base.DatasetEngine.result_nodes` returned; the
    conversion to (energy eV, forces eV/Å) is the engine's ``energy_and_forces``.
    Outputs ``dataset`` (ConfigurationSetData, attribute ``failed_members``) and ``failures``
    (Dict: label → reason, for all failed members).
    """
    backend = get_engine(engine.value)
    grouped: dict[str, dict[str, orm.Data]] = {}
    for key, node in members.items():
        label, name = key.split("__", 1)
        grouped.setdefault(label, {})[name] = node
    structures, energies, forces, labels = [], [], [], []
    for label in sorted(grouped):
        nodes = dict(grouped[label])
        structure = nodes.pop("structure")
        energy, force = backend.energy_and_forces(nodes)
        structures.append(structure.get_ase())
        energies.append(energy)
        forces.append(force)
        labels.append(label)
    reasons = failures.get_dict()
    configurations = ConfigurationSet(structures, np.array(energies), forces, {"members": labels})
    material = next((node.material for key, node in members.items() if key.endswith("__structure")), None)
    dataset = ConfigurationSetData.from_configuration_set(configurations, material=material,
                                                          source=engine.value, failed_members=sorted(reasons))
    dataset.base.attributes.set("members", labels)
    return {"dataset": dataset, "failures": orm.Dict(reasons)}


# ---------------------------------------------------------------------------------------- protocol
def load_protocols(protocol_file: Path = PROTOCOL_FILE) -> dict:
    """The parsed protocol file (default ``protocols/dataset.yaml``)."""
    with Path(protocol_file).open() as handle:
        return yaml.safe_load(handle)


def recursive_merge(base: dict, override: dict) -> dict:
    """``base`` updated by ``override``, nested dicts merged key by key (copies)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = recursive_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def protocol_inputs(protocol: str | None = None, overrides: dict | None = None,
                    protocol_file: Path = PROTOCOL_FILE, material: str | None = None) -> dict:
    """The input values of ``protocol`` (default: the file's ``default_protocol``), with ``overrides``.

    ``protocol_file``: a YAML file with ``default_protocol``, ``default_inputs`` and ``protocols`` (default
    ``protocols/dataset.yaml``; the pipeline uses ``protocols/pipeline.yaml``). A protocol may carry a
    ``materials`` block (catalogue entry name → values): the block of ``material`` (matched without
    regard to case) is merged over the protocol's values, and ``overrides`` over both."""
    data = load_protocols(protocol_file)
    protocol = protocol or data["default_protocol"]
    if protocol not in data["protocols"]:
        raise ValueError(f"unknown protocol {protocol!r}; available: {sorted(data['protocols'])}")
    values = recursive_merge(data["default_inputs"], data["protocols"][protocol])
    values.pop("description", None)
    per_material = {str(name).lower(): block for name, block in (values.pop("materials", None) or {}).items()}
    if material is not None and material.lower() in per_material:
        values = recursive_merge(values, per_material[material.lower()])
    return recursive_merge(values, overrides or {})


def supercell_kpoints(kpoints_unit_cell: list[int], supercell: list[int]) -> list[int]:
    """Γ-centred supercell mesh equivalent to a unit-cell mesh: ceil(k_i / n_i) in-plane, k_z kept."""
    n1, n2 = supercell
    return [max(1, math.ceil(kpoints_unit_cell[0] / n1)), max(1, math.ceil(kpoints_unit_cell[1] / n2)),
            int(kpoints_unit_cell[2])]


# ---------------------------------------------------------------------------------------- WorkChain
class DatasetWorkChain(WorkChain):
    """Perturbed supercells of a layered unit cell, labelled by an engine, collected into a dataset."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=LayeredStructureData, help="Relaxed unit cell with layer ids (Å).")
        spec.input("num_configurations", valid_type=orm.Int, help="Number of perturbed supercells.")
        spec.input("perturbations", valid_type=orm.Dict,
                   help="PerturbationSettings: supercell, displacement_std_angstrom, shift_fraction, "
                        "separation_delta_angstrom (Å).")
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(0), help="Random seed of the perturbations.")
        spec.input("engine", valid_type=orm.Str, help="Labelling engine: a name registered in aiida_mlepi.dataset_engines.")
        spec.input("engine_parameters", valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help="Parameters of the engine (engine-specific).")
        spec.input("kpoints_mesh", valid_type=orm.List, help="Γ-centred k mesh of the *supercell*.")
        spec.input("hamiltonian", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Also store H(R), S(R) of every member (engines that provide it).")
        spec.input_namespace("engine_inputs", dynamic=True, populate_defaults=False, required=False,
                             help="Further engine-specific inputs, e.g. a `code` for CalcJob engines.")
        spec.input("max_concurrent", valid_type=orm.Int, default=lambda: orm.Int(4),
                   help="At most this many member calculations submitted at once.")
        spec.input("max_failure_fraction", valid_type=orm.Float, default=lambda: orm.Float(0.1),
                   help="Fail (exit 410) if more than this fraction of the members failed.")
        spec.input("max_force_ev_per_angstrom", valid_type=orm.Float, required=False,
                   help="Reject members with a force component larger than this (eV/Å): unphysical configurations.")
        spec.outline(
            cls.validate_inputs,
            cls.generate_configurations,
            while_(cls.has_pending)(cls.run_batch, cls.inspect_batch),
            cls.collect,
        )
        spec.output("dataset", valid_type=ConfigurationSetData, help="Energies (eV) and forces (eV/Å) of the members.")
        spec.output("failures", valid_type=orm.Dict, help="Failed members: label → reason.")
        spec.output_namespace("structures", valid_type=LayeredStructureData, dynamic=True,
                              help="All perturbed supercells, by member label.")
        spec.output_namespace("hamiltonians", valid_type=HamiltonianData, dynamic=True, required=False,
                              help="H(R), S(R) of each successful member (hamiltonian=True).")
        spec.exit_code(300, "ERROR_UNKNOWN_ENGINE", message="Unknown engine {engine!r}; registered: {available}.")
        spec.exit_code(301, "ERROR_INVALID_ENGINE_INPUT", message="Invalid engine input: {reason}")
        spec.exit_code(302, "ERROR_INVALID_INPUT", message="Invalid input: {reason}")
        spec.exit_code(410, "ERROR_TOO_MANY_FAILURES",
                       message="{failed} of {total} member calculations failed (allowed fraction {allowed}).")
        spec.exit_code(411, "ERROR_ALL_MEMBERS_FAILED", message="All {total} member calculations failed.")

    @classmethod
    def get_builder_from_protocol(cls, structure: LayeredStructureData, engine: str = "reference",
                                  protocol: str | None = None, overrides: dict | None = None,
                                  engine_inputs: dict[str, Any] | None = None, material: str | None = None):
        """A builder filled from ``protocols/dataset.yaml``; ``overrides`` is merged into the protocol values.

        ``material`` (default: the structure's ``material`` attribute, a catalogue entry name) selects the
        protocol's per-material block, if it has one (e.g. the k mesh and GPAW setups of ``screening``).

        Override keys: ``num_configurations``, ``seed``, ``max_concurrent``, ``max_failure_fraction``,
        ``hamiltonian``, ``kpoints_unit_cell`` (or ``kpoints_mesh`` for the supercell directly),
        ``perturbations`` (dict), ``engines: {<engine>: {parameters: {...}}}``, ``max_force_ev_per_angstrom``.
        """
        values = protocol_inputs(protocol, overrides, material=material or structure.material)
        builder = cls.get_builder()
        builder.structure = structure
        builder.engine = orm.Str(engine)
        builder.num_configurations = orm.Int(values["num_configurations"])
        builder.seed = orm.Int(values["seed"])
        builder.max_concurrent = orm.Int(values["max_concurrent"])
        builder.max_failure_fraction = orm.Float(values["max_failure_fraction"])
        builder.hamiltonian = orm.Bool(values["hamiltonian"])
        settings = PerturbationSettings.from_dict(values["perturbations"])
        builder.perturbations = orm.Dict(settings.as_dict())
        mesh = values.get("kpoints_mesh") or supercell_kpoints(values["kpoints_unit_cell"], list(settings.supercell))
        builder.kpoints_mesh = orm.List([int(k) for k in mesh])
        builder.engine_parameters = orm.Dict(values.get("engines", {}).get(engine, {}).get("parameters", {}))
        if values.get("max_force_ev_per_angstrom") is not None:
            builder.max_force_ev_per_angstrom = orm.Float(values["max_force_ev_per_angstrom"])
        if engine_inputs:
            builder.engine_inputs = engine_inputs
        return builder

    # ------------------------------------------------------------------ steps
    def validate_inputs(self):
        name = self.inputs.engine.value
        try:
            backend = self.backend
        except UnknownEngineError:
            return self.exit_codes.ERROR_UNKNOWN_ENGINE.format(engine=name, available=", ".join(available_engines()))
        try:
            PerturbationSettings.from_dict(self.inputs.perturbations.get_dict())
        except (TypeError, ValueError) as exception:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=str(exception))
        if self.inputs.num_configurations.value < 1:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="num_configurations must be ≥ 1")
        if self.inputs.max_concurrent.value < 1:
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason="max_concurrent must be ≥ 1")
        mesh = self.inputs.kpoints_mesh.get_list()
        if len(mesh) != 3 or any(int(k) < 1 for k in mesh):
            return self.exit_codes.ERROR_INVALID_INPUT.format(reason=f"kpoints_mesh must be 3 positive ints, got {mesh}")
        reason = backend.validate(self.inputs.structure, self.inputs.engine_parameters.get_dict(), mesh,
                                           self.inputs.hamiltonian.value, self._engine_inputs())
        if reason:
            return self.exit_codes.ERROR_INVALID_ENGINE_INPUT.format(reason=reason)
        return None

    @property
    def backend(self):
        """The engine object (looked up by name each time: the context must stay serialisable)."""
        return get_engine(self.inputs.engine.value)

    def _engine_inputs(self) -> dict[str, Any]:
        return dict(AttributeDict(self.inputs.get("engine_inputs", {})))

    def generate_configurations(self):
        structures = generate_perturbed_supercells(self.inputs.structure, self.inputs.num_configurations,
                                                   self.inputs.perturbations, self.inputs.seed)
        self.ctx.structures = dict(structures)
        self.ctx.pending = sorted(structures)
        self.ctx.results = {}  # label -> {name: node}
        self.ctx.hamiltonians = {}  # label -> HamiltonianData
        self.ctx.failures = {}  # label -> reason
        self.out("structures", self.ctx.structures)

    def has_pending(self) -> bool:
        return bool(self.ctx.pending)

    def run_batch(self):
        batch = self.ctx.pending[:self.inputs.max_concurrent.value]
        self.ctx.pending = self.ctx.pending[len(batch):]
        self.ctx.batch = batch
        self.ctx.finished = {}
        futures = {}
        for label in batch:
            process, inputs = self.backend.process_inputs(
                self.ctx.structures[label], self.inputs.engine_parameters, self.inputs.kpoints_mesh,
                self.inputs.hamiltonian.value, self._engine_inputs())
            inputs = {**inputs, "metadata": {**inputs.get("metadata", {}), "call_link_label": label}}
            if is_process_function(process):
                try:  # cannot be submitted: runs here, now (a failing one returns an exit code or raises)
                    _, node = process.run_get_node(**inputs)
                    self.ctx.finished[label] = node
                except Exception as exception:  # noqa: BLE001 - recorded as the member's failure
                    self.ctx.failures[label] = f"excepted: {type(exception).__name__}: {exception}"
            else:
                futures[f"member_{label}"] = self.submit(process, **inputs)
        if futures:
            return ToContext(**futures)
        return None

    def inspect_batch(self):
        limit = self.inputs.get("max_force_ev_per_angstrom")
        for label in self.ctx.batch:
            node = self.ctx.finished.get(label) or self.ctx.get(f"member_{label}")
            if node is None:
                self.report(f"member {label} failed: {self.ctx.failures.get(label, 'no process')}")
                continue
            try:
                nodes = self.backend.result_nodes(node)
                energy, forces = self.backend.energy_and_forces(nodes)
                if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                    raise MemberFailure("non-finite energy or forces")
                if limit is not None and np.abs(forces).max() > limit.value:
                    raise MemberFailure(f"max |force component| {np.abs(forces).max():.3f} eV/Å exceeds "
                                        f"max_force_ev_per_angstrom = {limit.value} eV/Å")
                if self.inputs.hamiltonian.value:
                    self.ctx.hamiltonians[label] = self.backend.hamiltonian_node(node)
            except MemberFailure as failure:
                self.ctx.failures[label] = f"{failure} (process pk {node.pk})"
                self.report(f"member {label} failed and is excluded: {self.ctx.failures[label]}")
                continue
            self.ctx.results[label] = nodes
        done = len(self.ctx.results) + len(self.ctx.failures)
        self.report(progress_message("dataset-members", done, len(self.ctx.structures),
                                     f"({len(self.ctx.failures)} failed)"))

    def collect(self):
        total = len(self.ctx.structures)
        failed = len(self.ctx.failures)
        if not self.ctx.results:
            self.out("failures", orm.Dict(self.ctx.failures).store())
            return self.exit_codes.ERROR_ALL_MEMBERS_FAILED.format(total=total)
        members = {}
        for label, nodes in self.ctx.results.items():
            members[f"{label}__structure"] = self.ctx.structures[label]
            for name, node in nodes.items():
                members[f"{label}__{name}"] = node
        result = collect_dataset(self.inputs.engine, orm.Dict(self.ctx.failures), **members)
        self.out("dataset", result["dataset"])
        self.out("failures", result["failures"])
        if self.ctx.hamiltonians:
            self.out("hamiltonians", dict(self.ctx.hamiltonians))
        allowed = self.inputs.max_failure_fraction.value
        if failed > allowed * total:
            return self.exit_codes.ERROR_TOO_MANY_FAILURES.format(failed=failed, total=total, allowed=allowed)
        return None
