"""Committee (ensemble) uncertainty of the ML models: the spread of several independently trained members.

A committee is M networks of the same architecture trained with different seeds (initial weights, batch
order) and different train/validation splits. Their disagreement on a structure is a cheap, standard
estimate of the model error there (query-by-committee; e.g. Imbalzano et al., J. Chem. Phys. 154, 074102
(2021) for committees of ML potentials). Spreads are the *sample* standard deviation over the members
(``ddof=1``: with two members a and b, |a − b|/√2); a committee of one has no spread (None).

* forces: :func:`force_spread` — RMS over atoms of the member std of the force vector,
  √(mean_i Σ_α var_m F_iα) (eV/Å);
* H(R): :func:`hamiltonian_spread` — RMS over all matrix elements of the H blocks of the member std (eV);
  members are aligned block by block through their edges (R, i, j);
* observables: :func:`member_std` of the band parameters each member's configuration-averaged spectrum gives.

No AiiDA here; the calcfunctions are in :mod:`aiida_mlepi.calculations.committee`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .hamiltonian import HamiltonianR


class CommitteeError(ValueError):
    """Members that cannot be compared (different atoms, blocks or shapes)."""


def member_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation over the members (ddof=1); None for fewer than two members."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return None
    return float(np.std(array, ddof=1))


def force_spread(forces: Sequence[np.ndarray]) -> float | None:
    """RMS over atoms of the member std of the force vectors (eV/Å): √(mean_i Σ_α var_m F_iα).

    ``forces``: one (N, 3) array (eV/Å) per member. None for fewer than two members.
    """
    if len(forces) < 2:
        return None
    stack = np.stack([np.asarray(f, dtype=float) for f in forces])
    if stack.ndim != 3 or stack.shape[2] != 3:
        raise CommitteeError(f"forces must be (N, 3) per member, got {stack.shape[1:]}")
    variance = np.var(stack, axis=0, ddof=1)  # (N, 3)
    return float(np.sqrt(variance.sum(axis=1).mean()))


def _blocks_by_edge(h: HamiltonianR) -> dict[tuple[int, ...], np.ndarray]:
    offsets = h.block_offsets
    return {tuple(int(x) for x in edge): h.h_values[offsets[k]:offsets[k + 1]] for k, edge in enumerate(h.edges)}


def hamiltonian_spread(hamiltonians: Sequence[HamiltonianR]) -> float | None:
    """RMS over the H-block matrix elements of the member std (eV); None for fewer than two members.

    Members of one committee share the block cutoffs, hence the same edges; they are compared on the blocks
    they all have (a block only some members predict counts with 0 eV for the others — it is a disagreement).
    """
    if len(hamiltonians) < 2:
        return None
    first = hamiltonians[0]
    for h in hamiltonians[1:]:
        if len(h) != len(first) or not np.array_equal(h.numbers, first.numbers):
            raise CommitteeError("the members' H(R) are not of the same structure")
    if all(np.array_equal(h.edges, first.edges) for h in hamiltonians[1:]):
        stack = np.stack([h.h_values for h in hamiltonians])
    else:
        blocks = [_blocks_by_edge(h) for h in hamiltonians]
        edges = sorted(set().union(*blocks))
        size = {edge: next(b[edge].size for b in blocks if edge in b) for edge in edges}
        stack = np.stack([np.concatenate([b.get(edge, np.zeros(size[edge])) for edge in edges]) for b in blocks])
    if stack.shape[1] == 0:
        return 0.0
    return float(np.sqrt(np.var(stack, axis=0, ddof=1).mean()))


@dataclass(frozen=True)
class CommitteeThreshold:
    """A sample is flagged when a spread exceeds its threshold (None: that spread is not checked)."""

    forces_ev_per_angstrom: float | None = None
    hamiltonian_mev: float | None = None

    @classmethod
    def from_dict(cls, values: Mapping | None) -> "CommitteeThreshold":
        values = dict(values or {})
        unknown = set(values) - {"forces_ev_per_angstrom", "hamiltonian_mev"}
        if unknown:
            raise CommitteeError(f"unknown committee_threshold keys {sorted(unknown)}; "
                                 "known: forces_ev_per_angstrom (eV/Å), hamiltonian_mev (meV)")
        out = {}
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise CommitteeError(f"committee_threshold.{key} must be a number ≥ 0, got {value!r}")
            out[key] = float(value)
        return cls(**out)

    def as_dict(self) -> dict:
        return {"forces_ev_per_angstrom": self.forces_ev_per_angstrom, "hamiltonian_mev": self.hamiltonian_mev}

    def exceeded(self, forces_ev_per_angstrom: float | None, hamiltonian_mev: float | None) -> list[str]:
        """Which spreads of a sample exceed their thresholds ('forces', 'hamiltonian')."""
        out = []
        if None not in (forces_ev_per_angstrom, self.forces_ev_per_angstrom) \
                and forces_ev_per_angstrom > self.forces_ev_per_angstrom:
            out.append("forces")
        if None not in (hamiltonian_mev, self.hamiltonian_mev) and hamiltonian_mev > self.hamiltonian_mev:
            out.append("hamiltonian")
        return out
