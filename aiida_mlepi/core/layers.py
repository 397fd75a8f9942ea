"""Layer assignment for layered (van der Waals) structures.

Layer ids are stored on :class:`ase.Atoms` as the per-atom integer array ``layer_ids``
(``atoms.arrays["layer_ids"]``), numbered 0, 1, … from the bottom (smallest z) up. ASE copies,
repeats, slices and writes (extxyz) such arrays, so the ids travel with the structure.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

LAYER_ARRAY = "layer_ids"

#: default smallest vertical gap (Å) between two atomic planes that separates two layers.
#: Inside a graphene layer the gap is ~0; inside a MoTe2 layer the Te–Mo gap is ~1.8 Å;
#: between vdW layers it is ≥ 2.5 Å.
DEFAULT_LAYER_GAP_ANGSTROM = 2.0


class LayerAssignmentError(ValueError):
    """The structure cannot be split into layers as requested."""


def assign_layers_by_gap(
    atoms: Atoms, min_gap: float = DEFAULT_LAYER_GAP_ANGSTROM
) -> np.ndarray:
    """Return layer ids (0 = lowest) by splitting the atoms at vertical gaps larger than ``min_gap`` (Å).

    The vertical direction is the Cartesian z axis; the structure must have its layers stacked
    along z (as all builders here produce). If the cell is periodic along z (bulk), the gap across
    the periodic boundary is considered too, and the layer that straddles it is numbered 0.
    """
    if len(atoms) == 0:
        raise LayerAssignmentError("cannot assign layers of an empty structure")
    z = atoms.positions[:, 2]
    order = np.argsort(z, kind="stable")
    zs = z[order]
    gaps = np.diff(zs)
    breaks = np.flatnonzero(gaps > min_gap)
    sorted_ids = np.zeros(len(atoms), dtype=int)
    for b in breaks:
        sorted_ids[b + 1 :] += 1
    if atoms.pbc[2] and len(breaks) > 0:
        c_z = atoms.cell[2, 2]
        wrap_gap = zs[0] + c_z - zs[-1]
        if wrap_gap <= min_gap:
            # the top and the bottom group are one layer across the periodic boundary
            sorted_ids[sorted_ids == sorted_ids[-1]] = 0
            sorted_ids = np.unique(sorted_ids, return_inverse=True)[1]
    ids = np.empty(len(atoms), dtype=int)
    ids[order] = sorted_ids
    return ids


def set_layer_ids(atoms: Atoms, layer_ids: np.ndarray | list[int] | None = None, *,
                  min_gap: float = DEFAULT_LAYER_GAP_ANGSTROM) -> Atoms:
    """Attach layer ids to ``atoms`` in place (and return it).

    With ``layer_ids=None`` they are assigned from z-gaps (:func:`assign_layers_by_gap`);
    explicit ids must be non-negative integers, one per atom, and are renumbered to 0…n-1
    keeping their order.
    """
    if layer_ids is None:
        ids = assign_layers_by_gap(atoms, min_gap)
    else:
        ids = np.asarray(layer_ids)
        if ids.shape != (len(atoms),):
            raise LayerAssignmentError(
                f"expected one layer id per atom ({len(atoms)}), got shape {ids.shape}"
            )
        if not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
            raise LayerAssignmentError("layer ids must be non-negative integers")
        ids = np.unique(ids, return_inverse=True)[1]
    if LAYER_ARRAY in atoms.arrays:
        del atoms.arrays[LAYER_ARRAY]
    atoms.set_array(LAYER_ARRAY, ids.astype(int))
    return atoms


def get_layer_ids(atoms: Atoms, *, min_gap: float = DEFAULT_LAYER_GAP_ANGSTROM) -> np.ndarray:
    """Layer ids of ``atoms``: the stored ``layer_ids`` array, or assigned from z-gaps if absent."""
    if LAYER_ARRAY in atoms.arrays:
        return np.asarray(atoms.arrays[LAYER_ARRAY], dtype=int)
    return assign_layers_by_gap(atoms, min_gap)


def number_of_layers(atoms: Atoms) -> int:
    """Number of distinct layers of ``atoms``."""
    return int(len(np.unique(get_layer_ids(atoms))))
