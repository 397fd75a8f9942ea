"""Unfolded spectra of many configurations from one HedgeNet-Electron: batched inference → unfolding, in workers.

Units: energies eV, k Å⁻¹, times s.

The per-configuration path (one calcfunction predicting H(R), one unfolding it) loads the model, builds a
graph from a fresh neighbour search and stores an H(R) node for every configuration. Here a list of
configurations goes through, per worker process:

1. one model load and :func:`~aiida_mlepi.core.ml.electron_batch.predict_hamiltonians` (float32 forward
   passes, the edge topology of the first structure reused by the others: no neighbour search);
2. :func:`~aiida_mlepi.core.spectral_estimators.configuration_spectrum` of each H(R) (dense Bloch sums,
   mixed-precision window solves: :func:`~aiida_mlepi.core.bands.eigh_subset`).

``workers`` processes (fork; each one thread) take contiguous chunks of the configurations; the results come
back in input order, identical to the serial path (same code, same inputs). On a 2-core machine two workers
halve the wall time when nothing else runs.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from .spectral_estimators import ConfigurationSpectrum, SpectralSettings, configuration_spectrum
from .unfolding import PrimitiveCell


class SpectralBatchError(ValueError):
    """Bad input to the batched spectra."""


@dataclass
class BatchTimings:
    """Seconds spent in each step, summed over workers (CPU-bound: ≈ CPU time), and the wall time."""

    predict_s: float = 0.0  #: model load + graphs + forward passes
    observable_s: float = 0.0  #: Bloch sums + window solves + unfolding weights
    wall_s: float = 0.0
    workers: int = 1
    window_states: float = 0.0  #: mean number of states per k in the energy window (the solve's size)
    per_worker: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"predict_s": self.predict_s, "observable_s": self.observable_s, "wall_s": self.wall_s,
                "workers": self.workers, "window_states": self.window_states}


@dataclass(frozen=True)
class _Job:
    model_bytes: bytes
    structures: list
    primitive: object
    n_electrons: int
    settings: SpectralSettings
    fermi_reference_ev: float | None
    dtype: str


def _run(job: _Job) -> tuple[list[ConfigurationSpectrum], float, float]:
    import torch

    from .ml.electron_batch import predict_hamiltonians
    from .ml.hedgenet_electron import load_model

    torch.set_num_threads(1)
    start = time.perf_counter()
    model = load_model(io.BytesIO(job.model_bytes))
    hamiltonians = predict_hamiltonians(model, job.structures, dtype=job.dtype)
    predict_s = time.perf_counter() - start
    start = time.perf_counter()
    primitive = PrimitiveCell.from_any(job.primitive, hamiltonians[0])
    spectra = [configuration_spectrum(h, primitive, job.n_electrons, job.settings, job.fermi_reference_ev)
               for h in hamiltonians]
    return spectra, predict_s, time.perf_counter() - start


def predicted_spectra(model_bytes: bytes, structures: list[Atoms], primitive, n_electrons: int,
                      settings: SpectralSettings, fermi_reference_ev: float | None = None, *, workers: int = 1,
                      dtype: str = "float32") -> tuple[list[ConfigurationSpectrum], BatchTimings]:
    """Unfolded spectrum of every structure, H(R) predicted by the HedgeNet-Electron in ``model_bytes``.

    ``model_bytes``: the file written by :func:`~aiida_mlepi.core.ml.hedgenet_electron.save_model` (workers
    load it themselves: nothing but bytes crosses the process boundary). ``primitive``, ``n_electrons``,
    ``settings``, ``fermi_reference_ev``: as :func:`~aiida_mlepi.core.spectral_estimators.configuration_spectrum`.
    ``workers``: processes (≥ 1; 1 runs in this process). ``dtype``: precision of the forward pass.
    """
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise SpectralBatchError(f"workers must be a positive integer, got {workers}")
    if not structures:
        return [], BatchTimings(workers=int(workers))
    workers = min(int(workers), len(structures))
    chunks = [list(c) for c in np.array_split(np.arange(len(structures)), workers)]
    jobs = [_Job(model_bytes, [structures[i] for i in chunk], primitive, int(n_electrons), settings,
                 fermi_reference_ev, dtype) for chunk in chunks]
    start = time.perf_counter()
    if workers == 1:
        results = [_run(jobs[0])]
    else:
        # fork: the workers inherit the imported modules (no re-import of torch); each runs one thread
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            with context.Pool(workers) as pool:
                results = pool.map(_run, jobs, chunksize=1)
        finally:
            if env["OMP_NUM_THREADS"] is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = env["OMP_NUM_THREADS"]
    spectra = [s for r in results for s in r[0]]
    counts = [np.isfinite(s.energies).sum(axis=-1).mean() for s in spectra]
    timings = BatchTimings(predict_s=sum(r[1] for r in results), observable_s=sum(r[2] for r in results),
                           wall_s=time.perf_counter() - start, workers=workers, window_states=float(np.mean(counts)),
                           per_worker=[(len(j.structures), r[1], r[2]) for j, r in zip(jobs, results)])
    return spectra, timings
