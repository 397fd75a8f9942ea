"""Calcfunctions of the MLEPI pipeline (`MlepiWorkChain`): the ground-truth comparisons and the summary.

* :func:`compare_phonon_modes` — the ML phonons of the production supercell vs the engine's, mode by mode
  (both spectra sorted ascending; imaginary frequencies as negative numbers), |Δω| in cm⁻¹;
* :func:`compare_renormalisation` — at one temperature, the ML and the engine thermal averages over the
  *same* checked configurations: each band parameter's change vs its own static lattice, their difference
  and whether it lies within the combined standard error;
* :func:`summarize_pipeline` — the ``mlepi_pipeline_summary`` Dict (with the committee uncertainty and
  the active-learning rounds when run).

The arithmetic is in plain functions (:func:`mode_differences`, :func:`renormalisation_check`) so that it can
be tested without a profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.units import THZ_TO_CM1
from aiida_mlepi.data.phonon_modes import IMAGINARY_TOLERANCE_CM1, PhononModesData

#: the ``observable`` of the pipeline's summary Dict
SUMMARY_OBSERVABLE = "mlepi_pipeline_summary"


def mode_differences(ml_cm1: np.ndarray, engine_cm1: np.ndarray,
                     imaginary_tolerance_cm1: float = IMAGINARY_TOLERANCE_CM1) -> dict:
    """|Δω| (cm⁻¹) between two spectra of the same supercell, mode by mode in ascending order.

    Frequencies in cm⁻¹, imaginary ones as negative numbers (below −``imaginary_tolerance_cm1`` they count
    as imaginary). Raises ValueError when the spectra have different numbers of modes.
    """
    ml = np.sort(np.asarray(ml_cm1, dtype=float).ravel())
    engine = np.sort(np.asarray(engine_cm1, dtype=float).ravel())
    if ml.shape != engine.shape:
        raise ValueError(f"the spectra have {ml.size} and {engine.size} modes: not the same supercell")
    delta = np.abs(ml - engine)
    return {
        "num_modes": int(ml.size),
        "mean_abs_difference_cm1": float(delta.mean()),
        "max_abs_difference_cm1": float(delta.max()),
        "mean_relative_difference": float(np.mean(delta[engine > 1.0] / engine[engine > 1.0]))
        if np.any(engine > 1.0) else None,
        "num_imaginary_ml": int(np.count_nonzero(ml < -imaginary_tolerance_cm1)),
        "num_imaginary_engine": int(np.count_nonzero(engine < -imaginary_tolerance_cm1)),
        "max_frequency_ml_cm1": float(ml.max()),
        "max_frequency_engine_cm1": float(engine.max()),
        "abs_difference_cm1": delta.tolist(),
    }


def _combined(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return math.hypot(a, b)


def renormalisation_check(ml: Mapping, engine: Mapping) -> dict:
    """ML vs engine for every band parameter both estimates report with a change vs their static lattice.

    ``ml`` and ``engine`` are the ``average`` Dicts of ObservableWorkChain (spectral estimator) over the same
    configurations. Per parameter ``p``: the two values and their changes ``p_relative`` (each vs its own
    static lattice) with standard errors, ``relative_difference`` = ML − engine, its combined standard error
    √(s_ML² + s_engine²) and ``agree`` = |difference| ≤ combined error (None without error bars, e.g. a
    single ± pair).
    """
    parameters = sorted(key[:-len("_relative")] for key in ml
                        if key.endswith("_relative") and key in engine)
    rows = {}
    for name in parameters:
        ml_rel, engine_rel = float(ml[f"{name}_relative"]), float(engine[f"{name}_relative"])
        ml_err, engine_err = ml.get(f"{name}_relative_stderr"), engine.get(f"{name}_relative_stderr")
        combined = _combined(ml_err, engine_err)
        difference = ml_rel - engine_rel
        rows[name] = {
            "ml": float(ml[name]), "ml_stderr": ml.get(f"{name}_stderr"),
            "engine": float(engine[name]), "engine_stderr": engine.get(f"{name}_stderr"),
            "ml_static": float(ml[f"static_{name}"]), "engine_static": float(engine[f"static_{name}"]),
            "ml_relative": ml_rel, "ml_relative_stderr": ml_err,
            "engine_relative": engine_rel, "engine_relative_stderr": engine_err,
            "relative_difference": difference, "combined_stderr": combined,
            "agree": None if combined is None else bool(abs(difference) <= combined),
        }
    return {
        "temperature_k": float(ml["temperature_k"]),
        "n_checked": int(ml["n_samples"]),
        "n_checked_engine": int(engine["n_samples"]),
        "headline": ml.get("headline"),
        "parameters": rows,
    }


@calcfunction
def compare_phonon_modes(ml_modes: PhononModesData, engine_modes: PhononModesData) -> orm.Dict:
    """ML vs engine phonon frequencies of the same supercell (cm⁻¹; see :func:`mode_differences`)."""
    ml = ml_modes.get_modes().frequencies_thz * THZ_TO_CM1
    engine = engine_modes.get_modes().frequencies_thz * THZ_TO_CM1
    return orm.Dict({"observable": "phonon_mode_comparison", "num_atoms": ml_modes.base.attributes.get("num_atoms"),
                     **mode_differences(ml, engine)})


@calcfunction
def compare_renormalisation(ml_average: orm.Dict, engine_average: orm.Dict) -> orm.Dict:
    """ML vs engine renormalisation on the same configurations at one temperature (see :func:`renormalisation_check`)."""
    return orm.Dict({"observable": "renormalisation_check",
                     **renormalisation_check(ml_average.get_dict(), engine_average.get_dict())})


def active_learning_section(stages: Mapping, loop: Mapping, committee: Mapping | None,
                            round0_loop: Mapping | None, round0_committee: Mapping | None) -> dict | None:
    """Round 0 vs round 1 of active learning: the headline parameter per temperature (value, sampling standard
    error, committee std) before and after retraining, and what was added (None when not requested)."""
    request = stages.get("active_learning")
    if not request:
        return None
    out = {**request, "rounds": None}
    if round0_loop is None:
        return out

    def rows(loop_summary: Mapping, spread: Mapping | None) -> list[dict]:
        headline = loop_summary.get("headline")
        spreads = {r["temperature_k"]: r for r in (spread or {}).get("rows", [])}
        out_rows = []
        for row in loop_summary.get("rows", []):
            t = float(row["temperature_k"])
            parameter = spreads.get(t, {}).get("parameters", {}).get(headline, {})
            out_rows.append({"temperature_k": t, "value": row.get(headline),
                             "sampling_stderr": row.get(f"{headline}_stderr"),
                             "relative": row.get(f"{headline}_relative"),
                             "committee_std": parameter.get("committee_std"),
                             "relative_committee_std": parameter.get("relative_committee_std"),
                             "num_flagged": len(spreads.get(t, {}).get("flagged", [])),
                             "max_forces_std_ev_per_angstrom": spreads.get(t, {}).get("max_forces_std_ev_per_angstrom"),
                             "max_hamiltonian_std_mev": spreads.get(t, {}).get("max_hamiltonian_std_mev")})
        return out_rows

    out["headline"] = loop.get("headline")
    out["rounds"] = [rows(round0_loop, round0_committee), rows(loop, committee)]
    return out


@calcfunction
def summarize_pipeline(loop_summary: orm.Dict, stages: orm.Dict, phonon_comparison: orm.Dict | None = None,
                       committee: orm.Dict | None = None, round0_loop_summary: orm.Dict | None = None,
                       round0_committee: orm.Dict | None = None, **checks: orm.Dict) -> orm.Dict:
    """The pipeline's summary: ML results per temperature ± sampling error (from the loop's summary), the
    committee uncertainty (``committee``: ``summarize_committee`` of the last round: value ± sampling error ±
    committee std, flagged samples), the ground-truth section (``checks``: one :func:`compare_renormalisation`
    Dict per temperature, and the phonon comparison without its per-mode list), active learning (round 0:
    ``round0_loop_summary`` / ``round0_committee``) and ``stages`` (dataset sizes, training metrics, wall
    times, as collected by the WorkChain)."""
    loop = loop_summary.get_dict()
    ground_truth = None
    if checks or phonon_comparison is not None:
        phonons = None
        if phonon_comparison is not None:
            phonons = {k: v for k, v in phonon_comparison.get_dict().items() if k != "abs_difference_cm1"}
        rows = sorted((check.get_dict() for check in checks.values()), key=lambda row: row["temperature_k"])
        ground_truth = {"renormalisation": rows, "phonons": phonons}
    values = stages.get_dict()
    spread = None if committee is None else committee.get_dict()
    learning = active_learning_section(
        values, loop, spread, None if round0_loop_summary is None else round0_loop_summary.get_dict(),
        None if round0_committee is None else round0_committee.get_dict())
    values.pop("active_learning", None)
    return orm.Dict({
        "observable": SUMMARY_OBSERVABLE,
        "material": loop.get("material", ""),
        "estimator": loop.get("estimator"),
        "headline": loop.get("headline"),
        "sampler": loop.get("sampler"),
        "supercell_cells": loop.get("supercell_cells"),
        "num_atoms": loop.get("num_atoms"),
        "temperatures_k": loop.get("temperatures_k"),
        "static_lattice": loop.get("static_lattice"),
        "ml": loop.get("rows"),
        "loop_summary": loop,
        "uncertainty": spread,
        "ground_truth": ground_truth,
        "active_learning": learning,
        **values,
    })
