"""The screening controller: one process per run of a screening, at most ``max_concurrent`` in flight.

Built on ``aiida-submission-controller``'s :class:`FromGroupSubmissionController`. Three groups per
screening label ``G``:

* ``G/inputs``: one :class:`LayeredStructureData` per run (the catalogue entry built), with the run
  description (extra ``mlepi_screening_run``) and its key (extra ``mlepi_screening_key``);
* ``G``: the submitted processes, one per key (extras: key, ``mlepi_screening_attempt``,
  ``mlepi_screening_failure`` once failed);
* ``G/failed``: failed attempts moved out of ``G`` so that the run is submitted once more.

Idempotence: a key with a process in ``G`` is never submitted again (finished, running or finally failed).
A process is labelled ``G|key`` when it is created, so one submitted just before a crash (before it was
added to ``G``) is found by its label and adopted instead of being submitted twice. After a daemon restart
the running processes resume from their checkpoints (see :mod:`aiida_mlepi.workchains.resume`). On a
production profile RabbitMQ keeps the queued tasks across a daemon stop (durable queues); should a task be
lost anyway (measured on AiiDA *test* profiles, whose queues are auto-deleted when the daemon stops),
:meth:`ScreeningController.record_lost_tasks` (daemon stopped) finds this screening's active processes
without a task and :meth:`ScreeningController.revive_lost_tasks` (daemon running) re-sends them.

Retries: a failed run (excepted, killed, or an exit status ≥ 400: a stage failed) is moved to ``G/failed``
with its reason and submitted once more (``max_attempts = 2``); an input error (exit status < 400, e.g.
300–302) fails the same way every time and is not retried.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida_submission_controller import FromGroupSubmissionController

from aiida_mlepi.core.screening import ScreeningPlan
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.workchains.common import child_failure

from .inputs import build_process, process_label

EXTRA_KEY = "mlepi_screening_key"
EXTRA_RUN = "mlepi_screening_run"
EXTRA_ATTEMPT = "mlepi_screening_attempt"
EXTRA_FAILURE = "mlepi_screening_failure"
EXTRA_LOST = "mlepi_screening_lost_tasks"  #: on the group G: pks of processes whose broker task a stop lost
#: exit statuses below this are input errors (the same inputs fail again): not retried
RETRYABLE_EXIT_STATUS = 400
MAX_ATTEMPTS = 2


def inputs_group_label(label: str) -> str:
    return f"{label}/inputs"


def failed_group_label(label: str) -> str:
    return f"{label}/failed"


def _group(label: str) -> orm.Group:
    group, _ = orm.Group.collection.get_or_create(label=label)
    return group


def prepare_screening(plan: ScreeningPlan, label: str) -> list[str]:
    """Store the structure of each run of ``plan`` not yet in ``label/inputs`` (idempotent); the runs' keys.

    Creates the groups ``label``, ``label/inputs`` and ``label/failed`` where missing."""
    _group(label)
    _group(failed_group_label(label))
    inputs = _group(inputs_group_label(label))
    existing = set(orm.QueryBuilder().append(orm.Group, filters={"id": inputs.pk}, tag="g").append(
        orm.Node, with_group="g", project=f"extras.{EXTRA_KEY}").all(flat=True))
    for run in plan.runs:
        if run.key in existing:
            continue
        structure = LayeredStructureData.from_ase(run.entry.build(), material=run.name)
        structure.label = run.name
        structure.description = f"{run.entry.description} (catalogue entry {run.entry.name!r}, {run.entry.origin})"
        structure.store()
        structure.base.extras.set_many({EXTRA_KEY: run.key, EXTRA_RUN: run.as_dict()})
        inputs.add_nodes(structure)
    return [run.key for run in plan.runs]


def is_retryable(node: orm.ProcessNode) -> bool:
    """Whether a terminated, failed process may succeed when run again (not an input error)."""
    if node.is_excepted or node.is_killed:
        return True
    return node.is_finished and (node.exit_status or 0) >= RETRYABLE_EXIT_STATUS


class ScreeningController(FromGroupSubmissionController):
    """Submits one process per run in ``parent_group_label`` (``G/inputs``) into ``group_label`` (``G``)."""

    unique_extra_keys: Optional[tuple] = (EXTRA_KEY,)
    max_attempts: int = MAX_ATTEMPTS
    code_pk: Optional[int] = None  #: Python code of the pipeline's CalcJobs (default: this interpreter)

    @classmethod
    def for_screening(cls, label: str, max_concurrent: int, keys: Iterable[str] | None = None,
                      **kwargs: Any) -> "ScreeningController":
        """The controller of screening ``label`` (its groups must exist: :func:`prepare_screening`);
        ``keys`` restricts it to those runs (default: every run of the screening)."""
        filters = None if keys is None else {f"extras.{EXTRA_KEY}": {"in": list(keys)}}
        return cls(group_label=label, parent_group_label=inputs_group_label(label), max_concurrent=max_concurrent,
                   filters=filters, order_by={orm.Node: {"id": "asc"}}, **kwargs)

    @property
    def failed_group(self) -> orm.Group:
        return orm.Group.collection.get(label=failed_group_label(self.group_label))

    # ------------------------------------------------------------------ the library's hooks
    def get_inputs_and_processclass_from_extras(self, extras_values):
        structure = self.get_parent_node_from_extras(extras_values)
        code = orm.load_code(self.code_pk) if self.code_pk is not None else None
        return build_process(structure.base.extras.get(EXTRA_RUN), structure, self.group_label, code)

    def submit_new_batch(self, dry_run: bool = False, sort: bool = True, verbose: bool = False, sleep: int = 0):
        """Adopt processes a crash left outside the group, retire failed attempts that may be retried, then
        submit as many missing runs as there are free slots (the library's batch submission)."""
        if not dry_run:
            self.adopt_orphans()
            self.retire_failures()
        submitted = super().submit_new_batch(dry_run=dry_run, sort=sort, verbose=verbose, sleep=sleep)
        if not dry_run:
            for (key,), node in submitted.items():
                node.base.extras.set(EXTRA_ATTEMPT, self.failed_attempts(key) + 1)
        return submitted

    # ------------------------------------------------------------------ crash safety and retries
    def failed_attempts(self, key: str) -> int:
        """Attempts of run ``key`` that failed and were retired to ``G/failed``."""
        return orm.QueryBuilder().append(orm.Group, filters={"label": failed_group_label(self.group_label)},
                                         tag="g").append(orm.ProcessNode, with_group="g",
                                                         filters={f"extras.{EXTRA_KEY}": key}).count()

    def adopt_orphans(self) -> list[orm.ProcessNode]:
        """Processes labelled with a run key of this screening but in neither ``G`` nor ``G/failed`` (submitted
        just before the controller stopped): added to ``G`` with their extras, so they are not submitted again."""
        labels = {process_label(self.group_label, extras[0]): extras[0] for extras in self.get_all_extras_to_submit()}
        known = set(self.get_all_submitted_pks().values())
        qb = orm.QueryBuilder().append(orm.Group, filters={"label": failed_group_label(self.group_label)}, tag="g")
        known |= set(qb.append(orm.ProcessNode, with_group="g", project="id").all(flat=True))
        candidates = orm.QueryBuilder().append(orm.ProcessNode, filters={"label": {"in": sorted(labels)}},
                                               project="*").all(flat=True) if labels else []
        adopted = []
        for node in sorted(candidates, key=lambda n: n.pk):
            if node.pk in known or node.caller is not None:
                continue
            key = labels[node.label]
            node.base.extras.set_many({EXTRA_KEY: key, EXTRA_ATTEMPT: self.failed_attempts(key) + 1})
            self.group.add_nodes(node)
            known.add(node.pk)
            adopted.append(node)
        return adopted

    def active_processes(self) -> list[orm.ProcessNode]:
        """Unterminated processes of this screening that run from a broker task: the runs in ``G`` and the
        WorkChains and CalcJobs they called (process functions run inside their caller and have no task)."""
        active = []
        for node in self.get_all_submitted_processes(only_active=True).values():
            for process in [node, *node.called_descendants]:
                if not process.is_terminated and not isinstance(process, (orm.CalcFunctionNode,
                                                                           orm.WorkFunctionNode)):
                    active.append(process)
        return active

    def record_lost_tasks(self) -> list[int]:
        """While the daemon is stopped: the active processes of this screening whose broker task is gone, recorded
        on the group (extra ``mlepi_screening_lost_tasks``) for :meth:`revive_lost_tasks`; their pks.

        Detection needs the daemon stopped: a worker holds the tasks of the processes it runs, so they are not
        in the queue then. Only RabbitMQ keeps its queue without the daemon (the ZeroMQ broker lives in it)."""
        from aiida.engine.daemon.client import get_daemon_client
        from aiida.engine.processes.control import get_process_tasks
        from aiida.manage import get_manager

        if get_daemon_client().is_daemon_running:
            raise RuntimeError("lost broker tasks can only be found with the daemon stopped")
        manager = get_manager()
        if manager.get_profile().process_control_backend != "core.rabbitmq":
            return []
        active = self.active_processes()
        tasks = set(get_process_tasks(manager.get_broker())) if active else set()
        lost = sorted({p.pk for p in active if p.pk not in tasks} | set(self.group.base.extras.get(EXTRA_LOST, [])))
        self.group.base.extras.set(EXTRA_LOST, lost)
        return lost

    def revive_lost_tasks(self) -> list[int]:
        """With the daemon running: re-send the tasks recorded by :meth:`record_lost_tasks` (aiida's
        ``revive_processes``) for the processes still active, and clear the record; the pks revived."""
        from aiida.engine.processes.control import revive_processes

        lost = self.group.base.extras.get(EXTRA_LOST, [])
        if not lost:
            return []
        nodes = [orm.load_node(pk) for pk in lost]
        nodes = [node for node in nodes if not node.is_terminated]
        if nodes:
            revive_processes(nodes)
        self.group.base.extras.delete(EXTRA_LOST)
        return [node.pk for node in nodes]

    def retire_failures(self) -> list[orm.ProcessNode]:
        """Record the reason of every failed process in ``G``; move those that may be retried (and have attempts
        left) to ``G/failed``, so that the next batch submits them again. Returns the moved processes."""
        moved = []
        for (key,), node in self.get_all_submitted_processes().items():
            if not node.is_terminated or node.is_finished_ok:
                continue
            if EXTRA_FAILURE not in node.base.extras.keys():
                node.base.extras.set(EXTRA_FAILURE, child_failure(node))
            attempt = node.base.extras.get(EXTRA_ATTEMPT, 1)
            if is_retryable(node) and attempt < self.max_attempts:
                self.failed_group.add_nodes(node)
                self.group.remove_nodes(node)
                moved.append(node)
        return moved


def load_controller(label: str, max_concurrent: int = 1, **kwargs: Any) -> ScreeningController:
    """The controller of an existing screening ``label`` (a clear error if there is none)."""
    try:
        orm.Group.collection.get(label=inputs_group_label(label))
    except NotExistent:
        raise ValueError(f"no screening {label!r}: its group {inputs_group_label(label)!r} does not exist "
                         "(start one with `aiida-mlepi screen FILE --group LABEL`)") from None
    return ScreeningController.for_screening(label, max_concurrent, **kwargs)
