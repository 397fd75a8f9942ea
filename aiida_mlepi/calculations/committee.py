"""Calcfunctions of the committee uncertainty and of the active-learning round (`MlepiWorkChain`).

* :func:`committee_spread` — at one temperature: per sample the spread of the members' forces (eV/Å) and
  H(R) (meV), the samples above the threshold, and the member std of every band parameter (and of its
  change vs each member's own static lattice) from each member's configuration-averaged spectrum. Inputs
  are the member nodes themselves, so the provenance reads model → forces / H → spectrum → estimate →
  spread;
* :func:`summarize_committee` — the loop's rows with the committee std next to the sampling error;
* :func:`plot_committee` — PNG of the above (change vs T with both errors; per-sample spreads vs thresholds);
* :func:`extend_configuration_set` — a forces training set plus engine-labelled structures (active learning).

Link labels of :func:`committee_spread`: ``forces_m<k>_<sample>`` (ArrayData of ``compute_model_forces``),
``hamiltonian_m<k>_<sample>`` (HamiltonianData), ``average_m<k>`` (the member's ``average`` Dict).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.committee import (CommitteeThreshold, force_spread, hamiltonian_spread, member_std)
from aiida_mlepi.core.dataset import ConfigurationSet
from aiida_mlepi.data.configuration_set import ConfigurationSetData

_LABEL = re.compile(r"^(forces|hamiltonian)_m(\d+)_(.+)$")
_AVERAGE = re.compile(r"^average_m(\d+)$")
#: axis labels of the headline parameters in the committee plot
PLOT_LABELS = {"velocity_m_per_s": r"$v_0$", "gamma1_ev": r"$\gamma_1$", "gap_ev": r"$E_\mathrm{g}$"}
#: the band parameters whose member spread is reported (those a spectral estimate can contain)
OBSERVABLE_KEYS = ("velocity_m_per_s", "gamma1_ev", "gap_ev", "vbm_ev", "cbm_ev")


def group_member_nodes(nodes: Mapping[str, orm.Data]) -> tuple[dict, dict, dict]:
    """``{sample: {member: forces}}``, ``{sample: {member: H}}``, ``{member: average}`` from the link labels."""
    forces: dict[str, dict[int, orm.Data]] = {}
    hamiltonians: dict[str, dict[int, orm.Data]] = {}
    averages: dict[int, orm.Data] = {}
    for key, node in nodes.items():
        match = _LABEL.match(key)
        if match:
            kind, member, sample = match.groups()
            (forces if kind == "forces" else hamiltonians).setdefault(sample, {})[int(member)] = node
            continue
        match = _AVERAGE.match(key)
        if not match:
            raise ValueError(f"unexpected committee input {key!r}")
        averages[int(match.group(1))] = node
    return forces, hamiltonians, averages


def observable_spread(averages: list[Mapping]) -> dict:
    """Per band parameter: the members' values, their std, and the same for the change vs each member's own
    static lattice (``*_relative``) and the shift (``*_shift``). ``averages`` in member order (member 0 first)."""
    out = {}
    for key in OBSERVABLE_KEYS:
        if not all(key in a for a in averages):
            continue
        entry = {"values": [float(a[key]) for a in averages], "std": member_std([a[key] for a in averages])}
        for suffix in ("relative", "shift"):
            name = f"{key}_{suffix}"
            if all(name in a for a in averages):
                entry[f"{suffix}_values"] = [float(a[name]) for a in averages]
                entry[f"{suffix}_std"] = member_std([a[name] for a in averages])
        out[key] = entry
    return out


def sample_spreads(forces: Mapping[str, Mapping[int, np.ndarray]],
                   hamiltonians: Mapping[str, Mapping[int, object]],
                   threshold: CommitteeThreshold) -> tuple[dict, list[str]]:
    """Per sample the forces spread (eV/Å), the H spread (meV) and what exceeds ``threshold``; the flagged labels."""
    rows, flagged = {}, []
    for sample in sorted(set(forces) | set(hamiltonians)):
        f = forces.get(sample, {})
        h = hamiltonians.get(sample, {})
        f_spread = force_spread([f[m] for m in sorted(f)]) if f else None
        h_spread = hamiltonian_spread([h[m] for m in sorted(h)]) if h else None
        h_mev = None if h_spread is None else 1e3 * h_spread
        exceeded = threshold.exceeded(f_spread, h_mev)
        rows[sample] = {"forces_std_ev_per_angstrom": f_spread, "hamiltonian_std_mev": h_mev, "exceeded": exceeded,
                        "num_phonon_members": len(f), "num_electron_members": len(h)}
        if exceeded:
            flagged.append(sample)
    return rows, flagged


def _max(values) -> float | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


@calcfunction
def committee_spread(temperature_k: orm.Float, threshold: orm.Dict, **members: orm.Data) -> orm.Dict:
    """The committee spread at one temperature (see the module docstring for the link labels).

    Output Dict (``observable = 'committee_spread'``): ``samples`` (label → forces_std_ev_per_angstrom,
    hamiltonian_std_mev, exceeded), ``flagged`` (labels above ``threshold``), ``observables`` (band parameter →
    member values and std; ``*_relative``: change vs each member's own static lattice), the member counts and
    the largest spreads.
    """
    forces, hamiltonians, averages = group_member_nodes(members)
    limits = CommitteeThreshold.from_dict(threshold.get_dict())
    force_arrays = {s: {m: node.get_array("forces") for m, node in nodes.items()} for s, nodes in forces.items()}
    h_objects = {s: {m: node.get_hamiltonian() for m, node in nodes.items()} for s, nodes in hamiltonians.items()}
    rows, flagged = sample_spreads(force_arrays, h_objects, limits)
    ordered = [averages[m].get_dict() for m in sorted(averages)]
    return orm.Dict({
        "observable": "committee_spread",
        "temperature_k": float(temperature_k.value),
        "num_phonon_members": max((len(v) for v in forces.values()), default=0),
        "num_electron_members": max((len(v) for v in hamiltonians.values()), default=len(averages)),
        "spread": "sample standard deviation over the members (ddof=1)",
        "threshold": limits.as_dict(),
        "samples": rows,
        "flagged": flagged,
        "max_forces_std_ev_per_angstrom": _max(r["forces_std_ev_per_angstrom"] for r in rows.values()),
        "max_hamiltonian_std_mev": _max(r["hamiltonian_std_mev"] for r in rows.values()),
        "observables": observable_spread(ordered) if ordered else {},
    })


def uncertainty_rows(loop_rows: list[Mapping], spreads: list[Mapping]) -> list[dict]:
    """Per temperature: each band parameter's ML value (member 0, the loop), its sampling standard error and
    the committee std, and the same for its change vs the static lattice."""
    by_t = {float(s["temperature_k"]): s for s in spreads}
    rows = []
    for loop in loop_rows:
        t = float(loop["temperature_k"])
        spread = by_t.get(t, {})
        row = {"temperature_k": t, "n_samples": loop.get("n_samples"), "flagged": spread.get("flagged", []),
               "max_forces_std_ev_per_angstrom": spread.get("max_forces_std_ev_per_angstrom"),
               "max_hamiltonian_std_mev": spread.get("max_hamiltonian_std_mev"), "parameters": {}}
        for key, entry in spread.get("observables", {}).items():
            if key not in loop:
                continue
            row["parameters"][key] = {
                "value": float(loop[key]), "sampling_stderr": loop.get(f"{key}_stderr"), "committee_std": entry["std"],
                "relative": loop.get(f"{key}_relative"), "relative_sampling_stderr": loop.get(f"{key}_relative_stderr"),
                "relative_committee_std": entry.get("relative_std"), "member_values": entry["values"]}
        rows.append(row)
    return rows


@calcfunction
def summarize_committee(loop_summary: orm.Dict, **spreads: orm.Dict) -> orm.Dict:
    """ML value ± sampling standard error ± committee std per temperature (``observable = 'committee_summary'``),
    the flagged samples per temperature and the thresholds (``spreads``: the :func:`committee_spread` Dicts)."""
    loop = loop_summary.get_dict()
    values = sorted((s.get_dict() for s in spreads.values()), key=lambda s: s["temperature_k"])
    return orm.Dict({
        "observable": "committee_summary",
        "headline": loop.get("headline"),
        "num_phonon_members": max((s["num_phonon_members"] for s in values), default=0),
        "num_electron_members": max((s["num_electron_members"] for s in values), default=0),
        "threshold": values[0]["threshold"] if values else None,
        "rows": uncertainty_rows(loop.get("rows", []), values),
        "flagged": {f"{s['temperature_k']:g}": s["flagged"] for s in values},
        "num_flagged": sum(len(s["flagged"]) for s in values),
    })


@calcfunction
def plot_committee(summary: orm.Dict, **spreads: orm.Dict) -> orm.SinglefileData:
    """PNG ``committee_uncertainty.png`` of a :func:`summarize_committee` Dict and its :func:`committee_spread`
    Dicts (see :func:`aiida_mlepi.core.plotting_committee.plot_committee_uncertainty`)."""
    import tempfile
    from pathlib import Path

    from aiida_mlepi.core.plotting_committee import plot_committee_uncertainty

    data = summary.get_dict()
    samples = {f"{s['temperature_k']:g}": s["samples"] for s in (node.get_dict() for node in spreads.values())}
    headline = data.get("headline") or "velocity_m_per_s"
    title = (f"committee of {data['num_phonon_members']} HedgeNet-Phonon + {data['num_electron_members']} "
             "HedgeNet-Electron members")
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_committee_uncertainty(data["rows"], samples, data.get("threshold") or {},
                                          Path(tmp) / "committee_uncertainty.png", parameter=headline,
                                          label=PLOT_LABELS.get(headline, headline), title=title)
        return orm.SinglefileData(file=str(path), filename="committee_uncertainty.png")


@calcfunction
def extend_configuration_set(dataset: ConfigurationSetData, **labelled: orm.Data) -> ConfigurationSetData:
    """``dataset`` plus engine-labelled structures: ``structure_<label>`` (LayeredStructureData) and
    ``forces_<label>`` (ArrayData ``forces`` eV/Å, ``energy`` eV, as ``compute_engine_forces`` gives)."""
    base = dataset.get_configuration_set()
    labels = sorted(key[len("structure_"):] for key in labelled if key.startswith("structure_"))
    extra = ConfigurationSet([labelled[f"structure_{label}"].get_ase() for label in labels],
                             np.array([float(labelled[f"forces_{label}"].get_array("energy")[0]) for label in labels]),
                             [labelled[f"forces_{label}"].get_array("forces") for label in labels])
    combined = base + extra
    attrs = dataset.base.attributes
    node = ConfigurationSetData.from_configuration_set(combined, material=attrs.get("material", None),
                                                       source=attrs.get("source", None))
    node.base.attributes.set("added_by_active_learning", labels)
    node.base.attributes.set("base_num_configurations", len(base))
    return node
