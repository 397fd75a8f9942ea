"""Screening (aiida_mlepi.screening): the controller's bookkeeping on fabricated processes (fast), and
``examples/screening-ci.yaml`` screened end to end through a real daemon on PostgreSQL + RabbitMQ, with the
daemon stopped mid-way and restarted and the controller re-run (``services``)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState

from aiida_mlepi.core.screening import load_screening
from aiida_mlepi.screening.controller import (EXTRA_ATTEMPT, EXTRA_FAILURE, EXTRA_KEY, ScreeningController,
                                              failed_group_label, inputs_group_label, prepare_screening)
from aiida_mlepi.screening.inputs import process_label
from aiida_mlepi.screening.results import screening_status, status_table

from .test_daemon_production import (DAEMON_TIMEOUT_S, daemon_client, postgres_database,  # noqa: F401
                                     production_profile, stop_daemon_robustly)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "screening-ci.yaml"
PROTOCOLS = ("fast", "balanced", "stringent")
ACTIVE_STATES = ("created", "waiting", "running")


def _plan(tmp_path: Path, materials: list[str]):
    path = tmp_path / "screen.yaml"
    path.write_text("defaults: {workflow: loop, protocol: fast}\nscreen: [" + ", ".join(materials) + "]\n")
    return load_screening(path, protocols=PROTOCOLS)


def _fake_process(label: str, key: str, state: ProcessState, exit_status: int | None = None) -> orm.WorkChainNode:
    """A process node as the controller of screening ``label`` would have submitted it for run ``key``."""
    node = orm.WorkChainNode()
    node.label = process_label(label, key)
    node.set_process_label("EpiLoopWorkChain")
    node.set_process_state(state)
    if exit_status is not None:
        node.set_exit_status(exit_status)
        node.set_exit_message(f"stage failed ({exit_status})")
    node.store()
    if state in (ProcessState.FINISHED, ProcessState.EXCEPTED, ProcessState.KILLED):
        node.seal()
    return node


def _members(label: str) -> list[int]:
    return sorted(orm.load_group(label).nodes and [n.pk for n in orm.load_group(label).nodes])


def test_controller_adopts_orphans_and_retries_a_failure_once(aiida_profile, tmp_path):
    plan = _plan(tmp_path, ["ab-bilayer-graphene", "aa-bilayer-graphene"])
    label = f"test/screening-{uuid.uuid4().hex[:8]}"
    keys = prepare_screening(plan, label)
    assert prepare_screening(plan, label) == keys  # idempotent: the structures are stored once
    assert len(orm.load_group(inputs_group_label(label)).nodes) == 2
    aa, ab = sorted(keys)
    controller = ScreeningController.for_screening(label, max_concurrent=1, keys=keys)
    assert set(controller.submit_new_batch(dry_run=True)) == {(aa,)}  # one slot, the first key

    # a process submitted just before a crash: labelled with its key, but never added to the group
    orphan = _fake_process(label, aa, ProcessState.RUNNING)
    elsewhere = _fake_process("test/another-screening", aa, ProcessState.RUNNING)  # same run, another screening
    assert [n.pk for n in controller.adopt_orphans()] == [orphan.pk]
    assert elsewhere.base.extras.get(EXTRA_KEY, None) is None
    assert orphan.base.extras.get(EXTRA_KEY) == aa and orphan.base.extras.get(EXTRA_ATTEMPT) == 1
    assert controller.adopt_orphans() == []
    assert controller.submit_new_batch(dry_run=True) == {}  # the adopted process holds the only slot

    # it fails in a stage (exit 401): retired to G/failed with its reason, and the run is due again
    orphan.set_exit_status(401)
    orphan.set_process_state(ProcessState.FINISHED)
    orphan.seal()
    assert [n.pk for n in controller.retire_failures()] == [orphan.pk]
    assert orphan.base.extras.get(EXTRA_FAILURE).startswith(f"EpiLoopWorkChain<{orphan.pk}> exit status 401")
    assert _members(failed_group_label(label)) == [orphan.pk] and controller.failed_attempts(aa) == 1
    assert set(controller.submit_new_batch(dry_run=True)) == {(aa,)}
    assert [s.state for s in screening_status(label)] == ["pending", "retrying"]  # ab-…, then aa-… (added order)

    # the second attempt fails too: it stays in G as the final failure, no third attempt
    second = _fake_process(label, aa, ProcessState.EXCEPTED)
    second.base.extras.set_many({EXTRA_KEY: aa, EXTRA_ATTEMPT: 2})
    controller.group.add_nodes(second)
    assert controller.retire_failures() == []
    assert set(controller.submit_new_batch(dry_run=True)) == {(ab,)}

    # an input error (exit < 400) fails the same way again: recorded, not retried
    bad = _fake_process(label, ab, ProcessState.FINISHED, exit_status=300)
    bad.base.extras.set_many({EXTRA_KEY: ab, EXTRA_ATTEMPT: 1})
    controller.group.add_nodes(bad)
    assert controller.retire_failures() == [] and controller.submit_new_batch(dry_run=True) == {}
    statuses = {s.name: s for s in screening_status(label)}
    assert {name: (s.state, s.attempts, s.final) for name, s in statuses.items()} == {
        "ab-bilayer-graphene": ("failed", 1, True), "aa-bilayer-graphene": ("failed", 2, True)}
    assert "exit status 300" in statuses["ab-bilayer-graphene"].error
    table = status_table(list(statuses.values()))
    assert "↳ attempt 2: EpiLoopWorkChain<" in table and "2 runs: 2 failed" in table


# ------------------------------------------------------------------------------------------ daemon


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aiida_mlepi.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdin=subprocess.DEVNULL)


def _wait(predicate, seconds: float, what: str, client) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            log = open(client.daemon_log_file, encoding="utf-8").read()[-4000:]
            pytest.fail(f"{what}: not within {seconds:g} s; daemon log tail:\n{log}")
        time.sleep(1.0)


def _finished_calls(node: orm.ProcessNode) -> list[tuple[int, str]]:
    """(caller pk, what) of every finished call below ``node``: a pair twice is work done twice. ``what`` is the
    call link label of a process function (unique per step, see resumable_call) and, for a submitted child
    (link label 'CALL'), its process label and temperature."""
    out = []
    for caller in [node, *node.called_descendants]:
        for link in caller.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all():
            child = link.node
            if not child.is_finished_ok:
                continue
            what = link.link_label
            if what == "CALL":
                temperature = child.inputs.temperature_k.value if "temperature_k" in child.inputs else None
                what = f"{child.process_label}@{temperature}"
            out.append((caller.pk, what))
    return out


@pytest.mark.services
def test_screening_ci_through_daemon_survives_a_restart(daemon_client, production_profile, tmp_path):  # noqa: F811
    """examples/screening-ci.yaml on PostgreSQL + RabbitMQ with two daemon workers, one run at a time: the
    daemon is stopped while the first run is in flight, the controller re-run (it submits nothing: the slot is
    taken), the daemon restarted and the controller re-run until the end. Every run finishes once, nothing is
    computed twice, and `screen status` / `screen report` show it."""
    from aiida.manage import get_manager

    assert get_manager().get_profile().storage_backend == "core.psql_dos"
    label = "screening/ci"
    plan = load_screening(EXAMPLE, protocols=PROTOCOLS)
    keys = prepare_screening(plan, label)

    def controller() -> ScreeningController:  # a fresh one each time, as a rerun of the command would make
        return ScreeningController.for_screening(label, max_concurrent=1, keys=keys)

    daemon_client.start_daemon(number_workers=2, timeout=DAEMON_TIMEOUT_S)
    (first,) = controller().submit_new_batch().values()
    # mid-way: the run has started its stages (a child process), and has not finished
    _wait(lambda: bool(first.called), 300, "the first run calling its first stage", daemon_client)
    stop_daemon_robustly(daemon_client)
    assert not first.is_terminated, "stopped too late"
    # the controller re-run while the daemon is down: the only slot is taken, nothing is submitted; the broker
    # tasks the stop lost (a worker stopped mid-step acknowledges its task) are re-sent, each once
    assert controller().submit_new_batch() == {}
    # durable queues: every active WorkChain of the screening still has its task in the broker
    assert controller().record_lost_tasks() == []
    daemon_client.start_daemon(number_workers=2, timeout=DAEMON_TIMEOUT_S)
    assert controller().revive_lost_tasks() == []

    def all_final() -> bool:
        controller().submit_new_batch()
        return all(status.final for status in screening_status(label))

    _wait(all_final, 1200, "every run of the screening finished", daemon_client)
    stop_daemon_robustly(daemon_client)

    statuses = screening_status(label)
    assert [(s.name, s.state, s.attempts) for s in statuses] == [(run.name, "finished", 1) for run in plan.runs], \
        status_table(statuses)
    # one process per run, ever: no second submission, nothing retired as failed
    labels = [process_label(label, key) for key in keys]
    labelled = orm.QueryBuilder().append(orm.ProcessNode, filters={"label": {"in": labels}}, project="*").all(flat=True)
    assert sorted(n.label for n in labelled) == sorted(labels)
    assert orm.load_group(failed_group_label(label)).count() == 0
    # max_concurrent = 1: the second run was created only after the first had finished
    second = next(n for n in labelled if n.pk != first.pk)
    assert second.ctime >= first.mtime
    # nothing computed twice: no (caller, call label) finished twice anywhere below the runs; nothing left active
    for node in labelled:
        calls = _finished_calls(node)
        assert calls and len(calls) == len(set(calls)), f"{node.label}: duplicated calls"
    active = orm.QueryBuilder().append(orm.ProcessNode, filters={"attributes.process_state": {"in": ACTIVE_STATES}})
    assert active.count() == 0
    # physics sanity at 300 K (2×2 cell, a handful of samples): a change of v0 of a few %, not of tens; the Monte
    # Carlo average is not significantly positive (measured −1.40 ± 0.13 % and −0.83 ± 0.26 % in two runs; ZG with
    # one ± pair: −0.92 % and +1.19 %: the degenerate modes' eigenvector basis differs from run to run)
    # hBN (GPAW, Γ phonons of the unit cell, minimal basis): a gap change of a few % at most, not tens
    for status in statuses:
        row = next(r for r in status.rows if r["temperature_k"] == 300.0)
        key = "velocity_m_per_s_relative" if "velocity_m_per_s_relative" in row else "gap_ev_relative"
        assert abs(row[key]) < 0.05, (status.name, row)
        if status.name == "ab-bilayer-graphene":
            assert row["velocity_m_per_s_relative"] < 3 * row["velocity_m_per_s_relative_stderr"]

    status = _cli("-p", production_profile.name, "screen", "status", "--group", label)
    assert status.returncode == 0, status.stderr
    for run in plan.runs:
        assert run.name in status.stdout
    assert f"{len(plan.runs)} runs: {len(plan.runs)} finished" in status.stdout
    out = tmp_path / "report"
    report = _cli("-p", production_profile.name, "screen", "report", "--group", label, "--output-dir", str(out))
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader((out / "screening_ci.csv").open()))
    assert len(rows) == 2 * len(plan.runs)  # two temperatures per run
    assert {r["state"] for r in rows} == {"finished"} and {float(r["temperature_k"]) for r in rows} == {0.0, 300.0}
    assert (out / "screening_ci.png").stat().st_size > 10_000
    print(status.stdout)
