"""Builders of layered structures: graphene monolayer, AB/AA bilayer graphene, supercells.

All structures are :class:`ase.Atoms` with ``pbc = (True, True, False)``, the layers normal to z,
a vacuum region along z, and ``layer_ids`` attached (see :mod:`aiida_mlepi.core.layers`).
Twisted bilayers and general heterostructure stacking live in :mod:`aiida_mlepi.core.stacking`.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import make_supercell

from .layers import set_layer_ids

#: graphene lattice constant (Å), experiment; the reference engine has its own relaxed value
GRAPHENE_LATTICE_CONSTANT = 2.46
#: interlayer distance of bilayer graphene (Å), experiment (graphite)
GRAPHENE_INTERLAYER_DISTANCE = 3.35
DEFAULT_VACUUM = 20.0  #: Å of vacuum along z


def hexagonal_cell(a: float, c: float) -> np.ndarray:
    """Hexagonal cell (rows are vectors, Å) with a 120° angle between a1 and a2."""
    return np.array([[a, 0.0, 0.0], [-0.5 * a, 0.5 * np.sqrt(3.0) * a, 0.0], [0.0, 0.0, c]])


def graphene_monolayer(a: float = GRAPHENE_LATTICE_CONSTANT, vacuum: float = DEFAULT_VACUUM,
                       symbol: str = "C") -> Atoms:
    """Two-atom graphene cell; sublattice A at the origin, B at (1/3, 2/3) (fractional)."""
    cell = hexagonal_cell(a, vacuum)
    frac = np.array([[0.0, 0.0, 0.5], [1.0 / 3.0, 2.0 / 3.0, 0.5]])
    atoms = Atoms(symbol * 2, scaled_positions=frac, cell=cell, pbc=(True, True, False))
    return set_layer_ids(atoms, [0, 0])


def graphene_bilayer(stacking: str = "AB", a: float = GRAPHENE_LATTICE_CONSTANT,
                     interlayer_distance: float = GRAPHENE_INTERLAYER_DISTANCE,
                     vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """Four-atom bilayer graphene cell, ``stacking`` 'AB' (Bernal) or 'AA'.

    AB: the top layer is shifted so that its A atom sits above the bottom layer's B atom.
    """
    stacking = stacking.upper()
    if stacking not in ("AB", "AA"):
        raise ValueError(f"unknown stacking {stacking!r}: use 'AB' or 'AA'")
    if interlayer_distance <= 0:
        raise ValueError("interlayer_distance must be positive (Å)")
    c = vacuum + interlayer_distance
    cell = hexagonal_cell(a, c)
    z0 = 0.5 * (c - interlayer_distance)
    z1 = z0 + interlayer_distance
    bottom = np.array([[0.0, 0.0], [1.0 / 3.0, 2.0 / 3.0]])
    shift = np.array([1.0 / 3.0, 2.0 / 3.0]) if stacking == "AB" else np.zeros(2)
    top = (bottom + shift) % 1.0
    frac_xy = np.vstack([bottom, top])
    cart = frac_xy @ cell[:2, :2]
    positions = np.column_stack([cart, [z0, z0, z1, z1]])
    atoms = Atoms("C4", positions=positions, cell=cell, pbc=(True, True, False))
    return set_layer_ids(atoms, [0, 0, 1, 1])


def in_plane_supercell(atoms: Atoms, n1: int, n2: int | None = None) -> Atoms:
    """n1 × n2 × 1 supercell (layer ids and other per-atom arrays are tiled along)."""
    n2 = n1 if n2 is None else n2
    if n1 < 1 or n2 < 1:
        raise ValueError("supercell multiples must be positive integers")
    return make_supercell(atoms, np.diag([n1, n2, 1]))
