"""Wall time of each stage of the EPI loop, and the time AiiDA spends storing nodes.

Default: AB bilayer graphene, 6×6 supercell (144 atoms), 100 samples at one temperature (300 K),
reference engine, on a throw-away SQLite profile (nothing external needed)::

    .venv/bin/python benchmarks/epi_loop_stages.py [--samples 100] [--temperature 300] [--supercell 6]

Stage times come from the provenance graph (creation → last modification of each stage's process
nodes); node-storage time is measured by timing every outermost ``Node.store()`` call.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time


@contextlib.contextmanager
def timed_store(totals: dict):
    """Accumulate the wall time of outermost ``Node.store`` calls (nested stores counted once)."""
    from aiida.orm.nodes.node import Node

    original = Node.store
    depth = {"n": 0}

    def store(self, *args, **kwargs):
        depth["n"] += 1
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            depth["n"] -= 1
            if depth["n"] == 0:
                totals["seconds"] += time.perf_counter() - start
                totals["calls"] += 1

    Node.store = store
    try:
        yield totals
    finally:
        Node.store = original


def process_seconds(nodes) -> float:
    return sum((node.mtime - node.ctime).total_seconds() for node in nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--supercell", type=int, default=6)
    args = parser.parse_args()

    os.environ.setdefault("AIIDA_PATH", tempfile.mkdtemp(prefix="mlepi-bench-"))
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlepi.calculations.engine import relax_bilayer_graphene
    from aiida_mlepi.cli.profile import ensure_profile
    from aiida_mlepi.core.engine.relax import supercell_kpoints_mesh
    from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain

    profile = ensure_profile(None)
    n = args.supercell
    mesh = supercell_kpoints_mesh((n, n, 1))
    totals = {"seconds": 0.0, "calls": 0}
    with timed_store(totals):
        start = time.perf_counter()
        structure = relax_bilayer_graphene(orm.Str("AB"), orm.Dict({}), orm.List([n * mesh[0], n * mesh[1], 1]))
        relax_s = time.perf_counter() - start
        start = time.perf_counter()
        _, node = run_get_node(EpiLoopWorkChain, structure=structure, supercell_matrix=orm.List([n, n, 1]),
                               temperatures_k=orm.List([args.temperature]), n_samples=orm.Int(args.samples),
                               antithetic=orm.Bool(args.samples % 2 == 0), phonon_kpoints_mesh=orm.List(list(mesh)))
        loop_s = time.perf_counter() - start
    if not node.is_finished_ok:
        raise SystemExit(f"EpiLoopWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}")

    called = {child.process_label: child for child in node.called}
    phonons = called["PhononWorkChain"]
    sampling = called["ThermalSamplingWorkChain"]
    observable = called["ObservableWorkChain"]
    calcs = {label: [c for c in observable.called if c.process_label == label]
             for label in ("compute_engine_hamiltonian", "compute_fermi_velocity")}
    force_calcs = [c for c in phonons.called if c.process_label == "compute_engine_forces"]
    summary = [c for c in node.called if c.process_label in ("summarize_fermi_velocity", "plot_fermi_velocity_summary")]
    rows = [
        ("relax unit cell (k %d×%d)" % (n * mesh[0], n * mesh[1]), relax_s),
        (f"phonons: {len(force_calcs)} displaced supercells + phonopy", process_seconds([phonons])),
        ("  of which engine forces", process_seconds(force_calcs)),
        (f"MC sampling: {args.samples} configurations", process_seconds([sampling])),
        (f"H(R) + vF of {args.samples} configurations", process_seconds([observable])),
        ("  of which H(R) (engine)", process_seconds(calcs["compute_engine_hamiltonian"])),
        ("  of which vF (bands near K)", process_seconds(calcs["compute_fermi_velocity"])),
        ("summary table + plot", process_seconds(summary)),
        ("EpiLoopWorkChain total", loop_s),
        (f"storing nodes ({totals['calls']} outermost store() calls)", totals["seconds"]),
    ]
    print(f"EPI loop, AB bilayer graphene {n}×{n} ({4 * n * n} atoms), {args.samples} samples at "
          f"{args.temperature:g} K; profile {profile.name} ({profile.storage_backend}); {os.cpu_count()} cores")
    for label, seconds in rows:
        print(f"  {label:<55s} {seconds:9.2f} s")
    print(f"  per configuration (H + vF)                              {process_seconds([observable]) / args.samples:9.3f} s")
    avg = node.outputs.averages[sorted(node.outputs.averages)[0]].get_dict()
    print(f"⟨vF⟩({args.temperature:g} K) = {avg['mean_m_per_s']:.1f} ± {avg['stderr_m_per_s']:.1f} m/s; "
          f"static lattice {node.outputs.static_lattice['fermi_velocity_m_per_s']:.1f} m/s")


if __name__ == "__main__":
    main()
