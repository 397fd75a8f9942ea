"""VASP forces and energies for the training set, through aiida-vasp (``pip install aiida-mlepi[vasp]``).

VASP input writing, output parsing and error detection are aiida-vasp's (5.1): this module only

* builds a ready :class:`~aiida_vasp.workchains.v2.vasp.VaspWorkChain` builder for one single-point
  run whose parser keeps the final forces and energies (:func:`get_vasp_builder`);
* converts the parsed ``misc`` Dict (final forces stored as nested lists) into
  ``(energy in eV, forces (N, 3) in eV/Å)`` (:func:`vasp_outputs_to_arrays`) — VASP and aiida-vasp
  already use eV and Å, so the conversion is a shape/finiteness-checked cast;
* classifies a finished ``VaspWorkChain``/``VaspCalculation`` node as ok or failed-with-reason
  (:func:`classify_vasp_node`), from the exit codes aiida-vasp documents:

  ===========================  ===========================  ==============================
  :class:`VaspOutcome`         ``VaspCalculation`` status   ``VaspWorkChain`` status
  ===========================  ===========================  ==============================
  ``ok``                       0                            0
  ``electronic_not_converged`` 701                          503 (505 inside a relaxation)
  ``did_not_finish``           700 (truncated run)          502
  ``ionic_not_converged``      702                          504
  ``output_missing``           350–352, 704, 1002, 1004,    500
                               1005 (missing/unparsable)
  ``vasp_error``               703 (critical VASP error)    501
  ``did_not_execute``          333                          —
  ``input_error``              —                            700–703 (POTCAR / INCAR setup)
  ``other``                    anything else (excepted, killed, max. iterations, …)
  ===========================  ===========================  ==============================

* is the dataset WorkChain's engine ``'vasp'`` (:class:`VaspDatasetEngine`, entry point
  ``vasp`` in the group ``aiida_mlepi.dataset_engines``).

aiida-vasp is imported lazily, so importing this module works without it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from aiida_mlepi.engines.base import DatasetEngine, MemberFailure

#: aiida-vasp entry points used here
VASP_WORKCHAIN_ENTRY_POINT = "vasp.vasp"
VASP_CALCULATION_ENTRY_POINT = "vasp.vasp"

#: aiida-vasp's VaspWorkChain handlers that *fix and relaunch* a failed run. In single-attempt mode
#: (``error_handlers=False``, the default) they are disabled, so a failure ends the work chain at once
#: with the exit code of aiida-vasp's ``check_*`` handlers (502/503/504) and the member is recorded
#: as failed; the ``check_*`` handlers and ``handler_vasp_critical_error`` (which never relaunches) stay on.
RELAUNCHING_HANDLERS = (
    "handler_calculation_did_not_run",
    "handler_unfinished_calc_ionic",
    "handler_unfinished_calc_ionic_alt",
    "handler_unfinished_calc_generic",
    "handler_unfinished_calc_generic_alt",
    "handler_electronic_conv",
    "handler_electronic_conv_alt",
    "handler_ionic_conv",
    "handler_ionic_conv_enhanced",
    "handler_always_attach_outputs",
)

#: default parser settings: keep the final forces, the stress and both the free energy (consistent
#: with the forces) and the σ→0 extrapolated energy in ``misc``
DEFAULT_PARSER_SETTINGS = {
    "include_quantity": ["forces", "stress", "total_energies"],
    "energy_type": ["energy_free", "energy_extrapolated"],
}

#: default energy used for training: VASP's free energy F (TOTEN), of which the forces are the gradient
DEFAULT_ENERGY_TYPE = "energy_free"


class VaspOutcome(str, enum.Enum):
    """What became of one VASP run, for the dataset's bookkeeping."""

    OK = "ok"
    ELECTRONIC_NOT_CONVERGED = "electronic_not_converged"
    DID_NOT_FINISH = "did_not_finish"
    IONIC_NOT_CONVERGED = "ionic_not_converged"
    OUTPUT_MISSING = "output_missing"
    VASP_ERROR = "vasp_error"
    DID_NOT_EXECUTE = "did_not_execute"
    INPUT_ERROR = "input_error"
    NOT_TERMINATED = "not_terminated"
    OTHER = "other"


#: ``VaspCalculation`` exit status → outcome
CALCULATION_EXIT_CODES: dict[int, VaspOutcome] = {
    0: VaspOutcome.OK,
    333: VaspOutcome.DID_NOT_EXECUTE,
    350: VaspOutcome.OUTPUT_MISSING,
    351: VaspOutcome.OUTPUT_MISSING,
    352: VaspOutcome.OUTPUT_MISSING,
    700: VaspOutcome.DID_NOT_FINISH,
    701: VaspOutcome.ELECTRONIC_NOT_CONVERGED,
    702: VaspOutcome.IONIC_NOT_CONVERGED,
    703: VaspOutcome.VASP_ERROR,
    704: VaspOutcome.OUTPUT_MISSING,
    1002: VaspOutcome.OUTPUT_MISSING,
    1004: VaspOutcome.OUTPUT_MISSING,
    1005: VaspOutcome.OUTPUT_MISSING,
}

#: ``VaspWorkChain`` exit status → outcome (codes of the work chain itself, not of its calculation)
WORKCHAIN_EXIT_CODES: dict[int, VaspOutcome] = {
    0: VaspOutcome.OK,
    500: VaspOutcome.OUTPUT_MISSING,
    501: VaspOutcome.VASP_ERROR,
    502: VaspOutcome.DID_NOT_FINISH,
    503: VaspOutcome.ELECTRONIC_NOT_CONVERGED,
    504: VaspOutcome.IONIC_NOT_CONVERGED,
    505: VaspOutcome.ELECTRONIC_NOT_CONVERGED,
    700: VaspOutcome.INPUT_ERROR,
    701: VaspOutcome.INPUT_ERROR,
    702: VaspOutcome.INPUT_ERROR,
    703: VaspOutcome.INPUT_ERROR,
}


class VaspConversionError(ValueError):
    """The parsed VASP outputs hold no usable energy/forces."""


@dataclass(frozen=True)
class VaspStatus:
    """Classification of a finished VASP process node (see :func:`classify_vasp_node`)."""

    outcome: VaspOutcome
    exit_status: int | None
    message: str = ""
    calculation_pk: int | None = None
    calculation_exit_status: int | None = None
    run_status: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is VaspOutcome.OK

    def as_dict(self) -> dict:
        """JSON-serialisable record (what the dataset stores for a member)."""
        return {
            "status": "ok" if self.ok else "failed",
            "reason": self.outcome.value,
            "exit_status": self.exit_status,
            "calculation_exit_status": self.calculation_exit_status,
            "calculation_pk": self.calculation_pk,
            "message": self.message,
        }


# ----------------------------------------------------------------------------------------------
# builder


def _as_structure(structure):
    from aiida import orm

    if isinstance(structure, orm.StructureData):
        return structure
    if hasattr(structure, "get_positions"):  # ase.Atoms
        return orm.StructureData(ase=structure)
    raise TypeError(f"expected a StructureData (or LayeredStructureData) or ase.Atoms, got {type(structure)!r}")


def _as_kpoints(kpoints, structure):
    """``KpointsData`` from a KpointsData, a Γ-centred mesh ``[n1, n2, n3]`` or a dict
    ``{'mesh': [...], 'offset': [...] (in mesh steps), 'scheme': 'gamma' | 'monkhorst-pack'}``.

    aiida-vasp always writes a Γ-centred KPOINTS with the offset as shift, so a Monkhorst–Pack mesh is
    expressed as the Γ-centred mesh shifted by ½ step along the even divisions (the same k points).
    """
    from aiida import orm

    if isinstance(kpoints, orm.KpointsData):
        return kpoints
    offset = [0.0, 0.0, 0.0]
    scheme = "gamma"
    if isinstance(kpoints, Mapping):
        offset = [float(x) for x in kpoints.get("offset", offset)]
        scheme = str(kpoints.get("scheme", scheme)).lower().replace("_", "-")
        kpoints = kpoints["mesh"]
    mesh = [int(n) for n in kpoints]
    if len(mesh) != 3 or min(mesh) < 1:
        raise ValueError(f"k-point mesh must be three positive integers, got {kpoints!r}")
    if scheme in ("monkhorst-pack", "monkhorst", "mp"):
        offset = [(o + (0.5 if n % 2 == 0 else 0.0)) % 1.0 for o, n in zip(offset, mesh)]
    elif scheme not in ("gamma", "gamma-centred", "gamma-centered"):
        raise ValueError(f"unknown k-point scheme {scheme!r}; use 'gamma' or 'monkhorst-pack'")
    node = orm.KpointsData()
    node.set_cell_from_structure(structure)
    node.set_kpoints_mesh(mesh, offset=offset)
    return node


def get_vasp_builder(
    structure,
    parameters: Mapping[str, Any],
    kpoints,
    potential_family: str,
    code,
    potential_mapping: Mapping[str, str] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    error_handlers: bool = False,
    max_iterations: int | None = None,
    clean_workdir: bool = True,
    label: str | None = None,
    description: str | None = None,
):
    """A ready ``VaspWorkChain`` builder for one single-point VASP run that keeps forces and energies.

    :param structure: ``StructureData``/``LayeredStructureData`` (or ``ase.Atoms``, stored as ``StructureData``).
    :param parameters: the INCAR tags (any case), e.g. ``{'ENCUT': 300, 'EDIFF': 1e-6, 'ISMEAR': 0, 'SIGMA': 0.05}``.
        aiida-vasp validates them; VASP tags only (``SYSTEM`` is allowed and passes through to the INCAR).
    :param kpoints: a ``KpointsData``, a Γ-centred mesh ``[n1, n2, n3]``,
        ``{'mesh': [...], 'offset': [...], 'scheme': 'gamma' | 'monkhorst-pack'}`` or a float: a k spacing
        in Å⁻¹ (aiida-vasp's ``kpoints_spacing``, in units of 2π).
    :param potential_family: label of an uploaded aiida-vasp POTCAR family (``aiida-vasp potcar uploadfamily``).
    :param code: an AiiDA code (or its label) for the ``vasp.vasp`` calculation plugin.
    :param potential_mapping: kind name → POTCAR name in the family (e.g. ``{'Mo': 'Mo_pv'}``); default: the
        element of each kind.
    :param options: ``metadata.options`` of the ``VaspCalculation`` (resources, wall time, ``withmpi``, …);
        default one MPI process on one machine, one hour.
    :param settings: extra aiida-vasp ``settings``; ``parser_settings`` are merged over
        :data:`DEFAULT_PARSER_SETTINGS`.
    :param error_handlers: ``False`` (default): one attempt; aiida-vasp's relaunching handlers are
        disabled, so an unconverged or truncated run ends the work chain with aiida-vasp's
        502/503/504 and the member is recorded as failed. ``True``: aiida-vasp's handlers try to fix
        and relaunch (``max_iterations`` attempts, default 3).
    """
    from aiida import orm
    from aiida.plugins import WorkflowFactory

    structure = _as_structure(structure)
    if isinstance(code, str):
        code = orm.load_code(code)
    workchain = WorkflowFactory(VASP_WORKCHAIN_ENTRY_POINT)
    builder = workchain.get_builder()
    builder.code = code
    builder.structure = structure
    builder.parameters = orm.Dict({"incar": {str(k).lower(): v for k, v in dict(parameters).items()}})
    if isinstance(kpoints, (float, orm.Float)) and not isinstance(kpoints, bool):
        builder.kpoints_spacing = orm.Float(float(kpoints))
    else:
        builder.kpoints = _as_kpoints(kpoints, structure)
    builder.potential_family = orm.Str(potential_family)
    if potential_mapping is None:
        potential_mapping = {kind.name: kind.symbol for kind in structure.kinds}
    missing = set(structure.get_kind_names()) - set(potential_mapping)
    if missing:
        raise ValueError(f"potential_mapping has no POTCAR for kinds {sorted(missing)}")
    builder.potential_mapping = orm.Dict(dict(potential_mapping))

    settings = dict(settings or {})
    parser_settings = {key: list(value) for key, value in DEFAULT_PARSER_SETTINGS.items()}
    for key, value in dict(settings.pop("parser_settings", {})).items():
        if key in ("include_quantity", "energy_type"):
            parser_settings[key] = sorted(set(parser_settings[key]) | set(value))
        else:
            parser_settings[key] = value
    settings["parser_settings"] = parser_settings
    builder.settings = orm.Dict(settings)

    calc_options = {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
        "max_wallclock_seconds": 3600,
    }
    calc_options.update(dict(options or {}))
    builder.calc.metadata.options = calc_options

    if error_handlers:
        builder.max_iterations = orm.Int(3 if max_iterations is None else int(max_iterations))
    else:
        # 2, not 1: aiida-core checks the iteration count *before* returning a handler's exit code, so with
        # 1 every failure would read 401 (max. iterations). No handler left on relaunches, so 2 means one run.
        builder.max_iterations = orm.Int(2 if max_iterations is None else int(max_iterations))
        builder.handler_overrides = orm.Dict({name: {"enabled": False} for name in RELAUNCHING_HANDLERS})
        builder.on_unhandled_failure = orm.Str("abort")
    builder.clean_workdir = orm.Bool(clean_workdir)
    if label is not None:
        builder.metadata.label = label
    if description is not None:
        builder.metadata.description = description
    return builder


# ----------------------------------------------------------------------------------------------
# conversion


def _misc_dict(outputs) -> dict:
    """The ``misc`` content from a Dict node, a plain dict, a process node or its ``outputs``."""
    from aiida import orm

    if isinstance(outputs, orm.ProcessNode):
        outputs = outputs.outputs
    if isinstance(outputs, orm.Dict):
        return outputs.get_dict()
    if isinstance(outputs, Mapping):
        if "misc" in outputs:
            return _misc_dict(outputs["misc"])
        return dict(outputs)
    if hasattr(outputs, "misc"):  # NodeLinksManager of a process node
        return _misc_dict(outputs.misc)
    raise VaspConversionError(f"cannot find aiida-vasp's misc output in {type(outputs)!r}")


def vasp_outputs_to_arrays(
    outputs, natoms: int | None = None, energy_type: str = DEFAULT_ENERGY_TYPE
) -> tuple[float, np.ndarray]:
    """``(energy in eV, forces (N, 3) in eV/Å)`` of the final ionic step, from aiida-vasp's ``misc``.

    :param outputs: the ``misc`` ``Dict`` (or its dict), or the finished ``VaspWorkChain``/``VaspCalculation``
        node or its ``outputs``.
    :param natoms: if given, the number of atoms the forces must have.
    :param energy_type: key of ``misc['total_energies']``: ``energy_free`` (default; F = TOTEN, consistent with
        the forces) or ``energy_extrapolated`` (σ → 0), if it was parsed.
    :raises VaspConversionError: forces or energy missing, of the wrong shape, or not finite.
    """
    misc = _misc_dict(outputs)
    if "forces" not in misc:
        raise VaspConversionError("misc holds no forces (parser_settings must include 'forces')")
    forces = np.asarray(misc["forces"], dtype=float)
    if forces.ndim != 2 or forces.shape[1] != 3:
        raise VaspConversionError(f"forces have shape {forces.shape}; expected (N, 3)")
    if natoms is not None and forces.shape[0] != int(natoms):
        raise VaspConversionError(f"forces for {forces.shape[0]} atoms; expected {natoms}")
    energies = misc.get("total_energies") or {}
    if energy_type not in energies:
        raise VaspConversionError(f"misc['total_energies'] has no {energy_type!r} (has {sorted(energies)})")
    energy = float(energies[energy_type])
    if not (math.isfinite(energy) and np.all(np.isfinite(forces))):
        raise VaspConversionError("energy or forces are not finite")
    return energy, forces


# ----------------------------------------------------------------------------------------------
# classification


def _last_calculation(node):
    """The node itself if it is a CalcJob, else the last CalcJob its work chain called."""
    from aiida import orm

    if isinstance(node, orm.CalcJobNode):
        return node
    calcs = [child for child in node.called_descendants if isinstance(child, orm.CalcJobNode)]
    return max(calcs, key=lambda child: (child.ctime, child.pk)) if calcs else None


def classify_vasp_node(node) -> VaspStatus:
    """Classify a ``VaspWorkChain`` or ``VaspCalculation`` node as ok or failed-with-reason.

    ``ok`` needs the process to be finished with status 0 *and* usable forces/energy in ``misc``.
    Failures are named from the work chain's own exit code, refined by the exit code of its last
    ``VaspCalculation`` (see the table in the module docstring).
    """
    from aiida import orm

    if not isinstance(node, orm.ProcessNode):
        raise TypeError(f"expected a process node, got {type(node)!r}")
    calc = _last_calculation(node)
    calc_status = calc.exit_status if calc is not None else None
    run_status = {}
    if calc is not None and "misc" in calc.outputs:
        run_status = dict(calc.outputs.misc.get("run_status", {}) or {})
    common = dict(
        exit_status=node.exit_status,
        calculation_pk=calc.pk if calc is not None else None,
        calculation_exit_status=calc_status,
        run_status=run_status,
    )

    if not node.is_terminated:
        return VaspStatus(VaspOutcome.NOT_TERMINATED, message=f"process state {node.process_state}", **common)
    if node.is_excepted or node.is_killed:
        return VaspStatus(VaspOutcome.OTHER, message=f"process {node.process_state.value}", **common)
    if node.is_finished_ok:
        try:
            vasp_outputs_to_arrays(node)
        except VaspConversionError as error:
            return VaspStatus(VaspOutcome.OUTPUT_MISSING, message=str(error), **common)
        return VaspStatus(VaspOutcome.OK, **common)

    # failed: the calculation's own code names the VASP problem most precisely
    outcome = CALCULATION_EXIT_CODES.get(calc_status) if calc_status else None
    if outcome is None:
        table = CALCULATION_EXIT_CODES if isinstance(node, orm.CalcJobNode) else WORKCHAIN_EXIT_CODES
        outcome = table.get(node.exit_status)
    if outcome is None and run_status:
        if run_status.get("finished") is False:
            outcome = VaspOutcome.DID_NOT_FINISH
        elif run_status.get("electronic_converged") is False:
            outcome = VaspOutcome.ELECTRONIC_NOT_CONVERGED
    if outcome is None or outcome is VaspOutcome.OK:
        outcome = VaspOutcome.OTHER
    message = node.exit_message or (calc.exit_message if calc is not None else "") or ""
    return VaspStatus(outcome, message=message, **common)


# ----------------------------------------------------------------------------------------------
# dataset WorkChain engine 'vasp'


class VaspDatasetEngine(DatasetEngine):
    """``engine='vasp'`` of the dataset WorkChain: one aiida-vasp ``VaspWorkChain`` per member.

    ``parameters`` are the INCAR tags, ``kpoints_mesh`` the Monkhorst–Pack mesh; ``engine_inputs`` (JSON)
    hold the rest of :func:`get_vasp_builder`'s keywords: ``code`` (label, pk or UUID) and
    ``potential_family`` (required), ``potential_mapping``, ``options``, ``settings``, ``error_handlers``,
    ``max_iterations``, ``clean_workdir``. The energy is VASP's free energy (force-consistent), in eV.
    """

    name = "vasp"
    provides_hamiltonian = False
    ENGINE_KEYS = ("code", "potential_family", "potential_mapping", "options", "settings", "error_handlers",
                   "max_iterations", "clean_workdir")

    @staticmethod
    def plain_engine_inputs(engine_inputs) -> dict[str, Any]:
        """The WorkChain's ``engine_inputs`` (AiiDA nodes: Code, Str, Dict, Bool, Int) as keyword arguments."""
        from aiida import orm

        plain = {}
        for key, value in dict(engine_inputs or {}).items():
            if isinstance(value, orm.Dict):
                value = value.get_dict()
            elif isinstance(value, orm.List):
                value = value.get_list()
            elif isinstance(value, (orm.Str, orm.Bool, orm.Int, orm.Float)):
                value = value.value
            plain[key] = value
        return plain

    def validate(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs) -> str | None:
        try:
            from aiida.plugins import WorkflowFactory

            WorkflowFactory(VASP_WORKCHAIN_ENTRY_POINT)
        except Exception:  # noqa: BLE001 - any import/entry-point problem means aiida-vasp is unusable
            return "the 'vasp' engine needs aiida-vasp: pip install 'aiida-mlepi[vasp]'"
        engine_inputs = self.plain_engine_inputs(engine_inputs)
        unknown = sorted(set(engine_inputs) - set(self.ENGINE_KEYS))
        if unknown:
            return f"unknown 'vasp' engine_inputs {unknown}; allowed: {list(self.ENGINE_KEYS)}"
        missing = [key for key in ("code", "potential_family") if not engine_inputs.get(key)]
        if missing:
            return f"the 'vasp' engine needs engine_inputs {missing}"
        from aiida import orm
        from aiida.common.exceptions import NotExistent

        code = engine_inputs["code"]
        if not isinstance(code, orm.AbstractCode):
            try:
                orm.load_code(code)
            except (NotExistent, ValueError) as exception:
                return f"cannot load the VASP code {code!r}: {exception}"
        mesh = list(kpoints_mesh)
        if len(mesh) != 3 or any(int(n) < 1 for n in mesh):
            return f"kpoints_mesh must be three positive integers, got {mesh}"
        if not isinstance(parameters, Mapping):
            return "parameters must be a dict of INCAR tags for the 'vasp' engine"
        return super().validate(structure, parameters, kpoints_mesh, hamiltonian, engine_inputs)

    def process_inputs(self, structure, parameters, kpoints_mesh, hamiltonian, engine_inputs):
        """``(VaspWorkChain, inputs)`` for one member; INCAR ``SYSTEM`` defaults to ``<material> sample <i>``."""
        from aiida import orm

        if hamiltonian:
            raise MemberFailure("engine 'vasp' does not provide H(R)")
        params = parameters.get_dict() if isinstance(parameters, orm.Dict) else dict(parameters)
        if not any(str(key).upper() == "SYSTEM" for key in params):
            attributes = structure.base.attributes
            title = attributes.get("material", None) or "mlepi"
            if attributes.get("sample_index", None) is not None:
                title += f" sample {attributes.get('sample_index')}"
            params["SYSTEM"] = title
        mesh = kpoints_mesh.get_list() if isinstance(kpoints_mesh, orm.List) else list(kpoints_mesh)
        builder = get_vasp_builder(structure, params, mesh, **self.plain_engine_inputs(engine_inputs))
        return builder.process_class, builder._inputs(prune=True)  # noqa: SLF001 - the builder's nested inputs

    def result_nodes(self, node):
        status = classify_vasp_node(node)
        if not status.ok:
            raise MemberFailure(failure_message(status))
        return {"misc": node.outputs.misc}

    @staticmethod
    def energy_and_forces(nodes) -> tuple[float, np.ndarray]:
        return vasp_outputs_to_arrays(nodes["misc"])


def failure_message(status: VaspStatus) -> str:
    """One line for the dataset's failure record: ``<reason>: exit status … (calculation …)``."""
    text = f"{status.outcome.value}: VaspWorkChain exit status {status.exit_status}"
    if status.calculation_exit_status is not None:
        text += f", VaspCalculation<{status.calculation_pk}> exit status {status.calculation_exit_status}"
    if status.message:
        text += f" ({status.message})"
    return text


__all__ = [
    "CALCULATION_EXIT_CODES",
    "DEFAULT_PARSER_SETTINGS",
    "RELAUNCHING_HANDLERS",
    "VaspConversionError",
    "VaspDatasetEngine",
    "VaspOutcome",
    "VaspStatus",
    "WORKCHAIN_EXIT_CODES",
    "classify_vasp_node",
    "failure_message",
    "get_vasp_builder",
    "vasp_outputs_to_arrays",
]
