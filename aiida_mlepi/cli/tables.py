"""Plain-text tables of the EPI-loop results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def fermi_velocity_table(summary: Mapping) -> str:
    """⟨vF⟩(T) table (10⁶ m/s) with the standard error and the change relative to the static lattice."""
    v0 = summary["static_lattice_m_per_s"]
    lines = [
        f"material: {summary['material']}    static lattice vF = {v0 / 1e6:.5f} x 10^6 m/s",
        f"{'T (K)':>8} {'samples':>8} {'<vF> (10^6 m/s)':>17} {'stderr':>10} {'change':>9}",
    ]
    for t, n, mean, err, rel in zip(summary["temperatures_k"], summary["n_samples"], summary["mean_m_per_s"],
                                    summary["stderr_m_per_s"], summary["relative_change"]):
        error = f"{err / 1e6:10.5f}" if err is not None else f"{'n/a':>10}"
        lines.append(f"{t:8.1f} {n:8d} {mean / 1e6:17.5f} {error} {100 * rel:8.2f}%")
    return "\n".join(lines)


def convergence_table(averages: Sequence[Mapping], checkpoints: Sequence[int] = (2, 4, 8, 16, 32, 64, 128, 256, 500)) -> str:
    """Running ⟨vF⟩ (10⁶ m/s) after n samples, per temperature (paper Fig. 4e as numbers)."""
    lines = [f"{'T (K)':>8} " + " ".join(f"{'n=' + str(n):>10}" for n in checkpoints)]
    for avg in sorted(averages, key=lambda a: a["temperature_k"]):
        running = dict(zip(avg["running_n"], avg["running_mean_m_per_s"]))
        cells = [f"{running[n] / 1e6:10.5f}" if n in running else f"{'':>10}" for n in checkpoints]
        lines.append(f"{avg['temperature_k']:8.1f} " + " ".join(cells))
    return "\n".join(lines)
