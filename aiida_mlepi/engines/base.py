"""The engine abstraction of the dataset WorkChain: one labelling "engine" per member calculation.

:class:`~aiida_mlepi.workchains.dataset.DatasetWorkChain` labels every perturbed supercell with one
*engine* (its ``engine`` input, a name such as ``'reference'``, ``'gpaw'``, ``'vasp'``,
``'openmx'``). An engine is a :class:`DatasetEngine` subclass registered under that name in the
entry-point group :data:`ENTRY_POINT_GROUP` (``aiida_mlepi.dataset_engines``) of ``pyproject.toml``::

    [project.entry-points."aiida_mlepi.dataset_engines"]
    "reference" = "aiida_mlepi.engines.reference:ReferenceDatasetEngine"
    "gpaw" = "aiida_mlepi.engines.gpaw:GpawDatasetEngine"

(re-install with ``pip install -e .`` after adding one). Per member the WorkChain does:

1. ``engine.validate(...)`` once, before anything runs (message → exit code ``ERROR_INVALID_ENGINE_INPUT``);
2. ``process, inputs = engine.process_inputs(structure, parameters, kpoints_mesh, hamiltonian, engine_inputs)``
   and ``self.submit(process, **inputs)`` — any AiiDA process: a calcfunction, a CalcJob, a WorkChain;
3. when it has terminated: ``engine.result_nodes(node)`` → the *stored* output nodes that hold the
   energy and forces (``{'energy': ..., 'forces': ...}`` or any names the engine likes; raise
   :class:`MemberFailure` with a reason if the process failed or lacks them), and, if a Hamiltonian
   was asked for, ``engine.hamiltonian_node(node)`` → a stored
   :class:`~aiida_mlepi.data.hamiltonian.HamiltonianData` (also raising :class:`MemberFailure`);
4. the dataset is assembled by the calcfunction
   :func:`~aiida_mlepi.workchains.dataset.collect_dataset`, which calls
   ``engine.energy_and_forces(nodes)`` → ``(energy in eV, forces (N, 3) in eV/Å)`` on the nodes of
   step 3, so the conversion from the engine's units/layout is part of the provenance.

Units the engine must deliver: total energy in eV (the free energy whose derivative the forces
are, i.e. force-consistent), forces in eV/Å, ordered like the sites of the input structure;
H(R) in eV and S(R) in the project's OpenMX orbital order (see :mod:`aiida_mlepi.core.hamiltonian`).

The same interface serves the ground-truth check of :class:`~aiida_mlepi.workchains.pipeline.MlepiWorkChain`
and ``force_provider='engine'`` of :class:`~aiida_mlepi.workchains.phonons.PhononWorkChain`: the engine's
H(R) of the checked samples and of the static supercell (``process_inputs(..., hamiltonian=True, ...)`` →
:meth:`DatasetEngine.hamiltonian_node`) and its forces of the displaced production supercells
(``hamiltonian=False`` → :meth:`DatasetEngine.forces_node`, an ArrayData with ``forces`` (N, 3) eV/Å and
``energy`` (1,) eV), each run through the engine's own process (a CalcJob for GPAW).
:meth:`DatasetEngine.unsupported_elements` says which elements the engine cannot treat.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from aiida import orm

from aiida_mlepi.data.layered_structure import LayeredStructureData

#: entry-point group of the dataset engines
ENTRY_POINT_GROUP = "aiida_mlepi.dataset_engines"


class MemberFailure(RuntimeError):
    """One member calculation failed or its outputs are unusable; the message says why."""


class DatasetEngine(ABC):
    """How one engine labels one configuration: which process to run and how to read its outputs."""

    #: the name under which the engine is registered (the WorkChain's ``engine`` input)
    name: ClassVar[str] = ""
    #: whether the engine can return H(R), S(R) (``hamiltonian`` input of the WorkChain)
    provides_hamiltonian: ClassVar[bool] = False

    def validate(self, structure: LayeredStructureData, parameters: dict, kpoints_mesh: list[int],
                 hamiltonian: bool, engine_inputs: dict[str, Any]) -> str | None:
        """A reason why these inputs cannot work, or ``None``. Called once, before any member runs."""
        if hamiltonian and not self.provides_hamiltonian:
            return f"engine {self.name!r} does not provide H(R)"
        return None

    @abstractmethod
    def process_inputs(self, structure: LayeredStructureData, parameters: orm.Dict, kpoints_mesh: orm.List,
                       hamiltonian: bool, engine_inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The process (class or process function) to submit for ``structure`` and its inputs."""

    @abstractmethod
    def result_nodes(self, node: orm.ProcessNode) -> dict[str, orm.Data]:
        """Stored output nodes of a terminated member process holding energy and forces.

        Raises :class:`MemberFailure` (with a human-readable reason) if the process did not finish
        OK or an output is missing. The keys must be valid link labels (letters, digits, ``_``).
        """

    @staticmethod
    @abstractmethod
    def energy_and_forces(nodes: dict[str, orm.Data]) -> tuple[float, np.ndarray]:
        """(energy in eV, forces (N, 3) in eV/Å) from the nodes returned by :meth:`result_nodes`."""

    def hamiltonian_node(self, node: orm.ProcessNode) -> orm.Data:
        """The stored HamiltonianData output of a member process (only if ``provides_hamiltonian``)."""
        raise MemberFailure(f"engine {self.name!r} does not provide H(R)")

    #: whether the engine's H(R) is in an orthogonal basis (S(R) = identity), the only kind HedgeNet-Electron
    #: learns and predicts (an LCAO basis such as GPAW's has S(R) ≠ 1, see core.ml.hedgenet_electron)
    orthogonal_basis: ClassVar[bool] = False

    #: whether :meth:`forces_node` gives the forces as a stored ArrayData (finite-difference phonons)
    provides_forces_node: ClassVar[bool] = False

    def forces_node(self, node: orm.ProcessNode) -> orm.ArrayData:
        """Stored ArrayData of a terminated process with arrays ``forces`` (N, 3) eV/Å and ``energy`` (1,) eV
        (the layout of :func:`aiida_mlepi.engines.reference.energy_forces_node`), for the phonons of
        ``force_provider='engine'``. Raises :class:`MemberFailure` if the process failed."""
        raise MemberFailure(f"engine {self.name!r} gives no forces node for phonons")

    def unsupported_elements(self, symbols: set[str]) -> list[str]:
        """Chemical symbols among ``symbols`` the engine has no parameters for (sorted; none by default)."""
        return []


def failure_reason(node: orm.ProcessNode) -> str | None:
    """Why ``node`` did not finish OK (``None`` if it did): exit status and message, or 'excepted'."""
    if node.is_finished_ok:
        return None
    if node.is_excepted:
        exception = (node.exception or "").strip().splitlines()
        return f"excepted: {exception[-1] if exception else 'unknown exception'}"
    if node.is_killed:
        return "killed"
    if node.is_finished:
        return f"exit status {node.exit_status}: {node.exit_message or ''}".strip()
    return f"process state {node.process_state}"


def require_output(node: orm.ProcessNode, label: str) -> orm.Data:
    """Output ``label`` of ``node``; :class:`MemberFailure` if the process failed or lacks it."""
    reason = failure_reason(node)
    if reason is not None:
        raise MemberFailure(reason)
    try:
        return node.outputs[label]
    except (KeyError, AttributeError):
        raise MemberFailure(f"output {label!r} missing") from None


class UnknownEngineError(ValueError):
    """No engine is registered under the requested name."""


def available_engines() -> list[str]:
    """Names of the registered dataset engines (sorted)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def get_engine(name: str) -> DatasetEngine:
    """An instance of the engine registered as ``name`` in the entry-point group :data:`ENTRY_POINT_GROUP`."""
    from importlib.metadata import entry_points

    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise UnknownEngineError(f"no dataset engine {name!r}; registered: {available_engines()}")
    engine = matches[0].load()()
    if not isinstance(engine, DatasetEngine):
        raise UnknownEngineError(f"entry point {name!r} is not a DatasetEngine")
    return engine
