"""Relaxed graphene lattice constant and bilayer geometry of the reference engine (Å, eV)."""

from __future__ import annotations

from ase import Atoms
from scipy.optimize import brentq, minimize_scalar

from ..structures import graphene_bilayer, graphene_monolayer
from .reference import ReferenceEngine

#: search window for the graphene lattice constant, Å
LATTICE_BOUNDS = (2.3, 2.6)
#: search window for the interlayer distance, Å
INTERLAYER_BOUNDS = (2.9, 4.5)


#: unit-cell k-mesh at which the engine's interlayer shear (sliding) force is converged: with 6×6 the
#: AB bilayer's shear pair comes out slightly imaginary (−1.35 cm⁻¹), with 12×12 at +24 cm⁻¹
CONVERGED_UNIT_CELL_MESH = (12, 12, 1)


def supercell_kpoints_mesh(supercell: tuple[int, int, int],
                           unit_cell_mesh: tuple[int, int, int] = CONVERGED_UNIT_CELL_MESH) -> tuple[int, int, int]:
    """Smallest Γ-centred mesh for an n1×n2×n3 supercell that samples at least ``unit_cell_mesh`` of the
    unit cell (⌈m_i / n_i⌉ per direction); the unit cell should be relaxed with ``n_i × mesh_i``."""
    if len(supercell) != 3 or min(supercell) < 1:
        raise ValueError(f"supercell must be three positive integers, got {supercell}")
    return tuple(max(1, -(-int(m) // int(n))) for m, n in zip(unit_cell_mesh, supercell))


class RelaxationError(ValueError):
    """No minimum of the free energy inside the search window."""


def relaxed_lattice_constant(engine: ReferenceEngine, kpts: tuple[int, int, int] = (6, 6, 1),
                             tol: float = 1e-5) -> float:
    """Graphene lattice constant a (Å) minimising the free energy per atom of the monolayer."""
    res = minimize_scalar(lambda a: engine.energy(graphene_monolayer(a), kpts),
                          bounds=LATTICE_BOUNDS, method="bounded", options={"xatol": tol})
    if not res.success or min(abs(res.x - b) for b in LATTICE_BOUNDS) < 10 * tol:
        raise RelaxationError(f"no lattice-constant minimum inside {LATTICE_BOUNDS} Å")
    return float(res.x)


def relaxed_interlayer_distance(engine: ReferenceEngine, a: float, stacking: str = "AB",
                                kpts: tuple[int, int, int] = (6, 6, 1), tol: float = 1e-6) -> float:
    """Interlayer distance d (Å) at lattice constant ``a`` where the force on the top layer vanishes."""

    def top_force(d: float) -> float:
        return float(engine.forces(graphene_bilayer(stacking, a, d), kpts)[2:, 2].sum())

    lo, hi = INTERLAYER_BOUNDS
    if not top_force(lo) > 0 > top_force(hi):
        raise RelaxationError(f"no interlayer-distance minimum inside {INTERLAYER_BOUNDS} Å")
    return float(brentq(top_force, lo, hi, xtol=tol))


def relaxed_bilayer_graphene(engine: ReferenceEngine, stacking: str = "AB",
                             kpts: tuple[int, int, int] = (6, 6, 1), tol: float = 1e-5) -> Atoms:
    """Bilayer graphene (``stacking`` 'AB' or 'AA') with a and d relaxed together.

    The outer 1-D minimisation over a uses, at every a, the interlayer distance with zero force
    on the top layer; the result is built with :func:`~aiida_mlepi.core.structures.graphene_bilayer`
    (``layer_ids`` set).
    """

    def energy_at(a: float) -> float:
        d = relaxed_interlayer_distance(engine, a, stacking, kpts, tol=tol / 10)
        return engine.energy(graphene_bilayer(stacking, a, d), kpts)

    res = minimize_scalar(energy_at, bounds=LATTICE_BOUNDS, method="bounded",
                          options={"xatol": tol})
    a = float(res.x)
    d = relaxed_interlayer_distance(engine, a, stacking, kpts, tol=tol / 10)
    return graphene_bilayer(stacking, a, d)
