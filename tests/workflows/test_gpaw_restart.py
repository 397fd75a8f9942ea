"""GpawBaseWorkChain (mlepi.gpaw.base): real GPAW runs that fail, are healed by the SCF ladder, or stop.

H2 in a 4 × 4 × 4.5 Å box (no periodic direction, Γ only, dzp, h = 0.3 Å): GPAW converges it in 10
SCF iterations (measured, GPAW 25.7), ~1 s a run, so a cap of 6 fails and the ladder's first rung
(× 2 → 12) converges on exactly the SCF path of a direct run.
"""

from __future__ import annotations

import pytest

from tests.workflows.test_dataset_workchain import python_code  # noqa: F401 - the shared code fixture

#: H2 settings: cheap, real
H2_PARAMETERS = {"grid_spacing_angstrom": 0.3}
#: SCF iterations GPAW 25.7 needs for H2 with these settings (measured)
H2_SCF_ITERATIONS = 10


def _h2():
    from ase import Atoms

    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[4.0, 4.0, 4.5], pbc=False)
    atoms.center()
    return atoms


def _run_base(code, parameters: dict, **extra):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.workchains.gpaw_base import GpawBaseWorkChain

    return run_get_node(GpawBaseWorkChain, gpaw={
        "code": code, "structure": orm.StructureData(ase=_h2()), "parameters": orm.Dict(parameters),
        "kpoints_mesh": orm.List([1, 1, 1]),
        "metadata": {"options": {"environment_variables": {"OMP_NUM_THREADS": "1"}}}}, **extra)


def _calcs(node):
    return sorted((c for c in node.called if c.process_label == "GpawLcaoCalculation"), key=lambda c: c.ctime)


def test_scf_not_converged_is_healed(python_code):  # noqa: F811
    """Cap 6 < 10 iterations: exit 310, the handler doubles the cap, the relaunch converges to the direct energy."""
    from tests.core.test_gpaw_engine import require_gpaw

    require_gpaw()
    from aiida.orm import Log

    from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings, compute

    results, node = _run_base(python_code, {**H2_PARAMETERS, "max_scf_iterations": 6})
    assert node.is_finished_ok, node.exit_message
    first, second = _calcs(node)
    assert first.exit_status == 310 and "Did not converge" in first.exit_message
    assert first.inputs.parameters.get_dict() == {**H2_PARAMETERS, "max_scf_iterations": 6}
    # rung 1: only the iteration cap changes (mixing and smearing as given)
    assert second.inputs.parameters.get_dict() == {**H2_PARAMETERS, "max_scf_iterations": 12}
    assert second.is_finished_ok and results["output_parameters"]["scf_iterations"] == H2_SCF_ITERATIONS
    assert results["forces"].uuid == second.outputs.forces.uuid  # the outputs are the healed CalcJob's
    report = " ".join(entry.message for entry in Log.collection.get_logs_for(node))
    assert "rung 1: max_scf_iterations 6 → 12" in report
    direct = compute(_h2(), (1, 1, 1), GpawLcaoSettings(**H2_PARAMETERS), forces=False)
    assert direct.scf_iterations == H2_SCF_ITERATIONS
    assert results["output_parameters"]["energy_ev"] == pytest.approx(direct.energy, abs=1e-6)


def test_ladder_exhausted_and_unrecoverable(python_code):  # noqa: F811
    """Cap 1: rungs 1–3 (2, 3, 4 iterations; β 0.25 → 0.125 → 0.0625) all fail → 410 after 4 CalcJobs;
    a basis that does not exist → 412 after one CalcJob (no relaunch)."""
    from tests.core.test_gpaw_engine import require_gpaw

    require_gpaw()
    _, node = _run_base(python_code, {**H2_PARAMETERS, "max_scf_iterations": 1})
    assert node.exit_status == 410 and "3 rungs" in node.exit_message
    calcs = _calcs(node)
    assert [c.exit_status for c in calcs] == [310] * 4
    ladder = [c.inputs.parameters.get_dict() for c in calcs]
    assert [p["max_scf_iterations"] for p in ladder] == [1, 2, 3, 4]
    assert [p.get("mixer_beta") for p in ladder] == [None, None, 0.125, 0.0625]
    assert [p.get("mixer_history") for p in ladder] == [None, None, 8, 10]
    assert all("smearing_width_ev" not in p for p in ladder)  # never without allow_smearing_increase

    _, node = _run_base(python_code, {**H2_PARAMETERS, "basis": "nosuchbasis"})
    assert node.exit_status == 412 and "H.nosuchbasis.basis" in node.exit_message
    assert len(_calcs(node)) == 1
