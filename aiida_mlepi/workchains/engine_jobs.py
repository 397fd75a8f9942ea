"""Single points of a dataset engine outside the dataset: H(R) or forces of given structures, in batches.

The ground-truth check of :class:`~aiida_mlepi.workchains.pipeline.MlepiWorkChain` and
``force_provider='engine'`` of :class:`~aiida_mlepi.workchains.phonons.PhononWorkChain` run the engine's own
process per structure (``engine.process_inputs``: a calcfunction for the reference engine, a CalcJob for
GPAW, …; see :mod:`aiida_mlepi.engines.base`), at most ``max_concurrent`` at a time. Each batch is one outline
step returning the running processes to the context, so AiiDA's own checkpoints make an interrupted daemon
resume by waiting on the submitted processes instead of submitting them again. A process function (the
reference engine's ``reference_single_point``) cannot be submitted: it runs in the step, through
:func:`~aiida_mlepi.workchains.resume.resumable_call` (a rerun step reuses the calls that had finished).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiida import orm
from aiida.engine import ToContext, WorkChain
from aiida.engine.utils import is_process_function

from aiida_mlepi.engines.base import DatasetEngine, MemberFailure, UnknownEngineError, available_engines, get_engine

from .common import progress_message
from .resume import resumable_call


def resolve_engine(name: str) -> tuple[DatasetEngine | None, str | None]:
    """(the engine registered as ``name``, None), or (None, why not) naming the registered ones."""
    try:
        return get_engine(name), None
    except UnknownEngineError:
        return None, f"unknown engine {name!r}; registered: {', '.join(available_engines())}"


def define_engine_inputs(spec, concurrency_port: str, concurrency_default: int, uses: str) -> None:
    """The ports of a WorkChain that runs a dataset engine's own processes: ``engine`` (its parameters are the
    WorkChain's ``engine_parameters``), ``engine_inputs`` (code, options, …) and ``concurrency_port`` (processes
    at once). ``uses``: which providers use them, for the help texts."""
    spec.input("engine", valid_type=orm.Str, default=lambda: orm.Str("reference"),
               help=f"Dataset engine of {uses} (aiida_mlepi.dataset_engines); its parameters are `engine_parameters`.")
    spec.input_namespace("engine_inputs", dynamic=True, populate_defaults=False, required=False,
                         help="Further inputs of the engine's processes (GPAW: code, options).")
    spec.input(concurrency_port, valid_type=orm.Int, default=lambda: orm.Int(concurrency_default),
               help=f"Engine processes running at once ({uses}).")


@dataclass
class EngineJobs:
    """The engine and what every single point gets: ``parameters`` (engine parameters), ``kpoints_mesh``
    (Γ-centred mesh of the structures, which are all the same cell), ``engine_inputs`` (code, options, …)."""

    engine: str
    parameters: orm.Dict
    kpoints_mesh: orm.List
    engine_inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> DatasetEngine:
        return get_engine(self.engine)

    def submit_batch(self, process: WorkChain, structures: dict[str, orm.Data], pending: list[str],
                     hamiltonian: bool, prefix: str, max_concurrent: int) -> "Batch":
        """Launch the first ``max_concurrent`` of ``pending`` (labels of ``structures``) from ``process``; every
        process is linked as ``prefix + label``."""
        backend = self.backend
        batch = Batch(rest=pending[max_concurrent:])
        for label in pending[:max_concurrent]:
            cls, inputs = backend.process_inputs(structures[label], self.parameters, self.kpoints_mesh, hamiltonian,
                                                 dict(self.engine_inputs))
            key = f"{prefix}{label}"
            if is_process_function(cls):
                try:
                    _, batch.done[key] = resumable_call(process, cls, key, **inputs)
                except Exception as exception:  # noqa: BLE001 - reported as this structure's failure by the caller
                    batch.failed[key] = f"{cls.__name__} of {label} excepted: {type(exception).__name__}: {exception}"
            else:
                inputs.setdefault("metadata", {})["call_link_label"] = key
                batch.running[key] = process.submit(cls, **inputs)
        return batch


@dataclass
class Batch:
    """One batch of engine processes: ``running`` (to wait for, ``ToContext``), ``done`` (process functions that
    ran in the step), ``failed`` (key → why), ``rest`` (labels still pending)."""

    rest: list[str]
    running: dict[str, orm.ProcessNode] = field(default_factory=dict)
    done: dict[str, orm.ProcessNode] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def keys(self) -> list[str]:
        return sorted({**self.running, **self.done, **self.failed})


def collect_batch(process: WorkChain, backend: DatasetEngine, keys: list[str], failed: dict[str, str],
                  hamiltonian: bool, prefix: str) -> tuple[dict[str, orm.Data], str | None]:
    """The outputs (H(R) if ``hamiltonian``, else forces) of a finished batch from ``process.ctx``, by label (``prefix``
    removed), and the reason of the first failed process (None if none failed)."""
    out = {}
    for key in keys:
        if key in failed:
            return out, failed[key]
        node, reason = engine_result(backend, process.ctx[key], hamiltonian)
        if node is None:
            return out, reason
        out[key.removeprefix(prefix)] = node
    return out, None


def engine_result(backend: DatasetEngine, node: orm.ProcessNode, hamiltonian: bool) -> tuple[orm.Data | None, str]:
    """(H(R) if ``hamiltonian`` else the forces ArrayData, '') of a terminated engine process, or (None, why)."""
    try:
        return (backend.hamiltonian_node(node) if hamiltonian else backend.forces_node(node)), ""
    except MemberFailure as failure:
        return None, f"{node.process_label}<{node.pk}>: {failure}"


class EngineHamiltonianSteps:
    """Outline steps for a WorkChain that needs the engine's H(R) of several structures, in batches.

    Call :meth:`queue_engine_hamiltonians` (label → structure) in a step, then
    ``while_(cls.has_pending_engine_hamiltonians)(cls.submit_engine_hamiltonians, cls.inspect_engine_hamiltonians)``;
    the H(R) nodes end up in ``ctx.engine_hamiltonians`` (same labels). The WorkChain gives
    :meth:`engine_hamiltonian_jobs` (an :class:`EngineJobs`), :meth:`engine_max_concurrent` and the exit code
    ``ERROR_ENGINE_HAMILTONIAN_FAILED`` (formatted with ``message``). Each process is linked as
    ``ENGINE_HAMILTONIAN_PREFIX + label``.
    """

    ENGINE_HAMILTONIAN_PREFIX = "engine_h_"

    def engine_hamiltonian_jobs(self) -> EngineJobs:  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def engine_max_concurrent(self) -> int:  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def queue_engine_hamiltonians(self, structures: dict[str, orm.Data]) -> None:
        self.ctx.engine_structures = structures
        self.ctx.engine_pending = sorted(structures)
        self.ctx.engine_hamiltonians = {}

    def has_pending_engine_hamiltonians(self) -> bool:
        return bool(self.ctx.engine_pending)

    def submit_engine_hamiltonians(self):
        batch = self.engine_hamiltonian_jobs().submit_batch(
            self, self.ctx.engine_structures, self.ctx.engine_pending, hamiltonian=True,
            prefix=self.ENGINE_HAMILTONIAN_PREFIX, max_concurrent=self.engine_max_concurrent())
        self.ctx.engine_pending, self.ctx.engine_batch, self.ctx.engine_failed = batch.rest, batch.keys(), batch.failed
        for key, node in batch.done.items():
            self.ctx[key] = node
        return ToContext(**batch.running)

    def inspect_engine_hamiltonians(self):
        jobs = self.engine_hamiltonian_jobs()
        hamiltonians, failure = collect_batch(self, jobs.backend, self.ctx.engine_batch, self.ctx.engine_failed,
                                              hamiltonian=True, prefix=self.ENGINE_HAMILTONIAN_PREFIX)
        if failure is not None:
            return self.exit_codes.ERROR_ENGINE_HAMILTONIAN_FAILED.format(message=failure)
        self.ctx.engine_hamiltonians.update(hamiltonians)
        done = len(self.ctx.engine_structures) - len(self.ctx.engine_pending)
        self.report(progress_message("engine-hamiltonians", done, len(self.ctx.engine_structures),
                                     f"({jobs.engine})"))
        return None
