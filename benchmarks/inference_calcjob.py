"""Seconds per sample of HedgeNet-Electron H(R) inference: in-process calcfunctions vs one batched CalcJob.

Workload: ``--samples`` random-displaced (Gaussian, 0.05 Å per component) copies of the ``--supercell``×n AB
bilayer, an *untrained* model of ``--model`` size ('tiny' as the CI tests, 'default' the paper-size
config; the cost of a trained model of the same size is the same), 1 thread, CPU, on a throw-away SQLite
profile. 'calcfunction' is the ObservableWorkChain's in-process path (one ``predict_hedgenet_hamiltonian``
per sample: load the model, build the graph, predict, store); 'calcjob' is one ``mlepi.predict_hamiltonians``
job on localhost (upload, a new Python process that imports torch/e3nn and loads the model once, batched
prediction with topology reuse, retrieve, parse and store) — wall time of the whole job, and the job's own
prediction time from its ``report``. ``--device cuda`` runs the job on the GPU (float32 unless ``--dtype``);
the calcfunction path is always CPU. Prints a table and writes ``benchmarks/output/inference_calcjob.txt``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/inference_calcjob.py [--samples 16] [--supercell 4] [--device cuda]

Measured (2-core machine shared by ~9 sessions, default model, 4×4 cell = 64 atoms, CPU, 1 thread):
16 samples at load 25: calcfunction 7.0 s/sample, CalcJob 5.5 s/sample wall (0.94 s/sample prediction,
8.3 s model load + imports once, the rest process start, transfer, parsing, storing); 8 samples at load
33: 15.0 vs 13.6 s/sample (1.3 s/sample prediction). The in-process path rebuilds the model (e3nn
code generation) for every sample; the job does it once. GPU: not measured (none was available).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "output"
TINY = {"num_layers": 1, "num_scalars": 8, "num_vectors": 2, "num_tensors": 1, "radial_hidden": 16, "num_basis": 6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--supercell", type=int, default=4)
    parser.add_argument("--model", choices=("tiny", "default"), default="default")
    parser.add_argument("--device", default="cpu", help="device of the CalcJob ('cpu', 'cuda')")
    parser.add_argument("--dtype", default=None, choices=(None, "float32", "float64"))
    args = parser.parse_args()

    os.environ.setdefault("AIIDA_PATH", tempfile.mkdtemp(prefix="mlepi-bench-"))
    import torch
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.calculations.electron import predict_hedgenet_hamiltonian
    from aiida_mlepi.calculations.inference import HedgeNetHamiltonianCalculation
    from aiida_mlepi.cli.profile import ensure_profile
    from aiida_mlepi.codes import ensure_local_python_code
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig, save_model
    from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell
    from aiida_mlepi.data.layered_structure import LayeredStructureData
    from aiida_mlepi.data.model import TrainedModelData

    torch.set_num_threads(1)
    profile = ensure_profile(None)
    config = HedgeNetElectronConfig(**(TINY if args.model == "tiny" else {}))
    buffer = io.BytesIO()
    save_model(HedgeNetElectron(config), buffer)
    model = TrainedModelData.from_bytes(buffer.getvalue(), model_kind="hedgenet-electron",
                                        loader="aiida_mlepi.core.ml.hedgenet_electron:load_model",
                                        description={"atomic_numbers": [6]}).store()
    base = in_plane_supercell(graphene_bilayer("AB"), args.supercell)
    rng = np.random.default_rng(0)
    structures = {}
    for k in range(args.samples):
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        structures[f"s{k:03d}"] = LayeredStructureData.from_ase(atoms, material="bench", sample_index=k).store()
    code = ensure_local_python_code()

    start = time.perf_counter()
    for structure in structures.values():
        predict_hedgenet_hamiltonian(structure, model)
    calcfunction_s = time.perf_counter() - start

    start = time.perf_counter()
    parameters = {"device": args.device, **({"dtype": args.dtype} if args.dtype else {})}
    results, job = run_get_node(HedgeNetHamiltonianCalculation, code=code, model=model, structures=structures,
                                parameters=orm.Dict(parameters), metadata={"options": {"environment_variables": {"OMP_NUM_THREADS": "1"}}})
    calcjob_s = time.perf_counter() - start
    if not job.is_finished_ok:
        raise SystemExit(f"the job failed: {job.exit_status} {job.exit_message}")
    report = results["report"].get_dict()
    n = args.samples
    load = os.getloadavg()
    lines = [f"HedgeNet-Electron H(R) inference, {len(base)} atoms ({args.supercell}×{args.supercell} AB bilayer), "
             f"{args.model} model ({HedgeNetElectron(config).num_parameters()} parameters), {n} samples, job on "
             f"{report['device']} ({report['device_name']}, {report['dtype']}), 1 CPU thread; "
             f"profile {profile.name} ({profile.storage_backend}); load average {load[0]:.1f} "
             f"on {os.cpu_count()} cores",
             f"{'path':<34}{'total s':>10}{'s/sample':>10}",
             f"{'calcfunction (per sample)':<34}{calcfunction_s:>10.2f}{calcfunction_s / n:>10.3f}",
             f"{'calcjob (whole job, wall)':<34}{calcjob_s:>10.2f}{calcjob_s / n:>10.3f}",
             f"{'  of which prediction in the job':<34}{report['timing']['predict_s']:>10.2f}"
             f"{report['timing']['per_sample_s']:>10.3f}",
             f"{'  of which model load in the job':<34}{report['timing']['load_s']:>10.2f}",
             f"graphs in the job: {report['graphs']}; kernels: {report['kernels']['message']}"]
    text = "\n".join(lines)
    print(text)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "inference_calcjob.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
