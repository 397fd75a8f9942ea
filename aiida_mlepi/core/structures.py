"""Builders of layered structures: graphene, hBN and 1H-MX2 monolayers, AB/AA bilayer graphene, supercells.

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
#: hBN lattice constant (Å), experiment (X-ray, Pease, Acta Cryst. 5, 356 (1952))
HBN_LATTICE_CONSTANT = 2.504
#: 2H-MoS2 lattice constant and S–S layer thickness (Å), experiment (a = 3.160, c = 12.294,
#: z(S) = 0.621 as tabulated by Böker et al., PRB 64, 235305 (2001)); thickness = 2(3/4 − z)·c
MOS2_LATTICE_CONSTANT = 3.160
MOS2_THICKNESS = 3.172


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


def hbn_monolayer(a: float = HBN_LATTICE_CONSTANT, vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """Two-atom hexagonal boron nitride cell: B at the origin, N at (1/3, 2/3) (fractional)."""
    atoms = graphene_monolayer(a, vacuum, symbol="B")
    atoms.symbols[1] = "N"
    return atoms


def tmd_monolayer(metal: str = "Mo", chalcogen: str = "S", a: float = MOS2_LATTICE_CONSTANT,
                  thickness: float = MOS2_THICKNESS, vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """Three-atom 1H (trigonal prismatic) MX2 cell, one layer (layer id 0).

    The metal sits at the origin, both chalcogens at (1/3, 2/3), ``thickness``/2 (Å) below and
    above it (``thickness`` = vertical X–X distance inside the layer).
    """
    if a <= 0 or thickness <= 0 or vacuum < 0:
        raise ValueError("a and thickness must be positive, vacuum non-negative (Å)")
    c = vacuum + thickness
    cell = hexagonal_cell(a, c)
    xy = np.array([[0.0, 0.0], [1.0 / 3.0, 2.0 / 3.0], [1.0 / 3.0, 2.0 / 3.0]]) @ cell[:2, :2]
    z = 0.5 * c + np.array([0.0, -0.5 * thickness, 0.5 * thickness])
    atoms = Atoms([metal, chalcogen, chalcogen], positions=np.column_stack([xy, z]), cell=cell,
                  pbc=(True, True, False))
    return set_layer_ids(atoms, [0, 0, 0])


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
