"""Plain-text tables of the EPI-loop results (velocities in 10⁶ m/s, temperatures in K)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aiida_mlepi.core.units import VELOCITY_DISPLAY_M_PER_S


def fermi_velocity_table(summary: Mapping) -> str:
    """⟨vF⟩(T) table (10⁶ m/s) with the standard error and the signed change relative to the static lattice."""
    v0 = summary["static_lattice_m_per_s"]
    lines = [
        f"material: {summary['material']}    static lattice vF = {v0 / VELOCITY_DISPLAY_M_PER_S:.5f} x 10^6 m/s",
        f"{'T (K)':>8} {'samples':>8} {'<vF> (10^6 m/s)':>17} {'stderr':>10} {'change':>9}",
    ]
    for t, n, mean, err, rel in zip(summary["temperatures_k"], summary["n_samples"], summary["mean_m_per_s"],
                                    summary["stderr_m_per_s"], summary["relative_change"]):
        error = f"{err / VELOCITY_DISPLAY_M_PER_S:10.5f}" if err is not None else f"{'n/a':>10}"
        lines.append(f"{t:8.1f} {n:8d} {mean / VELOCITY_DISPLAY_M_PER_S:17.5f} {error} {100 * rel:+7.2f} %")
    return "\n".join(lines)


def sample_checkpoints(sample_counts: Iterable[int]) -> list[int]:
    """The sample counts a convergence table shows: powers of 2 (from 2) up to the largest count, and each last count.

    Only counts that exist are returned: ``sample_counts`` are the available n (e.g. 2, 4, 6, … with ± pairs).
    """
    available = set(int(n) for n in sample_counts)
    if not available:
        return []
    powers = {2 ** k for k in range(1, max(available).bit_length() + 1)}
    return sorted(n for n in available if n in powers or n == max(available))


def convergence_table(averages: Sequence[Mapping]) -> str:
    """Running ⟨vF⟩ (10⁶ m/s) after n samples, per temperature (paper Fig. 4e as numbers).

    Columns: the sample counts of :func:`sample_checkpoints` over all temperatures (each row's last n included).
    """
    rows = sorted(averages, key=lambda a: a["temperature_k"])
    checkpoints = sorted(set().union(*(sample_checkpoints(avg["running_n"]) for avg in rows))) if rows else []
    lines = [f"{'T (K)':>8} " + " ".join(f"{'n=' + str(n):>10}" for n in checkpoints)]
    for avg in rows:
        running = dict(zip(avg["running_n"], avg["running_mean_m_per_s"]))
        cells = [f"{running[n] / VELOCITY_DISPLAY_M_PER_S:10.5f}" if n in running else f"{'':>10}"
                 for n in checkpoints]
        lines.append(f"{avg['temperature_k']:8.1f} " + " ".join(cells))
    return "\n".join(lines)


def _value_with_error(value, error, scale: float = 1.0, digits: int = 5) -> str:
    text = f"{value / scale:.{digits}f}"
    return text + (f" ± {error / scale:.{digits}f}" if error is not None else " ± n/a")


def band_renormalisation_table(summary: Mapping) -> str:
    """Band parameters (T) from the unfolded spectral function: value ± s.e., signed change vs the static
    lattice, the k window and the disorder gap at the folded point (estimator ``spectral:*``)."""
    model = summary["estimator"].split(":", 1)[-1]
    static = summary["static_lattice"]
    window = summary["k_window_inv_angstrom"]
    header = (f"material: {summary['material']}    estimator: {summary['estimator']} (peaks of the configuration-"
              f"averaged unfolded A(k,E), broadening {1e3 * summary.get('broadening_ev', 0):.0f} meV)\n"
              f"supercell: {summary.get('supercell_cells')} primitive cells ({summary.get('num_atoms')} atoms), "
              f"sampler: {summary.get('sampler')}, fit window q = {window[0]:g}-{window[1]:g} 1/Angstrom from K "
              "(clear of the folded point)\n"
              "errors: ±1 standard error over configurations (jackknife; ± pairs count once)")
    if model == "band-edges":
        lines = [header, f"static lattice: gap = {static['gap_ev']:.4f} eV",
                 f"{'T (K)':>8} {'samples':>8} {'gap (eV)':>20} {'change (meV)':>13} {'VBM shift':>10} {'CBM shift':>10}"]
        for row in summary["rows"]:
            lines.append(f"{row['temperature_k']:8.1f} {row['n_samples']:8d} "
                         f"{_value_with_error(row['gap_ev'], row.get('gap_ev_stderr'), digits=4):>20} "
                         f"{1e3 * row['gap_ev_shift']:+13.1f} {1e3 * row['vbm_ev_shift']:+10.1f} "
                         f"{1e3 * row['cbm_ev_shift']:+10.1f}")
        return "\n".join(lines)
    lines = [header, f"static lattice: v0 = {static['velocity_m_per_s'] / VELOCITY_DISPLAY_M_PER_S:.5f} x 10^6 m/s"
             + (f", gamma1 = {static['gamma1_ev']:.4f} eV" if "gamma1_ev" in static else "")]
    title = f"{'T (K)':>8} {'samples':>8} {'v0 (10^6 m/s)':>22} {'change':>16}"
    if model == "ab-bilayer":
        title += f" {'gamma1 (eV)':>18} {'change (meV)':>13}"
    title += f" {'gap at folded K (meV)':>22}"
    lines.append(title)
    for row in summary["rows"]:
        rel_err = row.get("velocity_m_per_s_relative_stderr")
        change = f"{100 * row['velocity_m_per_s_relative']:+.2f}" + (f" ± {100 * rel_err:.2f}" if rel_err is not None
                                                                        else "") + " %"
        line = (f"{row['temperature_k']:8.1f} {row['n_samples']:8d} "
                f"{_value_with_error(row['velocity_m_per_s'], row.get('velocity_m_per_s_stderr'), VELOCITY_DISPLAY_M_PER_S):>22} "
                f"{change:>16}")
        if model == "ab-bilayer":
            shift_err = row.get("gamma1_ev_stderr")
            line += (f" {_value_with_error(row['gamma1_ev'], shift_err, digits=4):>18} "
                     f"{1e3 * row['gamma1_ev_shift']:+13.1f}")
        gap = row["folded_gap_ev"]
        line += f" {1e3 * gap['mean']:9.1f} ± {1e3 * gap['std']:.1f} (max {1e3 * gap['max']:.0f})"
        lines.append(line)
    return "\n".join(lines)


def band_convergence_table(summary: Mapping) -> str:
    """Running value of the headline parameter (10⁶ m/s for velocities) ± s.e. vs the number of configurations."""
    headline = summary["headline"]
    scale = VELOCITY_DISPLAY_M_PER_S if headline.endswith("m_per_s") else 1.0
    rows = summary["rows"]
    counts = sorted(set().union(*(row["running_n"] for row in rows))) if rows else []
    lines = [f"{'T (K)':>8} " + " ".join(f"{'n=' + str(n):>20}" for n in counts)]
    for row in rows:
        values = dict(zip(row["running_n"], zip(row[f"running_{headline}"], row[f"running_{headline}_stderr"])))
        cells = [f"{_value_with_error(*values[n], scale):>20}" if n in values else f"{'':>20}" for n in counts]
        lines.append(f"{row['temperature_k']:8.1f} " + " ".join(cells))
    return "\n".join(lines)


def summary_table(summary: Mapping) -> str:
    """The table of an EPI-loop summary, whichever estimator made it."""
    if summary.get("observable") == "band_renormalisation_summary":
        return band_renormalisation_table(summary)
    return fermi_velocity_table(summary)


def _percent(value, error) -> str:
    return f"{100 * value:+.2f}" + (f" ± {100 * error:.2f}" if error is not None else " ± n/a") + " %"


def ground_truth_table(summary: Mapping) -> str:
    """The 'ground-truth check' of a pipeline summary: ML vs engine on the checked samples (headline band
    parameter, 10⁶ m/s for velocities, changes vs each provider's own static lattice) and the phonon |Δω|."""
    truth = summary.get("ground_truth")
    lines = ["ground-truth check"]
    if not truth:
        return "\n".join(lines + ["  (not run: n_check = 0)"])
    headline = summary.get("headline") or "velocity_m_per_s"
    scale = VELOCITY_DISPLAY_M_PER_S if headline.endswith("m_per_s") else 1.0
    unit = "10^6 m/s" if scale != 1.0 else headline.rsplit("_", 1)[-1]
    lines.append(f"  {headline} ({unit}) on the same checked samples; change vs each provider's static lattice")
    lines.append(f"{'T (K)':>8} {'checked':>8} {'ML':>20} {'engine':>20} {'ML change':>18} {'engine change':>18} "
                 f"{'ML - engine':>18} {'agree':>6}")
    for row in truth["renormalisation"]:
        p = row["parameters"].get(headline)
        if p is None:
            continue
        agree = {True: "yes", False: "NO", None: "n/a"}[p["agree"]]
        lines.append(f"{row['temperature_k']:8.1f} {row['n_checked']:8d} "
                     f"{_value_with_error(p['ml'], p['ml_stderr'], scale):>20} "
                     f"{_value_with_error(p['engine'], p['engine_stderr'], scale):>20} "
                     f"{_percent(p['ml_relative'], p['ml_relative_stderr']):>18} "
                     f"{_percent(p['engine_relative'], p['engine_relative_stderr']):>18} "
                     f"{_percent(p['relative_difference'], p['combined_stderr']):>18} {agree:>6}")
    phonons = truth.get("phonons")
    if phonons:
        lines.append(f"  phonons of the production supercell ({phonons['num_modes']} modes, sorted): "
                     f"|dw| mean {phonons['mean_abs_difference_cm1']:.1f} cm^-1, max "
                     f"{phonons['max_abs_difference_cm1']:.1f} cm^-1; imaginary modes ML "
                     f"{phonons['num_imaginary_ml']}, engine {phonons['num_imaginary_engine']}")
    return "\n".join(lines)


def _three(value, sampling, committee, scale: float = 1.0, digits: int = 5, unit: str = "") -> str:
    """``value ± sampling ± committee`` (n/a where an error is missing)."""
    def fmt(x):
        return "n/a" if x is None else f"{x / scale:.{digits}f}"
    return f"{fmt(value)} ± {fmt(sampling)} ± {fmt(committee)}{unit}"


def _optional(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def uncertainty_table(summary: Mapping) -> str:
    """ML value ± sampling standard error ± committee std of the headline band parameter per temperature, the
    largest per-sample spreads and the samples above the committee threshold (pipeline summary)."""
    spread = summary.get("uncertainty")
    if not spread:
        return "ML uncertainty: no committee (committee sizes 1)"
    headline = spread.get("headline") or summary.get("headline") or "velocity_m_per_s"
    scale = VELOCITY_DISPLAY_M_PER_S if headline.endswith("m_per_s") else 1.0
    unit = "10^6 m/s" if scale != 1.0 else headline.rsplit("_", 1)[-1]
    lines = [f"ML uncertainty: committee of {spread['num_phonon_members']} HedgeNet-Phonon and "
             f"{spread['num_electron_members']} HedgeNet-Electron members (member 0 drives the loop); "
             "errors: ± sampling s.e. ± committee std",
             f"{'T (K)':>8} {'samples':>8} {headline + ' (' + unit + ')':>34} {'change vs static (%)':>28} "
             f"{'max F spread (eV/A)':>20} {'max H spread (meV)':>19} {'flagged':>8}"]
    for row in spread["rows"]:
        p = row["parameters"].get(headline, {})
        relative = [None if p.get(k) is None else 100 * p[k]
                    for k in ("relative", "relative_sampling_stderr", "relative_committee_std")]
        lines.append(f"{row['temperature_k']:8.1f} {row['n_samples'] or 0:8d} "
                     f"{_three(p.get('value'), p.get('sampling_stderr'), p.get('committee_std'), scale):>34} "
                     f"{_three(*relative, digits=2):>28} "
                     f"{_optional(row['max_forces_std_ev_per_angstrom'], 4):>20} "
                     f"{_optional(row['max_hamiltonian_std_mev'], 2):>19} {len(row['flagged']):>8d}")
    threshold = spread.get("threshold") or {}
    flagged = [f"{t} K: {', '.join(labels)}" for t, labels in spread.get("flagged", {}).items() if labels]
    lines.append(f"  samples above the threshold (forces {threshold.get('forces_ev_per_angstrom')} eV/A, H "
                 f"{threshold.get('hamiltonian_mev')} meV): " + ("; ".join(flagged) if flagged else "none"))
    learning = summary.get("active_learning")
    if learning:
        lines.append(active_learning_table(learning, scale, unit))
    return "\n".join(lines)


def active_learning_table(learning: Mapping, scale: float, unit: str) -> str:
    """Round 0 vs round 1 of active learning (headline value ± sampling s.e. ± committee std)."""
    if not learning.get("performed"):
        return "  active learning: requested, no sample above the threshold (no second round)"
    lines = [f"  active learning: {len(learning['labelled_samples'])} flagged sample(s) labelled by the engine and "
             "added to both training sets; every member retrained",
             f"{'T (K)':>8} {'round 0 (' + unit + ')':>34} {'round 1 (' + unit + ')':>34} {'flagged 0 -> 1':>15}"]
    before, after = learning["rounds"]
    for a, b in zip(before, after):
        lines.append(f"{a['temperature_k']:8.1f} {_three(a['value'], a['sampling_stderr'], a['committee_std'], scale):>34} "
                     f"{_three(b['value'], b['sampling_stderr'], b['committee_std'], scale):>34} "
                     f"{str(a['num_flagged']) + ' -> ' + str(b['num_flagged']):>15}")
    return "\n".join(lines)


def pipeline_table(summary: Mapping) -> str:
    """The MLEPI pipeline's result: the ML renormalisation table, then the ground-truth check and the stages."""
    lines = ["ML (HedgeNet-Phonon + HedgeNet-Electron) on the production supercell:",
             band_renormalisation_table(summary["loop_summary"]), "", uncertainty_table(summary), "",
             ground_truth_table(summary), ""]
    datasets = summary.get("datasets", {})
    for which in ("phonon", "electron"):
        entry = datasets.get(which)
        if entry:
            lines.append(f"{which} dataset: {entry['num_configurations']} configurations of {entry['num_atoms']} "
                         f"atoms ({entry['source']})")
    orthogonal = summary.get("orthogonalisation")
    if orthogonal:
        lines.append(f"electron basis: the engine's LCAO H(R), S(R) Löwdin-orthogonalised for HedgeNet-Electron, "
                     f"blocks within {orthogonal['cutoff_intra_angstrom']:g}/{orthogonal['cutoff_inter_angstrom']:g} Å "
                     f"(intra/inter): band error ≤ {orthogonal['band_error_max_mev']:.1f} meV "
                     f"(RMS {orthogonal['band_error_rms_mev']:.1f}) within ±5 eV of E_F")
    for which, entry in summary.get("training", {}).items():
        test = entry.get("test") or {}
        errors = ", ".join(f"{key} {value:.3g}" for key, value in test.items() if isinstance(value, (int, float)))
        members = len(entry.get("committee", [entry]))
        lines.append(f"{which} training: {entry['source']}, {entry.get('epochs_run', 'n/a')} epochs"
                     + (f"; test {errors}" if errors else "") + (f" (member 0 of {members})" if members > 1 else ""))
    wall = summary.get("wall_time_s", {})
    lines.append("wall time (s): " + ", ".join(f"{stage} {seconds:.0f}" for stage, seconds in wall.items()
                                                if seconds is not None))
    return "\n".join(lines)
