"""Calcfunction: an LCAO H(R), S(R) training set → its Löwdin-orthogonal H(R) (:mod:`aiida_mlepi.core.orthogonalisation`).

HedgeNet-Electron learns H(R) in an orthogonal basis; `MlepiWorkChain` passes the H(R) of a non-orthogonal
engine (GPAW LCAO) through :func:`orthogonalise_hamiltonians` before training, so the provenance reads
engine H(R), S(R) → orthogonal H(R) → model. The ground-truth check keeps the engine's own H(R), S(R): what
the orthogonalisation and its truncation cost shows up in the ML-vs-engine difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.orthogonalisation import (DEFAULT_MESH_LENGTH_ANGSTROM, OrthogonalisationError,
                                                lowdin_orthogonalise)
from aiida_mlepi.data.hamiltonian import HamiltonianData

#: output link label of the report Dict (the H(R) keep their input labels)
REPORT_LABEL = "orthogonalisation_report"
#: attributes copied from each input H(R) node to its orthogonal partner (queries by material / sample)
_CARRIED_ATTRIBUTES = ("material", "temperature_k", "sample_index")


@dataclass(frozen=True)
class OrthogonalisationSettings:
    """Blocks kept (the network's block cutoffs, Å) and the transform's k-mesh supercell length (Å)."""

    cutoff_intra_angstrom: float
    cutoff_inter_angstrom: float
    mesh_length_angstrom: float = DEFAULT_MESH_LENGTH_ANGSTROM

    @classmethod
    def from_dict(cls, values: dict) -> "OrthogonalisationSettings":
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise OrthogonalisationError(f"unknown orthogonalisation settings {unknown}")
        return cls(**{k: float(v) for k, v in values.items()})


@calcfunction
def orthogonalise_hamiltonians(settings: orm.Dict, **hamiltonians: HamiltonianData) -> dict:
    """The Löwdin-orthogonal H(R) (eV, S = 1) of every non-orthogonal input, same labels, and
    ``orthogonalisation_report``: per label the transform's mesh, kept blocks, smallest S(k) eigenvalue and the
    band error (meV, bands within ±5 eV of the Fermi level at k-points off the mesh) of the truncation; and
    their maximum. Raises :class:`OrthogonalisationError` for a linearly dependent basis."""
    config = OrthogonalisationSettings.from_dict(settings.get_dict())
    outputs, per_label = {}, {}
    for label, node in hamiltonians.items():
        h_tilde, report = lowdin_orthogonalise(node.get_hamiltonian(), config.cutoff_intra_angstrom,
                                               config.cutoff_inter_angstrom,
                                               mesh_length_angstrom=config.mesh_length_angstrom)
        carried = {key: node.base.attributes.get(key, None) for key in _CARRIED_ATTRIBUTES
                   if node.base.attributes.get(key, None) is not None}
        outputs[label] = HamiltonianData.from_hamiltonian(h_tilde, **carried)
        per_label[label] = {"mesh": list(report.mesh), "num_blocks": report.num_blocks,
                            "min_overlap_eigenvalue": report.min_overlap_eigenvalue,
                            "band_error_max_mev": 1e3 * report.band_error_max_ev,
                            "band_error_rms_mev": 1e3 * report.band_error_rms_ev}
    errors = [row["band_error_max_mev"] for row in per_label.values()]
    outputs[REPORT_LABEL] = orm.Dict({
        "method": "lowdin", **{k: getattr(config, k) for k in config.__dataclass_fields__},
        "band_error_max_mev": float(np.max(errors)) if errors else 0.0,
        "band_error_rms_mev": float(np.sqrt(np.mean(np.square([r["band_error_rms_mev"] for r in per_label.values()]))))
        if per_label else 0.0,
        "min_overlap_eigenvalue": min((r["min_overlap_eigenvalue"] for r in per_label.values()), default=1.0),
        "per_structure": per_label})
    return outputs
