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
