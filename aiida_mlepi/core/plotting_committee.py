"""Plot of the committee uncertainty (png, Agg): the observable's change vs T with the sampling error and the
committee spread, and every sample's forces spread vs H spread against the thresholds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .plotting import _save, plt


def plot_committee_uncertainty(rows: Sequence[Mapping], samples: Mapping[str, Mapping], threshold: Mapping,
                               path: str | Path, *, parameter: str = "velocity_m_per_s", label: str = r"$v_0$",
                               title: str = "") -> Path:
    """Left: change of ``parameter`` vs its static lattice (%) vs T — member 0 with ±1 sampling s.e. bars and
    the band ± committee std. Right: per sample, forces spread (eV/Å) vs
    H spread (meV), one colour per temperature, the thresholds as dashed lines.

    ``rows``: the ``rows`` of a committee summary; ``samples``: temperature label → the ``samples`` Dict of
    its committee spread; ``threshold``: forces_ev_per_angstrom / hamiltonian_mev (None: no line)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    t, value, sampling, committee = [], [], [], []
    for row in rows:
        p = row["parameters"].get(parameter)
        if not p or p.get("relative") is None:
            continue
        t.append(row["temperature_k"])
        value.append(100 * p["relative"])
        sampling.append(100 * (p.get("relative_sampling_stderr") or 0.0))
        committee.append(100 * (p.get("relative_committee_std") or 0.0))
    if t:
        low = [v - c for v, c in zip(value, committee)]
        high = [v + c for v, c in zip(value, committee)]
        left.fill_between(t, low, high, color="C1", alpha=0.3, label="± committee std")
        left.errorbar(t, value, yerr=sampling, fmt="o-", color="C0", capsize=3, label="member 0 ± sampling s.e.")
    left.axhline(0.0, color="0.5", lw=0.6, ls=":")
    left.set_xlabel("T (K)")
    left.set_ylabel(f"change of {label} vs static lattice (%)")
    left.legend(fontsize=8)
    for index, (temperature, values) in enumerate(sorted(samples.items(), key=lambda kv: float(kv[0]))):
        points = [(s["forces_std_ev_per_angstrom"], s["hamiltonian_std_mev"]) for s in values.values()
                  if s.get("forces_std_ev_per_angstrom") is not None and s.get("hamiltonian_std_mev") is not None]
        if points:
            x, y = zip(*points)
            right.scatter(x, y, color=f"C{index}", label=f"{temperature} K", s=20)
    if threshold.get("forces_ev_per_angstrom") is not None:
        right.axvline(threshold["forces_ev_per_angstrom"], color="C3", ls="--", lw=0.8, label="thresholds")
    if threshold.get("hamiltonian_mev") is not None:
        right.axhline(threshold["hamiltonian_mev"], color="C3", ls="--", lw=0.8)
    right.set_xlabel("forces spread, RMS over atoms (eV/Å)")
    right.set_ylabel("H(R) spread, RMS over blocks (meV)")
    right.legend(fontsize=8)
    right.set_title("per sample (committee std)", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
