"""Interrupted runs resume without duplicate work and without orphan process nodes.

Unit tests of :mod:`aiida_mlepi.workchains.resume` (a WorkChain step run twice, a fabricated orphan of
an interrupted attempt), and the real thing: ``verdi daemon stop`` in the middle of the observable stage
on PostgreSQL + RabbitMQ, then a restart (``services``; skips where they are absent).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState, WorkChain, calcfunction, run_get_node

from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.workchains.epi_loop import DEFAULT_OBSERVABLE_SETTINGS
from aiida_mlepi.workchains.observable import ObservableWorkChain
from aiida_mlepi.workchains.resume import calcfunction_outputs, labelled_calls, resumable_call

from .test_daemon_production import daemon_client, postgres_database, production_profile  # noqa: F401 (fixtures)

ACTIVE_STATES = ("created", "waiting", "running")


@calcfunction
def add_one(x: orm.Int) -> orm.Int:
    return orm.Int(x.value + 1)


@calcfunction
def split_digits(x: orm.Int) -> dict:
    return {"digits": {"tens": orm.Int(x.value // 10), "ones": orm.Int(x.value % 10)}}


class RepeatedStepWorkChain(WorkChain):
    """Plants the orphan an interrupted attempt leaves, then runs the same step twice (a rerun)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("x", valid_type=orm.Int)
        spec.outline(cls.plant_orphan, cls.add, cls.add, cls.finish)
        spec.output("first", valid_type=orm.Int)
        spec.output("second", valid_type=orm.Int)
        spec.output("orphan", valid_type=orm.Int, help="pk of the planted orphan (as an Int)")

    def plant_orphan(self):
        orphan = orm.CalcFunctionNode()
        orphan.set_process_state(ProcessState.RUNNING)
        orphan.base.links.add_incoming(self.node, LinkType.CALL_CALC, "plus_one")
        orphan.store()
        self.ctx.orphan = orphan.pk
        self.ctx.results = []

    def add(self):
        result, _ = resumable_call(self, add_one, "plus_one", self.inputs.x)
        self.ctx.results.append(result)

    def finish(self):
        self.out("first", self.ctx.results[0])
        self.out("second", self.ctx.results[1])
        self.out("orphan", orm.Int(self.ctx.orphan).store())


def test_rerun_step_reuses_the_finished_call_and_retires_the_orphan(aiida_profile):
    _, node = run_get_node(RepeatedStepWorkChain, x=orm.Int(41))
    assert node.is_finished_ok
    assert node.outputs.first.value == 42
    # the second run of the step computed nothing: the same output node, one finished add_one call
    assert node.outputs.second.uuid == node.outputs.first.uuid
    calls = labelled_calls(node, "plus_one")
    orphan = orm.load_node(node.outputs.orphan.value)
    assert [c.pk for c in calls] == sorted([orphan.pk, node.outputs.first.creator.pk])
    assert orphan.process_state == ProcessState.KILLED and orphan.is_sealed
    assert "interrupted" in orphan.process_status and f"<{node.pk}>" in orphan.process_status
    assert all(c.process_state.value not in ACTIVE_STATES for c in node.called_descendants)
    reports = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert sum("reusing" in message for message in reports) == 1
    assert sum("marked killed" in message for message in reports) == 1


def test_outputs_of_a_finished_call_are_what_the_call_returned(aiida_profile):
    nested, nested_node = split_digits.run_get_node(orm.Int(47))
    rebuilt = calcfunction_outputs(nested_node)
    assert set(rebuilt) == {"digits"} and set(rebuilt["digits"]) == {"tens", "ones"}
    assert (rebuilt["digits"]["tens"].value, rebuilt["digits"]["ones"].value) == (4, 7)
    assert rebuilt["digits"]["tens"].uuid == nested["digits"]["tens"].uuid
    single, single_node = add_one.run_get_node(orm.Int(1))
    assert calcfunction_outputs(single_node).uuid == single.uuid  # a single output: the node itself


def displaced_samples(structure: LayeredStructureData, count: int, seed: int = 5) -> dict[str, LayeredStructureData]:
    """``count`` copies of ``structure`` with random 0.03 Å displacements, labelled as the sampler does."""
    rng = np.random.default_rng(seed)
    samples = {}
    for n in range(count):
        atoms = structure.get_ase()
        atoms.positions += rng.normal(0.0, 0.03, atoms.positions.shape)
        samples[f"sample_{n:04d}"] = LayeredStructureData.from_ase(atoms, material=structure.material)
    return samples


#: per-sample calcfunction and call-label prefix of each estimator
PER_SAMPLE_CALL = {"chord": ("compute_fermi_velocity", "fermi_velocity"),
                   "spectral": ("compute_unfolded_spectrum", "unfolded_spectrum")}


def observable_inputs(structure: LayeredStructureData, count: int, estimator: str = "chord") -> dict:
    """ObservableWorkChain inputs on ``count`` displaced unit cells; the spectral estimator gets the unfolded
    static lattice (the undisplaced unit cell, engine H(R)) it needs."""
    settings = orm.Dict({**DEFAULT_OBSERVABLE_SETTINGS, "primitive_cell": structure.cell, "estimator": estimator})
    inputs = dict(structures=displaced_samples(structure, count), temperature_k=orm.Float(300.0), settings=settings)
    if estimator == "spectral":
        from aiida_mlepi.calculations.engine import compute_engine_hamiltonian
        from aiida_mlepi.calculations.spectral import compute_unfolded_spectrum

        inputs["static_spectrum"] = compute_unfolded_spectrum(compute_engine_hamiltonian(structure, orm.Dict({})),
                                                              settings)
    return inputs


def hamiltonians_and_velocities(node: orm.WorkflowNode, estimator: str = "chord") -> tuple[int, int]:
    """(HamiltonianData nodes, per-sample observable nodes) created by the calcfunctions ``node`` called."""
    calls = node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all_nodes()
    created = [(call.process_label, out) for call in calls
               for out in call.base.links.get_outgoing(link_type=LinkType.CREATE).all_nodes()]
    return (sum(isinstance(out, HamiltonianData) for _, out in created),
            sum(label == PER_SAMPLE_CALL[estimator][0] for label, _ in created))


@pytest.mark.parametrize("estimator", ["chord", "spectral"])
def test_observable_calls_are_labelled_by_sample(relaxed_ab_bilayer, estimator):
    _, node = run_get_node(ObservableWorkChain, **observable_inputs(relaxed_ab_bilayer, 2, estimator))
    assert node.is_finished_ok, node.exit_message
    labels = sorted(t.link_label for t in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all())
    prefix = PER_SAMPLE_CALL[estimator][1]
    assert labels == sorted(["average", f"{prefix}_sample_0000", f"{prefix}_sample_0001",
                             "hamiltonian_sample_0000", "hamiltonian_sample_0001"])
    assert hamiltonians_and_velocities(node, estimator) == (2, 2)
    assert node.outputs.average["n_samples"] == 2


# ------------------------------------------------------------------------------- daemon interruption
N_SAMPLES = 40
DAEMON_TIMEOUT_S = 120


def _count_hamiltonians() -> int:
    return orm.QueryBuilder().append(HamiltonianData).count()


def _wait(predicate, seconds: float, what: str, client, node: orm.ProcessNode) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            log = open(client.daemon_log_file, encoding="utf-8").read()
            reports = "\n".join(entry.message for entry in orm.Log.collection.get_logs_for(node))
            pytest.fail(f"{what} not within {seconds:g} s ({node.process_state}, {node.process_status!r}, "
                        f"{_count_hamiltonians()} Hamiltonians); reports:\n{reports}\ndaemon log tail:\n{log[-3000:]}")
        time.sleep(0.2)


@pytest.mark.services
# durable queues (the shared daemon_client fixture): with a test profile's auto-deleted RabbitMQ queues the stop
# dropped the queued task, and the restarted worker sometimes never took the process up (the old flakiness)
def test_daemon_stop_mid_stage_resumes_without_duplicates_or_orphans(daemon_client, production_profile):  # noqa: F811
    from aiida.engine import submit
    from aiida.manage import get_manager

    from aiida_mlepi.calculations.engine import relax_bilayer_graphene

    assert get_manager().get_profile().storage_backend == "core.psql_dos"
    structure = relax_bilayer_graphene(orm.Str("AB"), orm.Dict({}), orm.List([12, 12, 1]))
    daemon_client.start_daemon(number_workers=1, timeout=DAEMON_TIMEOUT_S)
    node = submit(ObservableWorkChain, **observable_inputs(structure, N_SAMPLES))
    _wait(lambda: _count_hamiltonians() >= 3, 120, "3 Hamiltonians", daemon_client, node)
    daemon_client.stop_daemon(wait=True, timeout=DAEMON_TIMEOUT_S)
    interrupted_at = _count_hamiltonians()
    assert 0 < interrupted_at < N_SAMPLES, f"stopped too late: {interrupted_at} Hamiltonians"
    assert not node.is_terminated
    daemon_client.start_daemon(number_workers=1, timeout=DAEMON_TIMEOUT_S)
    _wait(lambda: node.is_terminated, 600, f"ObservableWorkChain<{node.pk}> finished", daemon_client, node)

    assert node.is_finished_ok, f"exit {node.exit_status}: {node.exit_message}"
    assert len(node.outputs.per_sample) == N_SAMPLES and node.outputs.average["n_samples"] == N_SAMPLES
    assert hamiltonians_and_velocities(node) == (N_SAMPLES, N_SAMPLES)
    assert _count_hamiltonians() == N_SAMPLES  # nothing outside the provenance of the run either
    unterminated = [(c.pk, c.process_label, c.process_state) for c in node.called_descendants
                    if c.process_state is None or c.process_state.value in ACTIVE_STATES]
    assert unterminated == []
    active = orm.QueryBuilder().append(orm.ProcessNode, filters={"attributes.process_state": {"in": ACTIVE_STATES}})
    assert active.count() == 0  # `verdi process list` shows nothing
    vf = [node.outputs.per_sample[label]["fermi_velocity_m_per_s"] for label in node.outputs.per_sample]
    assert node.outputs.average["mean_m_per_s"] == pytest.approx(np.mean(vf), rel=1e-12)
    print(f"interrupted with {interrupted_at}/{N_SAMPLES} Hamiltonians")
