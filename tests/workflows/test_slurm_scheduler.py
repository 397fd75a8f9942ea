"""The pipeline's CalcJobs through a real Slurm (AiiDA's ``core.slurm`` scheduler) give the same results as
through ``core.direct``.

The CalcJobs of ``mlepi.pipeline`` (HedgeNet-Phonon and HedgeNet-Electron training, at the ``fast`` protocol's
hyperparameters) run twice on the same inputs: on the computer of AiiDA's ``aiida_localhost`` fixture
(``core.direct``) and on a computer whose scheduler is ``core.slurm`` — a single-node Slurm on this machine,
started by ``scripts/start-local-slurm.sh`` (``.ci/run`` does this). Only the computer and the code differ.

Skips with the reason where no Slurm answers (a laptop); with ``MLEPI_REQUIRE_SERVICES=1`` (CI) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PROTOCOL = Path(__file__).resolve().parents[2] / "aiida_mlepi" / "protocols" / "pipeline.yaml"


def _require_slurm() -> None:
    reason = None
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        reason = "Slurm is not installed (sbatch/sinfo not on PATH; bash scripts/start-local-slurm.sh sets it up)"
    else:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
        if state.returncode != 0 or not any(s in state.stdout for s in ("idle", "mixed", "allocated")):
            reason = f"no Slurm node is up (sinfo: {state.stdout.strip() or state.stderr.strip()})"
    if reason:
        if os.environ.get("MLEPI_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _fast_training_parameters(which: str) -> dict:
    protocol = yaml.safe_load(PROTOCOL.read_text())
    return protocol["protocols"]["fast"][f"{which}_training"]["training_parameters"]


@pytest.fixture(scope="module")
def training_inputs(relaxed_ab_bilayer):
    """A small forces dataset and the H(R) of the same kind of cells (reference engine), as the pipeline trains on."""
    from aiida import orm

    from aiida_mlepi.calculations.labelling import label_perturbed_configurations
    from aiida_mlepi.core.engine import ReferenceEngine
    from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    dataset = label_perturbed_configurations(relaxed_ab_bilayer, orm.Int(6), orm.Dict({"supercell": [2, 2]}),
                                             orm.List([4, 4, 1]), orm.Dict({}), orm.Int(0))
    atoms = perturbed_configurations(relaxed_ab_bilayer.get_ase(), 5, PerturbationSettings(supercell=(2, 2)), seed=5)
    engine = ReferenceEngine()
    hamiltonians = {f"c{k}": HamiltonianData.from_hamiltonian(engine.hamiltonian(a)).store()
                    for k, a in enumerate(atoms)}
    return dataset, hamiltonians


@pytest.fixture(scope="module")
def slurm_code(aiida_profile, tmp_path_factory):
    """This interpreter as a code on a ``core.local`` + ``core.slurm`` computer (the local Slurm)."""
    _require_slurm()
    from aiida import orm

    computer = orm.Computer(label="slurm-local", hostname="localhost", transport_type="core.local",
                            scheduler_type="core.slurm", workdir=str(tmp_path_factory.mktemp("slurm-work"))).store()
    computer.set_minimum_job_poll_interval(1.0)
    computer.set_default_mpiprocs_per_machine(1)
    computer.configure(safe_interval=0.0)
    return orm.InstalledCode(label="python-mlepi", computer=computer, filepath_executable=sys.executable).store()


@pytest.fixture
def direct_code(aiida_code_installed):
    return aiida_code_installed(label="python-mlepi-direct", filepath_executable=sys.executable)


def _train(code, which: str, training_inputs, parameters: dict):
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    dataset, hamiltonians = training_inputs
    builder = CalculationFactory(f"mlepi.train_{which}").get_builder()
    builder.code = code
    if which == "phonon":
        builder.dataset = dataset
    else:
        builder.hamiltonians = hamiltonians
    builder.training_parameters = orm.Dict(parameters)
    builder.metadata.options.environment_variables = {"OMP_NUM_THREADS": "1"}
    builder.metadata.options.resources = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    builder.metadata.options.max_wallclock_seconds = 1800
    _, node = run_get_node(builder)
    return node


@pytest.mark.parametrize("which", ["phonon", "electron"])
def test_training_calcjob_through_slurm_equals_direct(which, slurm_code, direct_code, training_inputs):
    parameters = _fast_training_parameters(which)
    # a few epochs are enough to compare: every epoch's losses must agree, not only the final ones
    key = "epochs" if which == "phonon" else "max_epochs"
    parameters = {**parameters, "training": {**parameters["training"], key: 3}}

    on_slurm = _train(slurm_code, which, training_inputs, parameters)
    on_direct = _train(direct_code, which, training_inputs, parameters)
    assert on_slurm.is_finished_ok, on_slurm.exit_message
    assert on_direct.is_finished_ok, on_direct.exit_message

    # it really went through Slurm: a numeric Slurm job id, an sbatch script with #SBATCH directives
    assert on_slurm.computer.scheduler_type == "core.slurm"
    assert on_direct.computer.scheduler_type == "core.direct"
    assert str(on_slurm.get_job_id()).isdigit()
    script = on_slurm.base.repository.get_object_content("_aiidasubmit.sh")
    assert "#SBATCH" in script and "#SBATCH" not in on_direct.base.repository.get_object_content("_aiidasubmit.sh")

    # the same numbers: every epoch's losses, the test errors and the trained weights
    slurm_metrics, direct_metrics = on_slurm.outputs.metrics.get_dict(), on_direct.outputs.metrics.get_dict()
    assert slurm_metrics["epochs_run"] == direct_metrics["epochs_run"] == 3
    assert _numbers(slurm_metrics["history"]) == pytest.approx(_numbers(direct_metrics["history"]), rel=1e-9)
    assert _numbers(slurm_metrics["test"]) == pytest.approx(_numbers(direct_metrics["test"]), rel=1e-9)
    slurm_state = on_slurm.outputs.model.load_model().state_dict()
    direct_state = on_direct.outputs.model.load_model().state_dict()
    assert slurm_state.keys() == direct_state.keys() and len(slurm_state) > 0
    for name, tensor in direct_state.items():
        assert np.array_equal(slurm_state[name].numpy(), tensor.numpy()), name


def _numbers(value) -> list[float]:
    """The numbers of a metrics entry (nested dicts/lists), wall times left out, in a fixed order."""
    if isinstance(value, dict):
        return [x for key in sorted(value) if not key.startswith("time") for x in _numbers(value[key])]
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in _numbers(item)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    return [float(value)]
