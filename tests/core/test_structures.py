"""Tests of the structure builders, layer assignment, labelled neighbour lists and stacking."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase import Atoms

from aiida_mlepi.core.layers import (LayerAssignmentError, assign_layers_by_gap, get_layer_ids,
                                     number_of_layers, set_layer_ids)
from aiida_mlepi.core.neighbours import INTER, INTRA, labelled_edges
from aiida_mlepi.core.stacking import (StackingError, commensurate_twist, find_commensurate_twist,
                                       find_supercell_match, lattice_points_in_supercell,
                                       stack_layers, twisted_bilayer_graphene)
from aiida_mlepi.core.structures import (graphene_bilayer, graphene_monolayer, hexagonal_cell,
                                         in_plane_supercell)

A = 2.46
D = 3.35
BOND = A / np.sqrt(3.0)
AREA_PER_ATOM = np.sqrt(3.0) * A * A / 4.0  # graphene: √3a²/2 per 2-atom cell


def _slab(z: list[float], c: float = 30.0, pbc_z: bool = False) -> Atoms:
    """Atoms on a line of planes at heights z (one atom per plane, 3 Å square cell)."""
    pos = [[0.3 * k, 0.0, zk] for k, zk in enumerate(z)]
    return Atoms(f"C{len(z)}", positions=pos, cell=[3.0, 3.0, c], pbc=(True, True, pbc_z))


# ----------------------------------------------------------------------------------- layers


def test_assign_layers_bilayer_and_trilayer():
    assert assign_layers_by_gap(graphene_bilayer()).tolist() == [0, 0, 1, 1]
    # shuffled trilayer: ids follow height, not atom order
    atoms = _slab([10.0 + 2 * D, 10.0, 10.0 + D, 10.0, 10.0 + 2 * D])
    assert assign_layers_by_gap(atoms).tolist() == [2, 0, 1, 0, 2]
    assert number_of_layers(atoms) == 3


def test_mote2_like_layer_with_internal_gaps_stays_one_layer():
    te_mo_te = [5.0, 6.8, 8.6]  # 1.8 Å internal gaps (< min_gap = 2.0)
    assert assign_layers_by_gap(_slab(te_mo_te), min_gap=2.0).tolist() == [0, 0, 0]
    # a second MoTe2 layer 3.0 Å above: two layers; at min_gap 1.5 every plane splits
    two = _slab(te_mo_te + [11.6, 13.4, 15.2])
    assert assign_layers_by_gap(two, min_gap=2.0).tolist() == [0, 0, 0, 1, 1, 1]
    assert assign_layers_by_gap(two, min_gap=1.5).tolist() == [0, 1, 2, 3, 4, 5]


def test_periodic_bulk_graphite_wraps_across_the_boundary():
    c = 2 * D
    # planes at 0.2, 3.55 and 6.6 Å in a 6.7 Å cell: the 6.6 plane is the 0.2 plane's layer
    atoms = _slab([0.2, 3.55, 6.6], c=c, pbc_z=True)
    assert assign_layers_by_gap(atoms).tolist() == [0, 1, 0]
    # without z periodicity the same planes are three layers
    assert assign_layers_by_gap(_slab([0.2, 3.55, 6.6], c=c)).tolist() == [0, 1, 2]
    # bulk AB graphite without straddling: two layers
    assert assign_layers_by_gap(_slab([1.0, 1.0 + D], c=c, pbc_z=True)).tolist() == [0, 1]


def test_set_layer_ids_validation_and_renumbering():
    atoms = graphene_bilayer()
    with pytest.raises(LayerAssignmentError, match="one layer id per atom"):
        set_layer_ids(atoms, [0, 1])
    with pytest.raises(LayerAssignmentError, match="non-negative integers"):
        set_layer_ids(atoms, [0, 0, -1, 1])
    with pytest.raises(LayerAssignmentError, match="non-negative integers"):
        set_layer_ids(atoms, [0.0, 0.0, 1.0, 1.0])
    with pytest.raises(LayerAssignmentError):
        assign_layers_by_gap(Atoms())
    assert isinstance(LayerAssignmentError("x"), ValueError)
    set_layer_ids(atoms, [3, 3, 7, 7])
    assert get_layer_ids(atoms).tolist() == [0, 0, 1, 1]
    del atoms.arrays["layer_ids"]
    assert get_layer_ids(atoms).tolist() == [0, 0, 1, 1]  # falls back to z gaps


# ------------------------------------------------------------------------------- neighbours

#: AB bilayer, shells of the other layer seen from a dimer site (above/below an atom) and from a
#: non-dimer site (above/below a hexagon centre): (in-plane distance, count)
_DIMER_SHELLS = [(0.0, 1), (BOND, 3), (A, 6), (2 * BOND, 3)]
_HOLLOW_SHELLS = [(BOND, 6), (2 * BOND, 6)]


def _analytic_inter_count(shells, cutoff):
    return sum(n for rho, n in shells if np.hypot(rho, D) <= cutoff)


@pytest.mark.parametrize("cutoff", [3.5, 3.8, 4.3])
def test_ab_bilayer_labelled_edges_counts(cutoff):
    atoms = graphene_bilayer("AB", a=A, interlayer_distance=D)
    edges = labelled_edges(atoms, cutoff_intra=1.6, cutoff_inter=cutoff)
    intra = np.bincount(edges.i[edges.is_intra], minlength=4)
    inter = np.bincount(edges.i[edges.is_inter], minlength=4)
    assert intra.tolist() == [3, 3, 3, 3]
    assert np.allclose(edges.distances[edges.is_intra], BOND)
    # bottom B (1) and top A (2) are the dimer sites of the builder's AB stacking
    dimer = _analytic_inter_count(_DIMER_SHELLS, cutoff)
    hollow = _analytic_inter_count(_HOLLOW_SHELLS, cutoff)
    assert inter.tolist() == [hollow, dimer, dimer, hollow]
    assert {3.5: 1, 3.8: 4, 4.3: 10}[cutoff] == dimer


def test_labelled_edges_geometry_and_both_directions():
    atoms = in_plane_supercell(graphene_bilayer("AB"), 3)
    edges = labelled_edges(atoms, cutoff_intra=1.6, cutoff_inter=4.0)
    pos, cell = atoms.positions, np.asarray(atoms.cell)
    expected = pos[edges.j] + edges.shifts @ cell - pos[edges.i]
    assert np.allclose(edges.vectors, expected, atol=1e-10)
    assert np.allclose(np.linalg.norm(edges.vectors, axis=1), edges.distances)
    ids = atoms.arrays["layer_ids"]
    assert np.array_equal(edges.relation == INTRA, ids[edges.i] == ids[edges.j])
    forward = {(i, j, *s) for i, j, s in zip(edges.i, edges.j, edges.shifts.tolist())}
    backward = {(j, i, *(-np.asarray(s))) for i, j, s in zip(edges.i, edges.j, edges.shifts.tolist())}
    assert forward == backward
    assert len(forward) == len(edges)
    assert np.all(edges.distances[edges.relation == INTER] <= 4.0)
    assert (edges.i != edges.j).any() and np.all(edges.distances > 0)
    with pytest.raises(ValueError):
        labelled_edges(atoms, cutoff_intra=0.0)


def test_in_plane_supercell_keeps_layer_ids():
    atoms = in_plane_supercell(graphene_bilayer("AB"), 6)
    ids = atoms.arrays["layer_ids"]
    assert len(atoms) == 144
    assert np.bincount(ids).tolist() == [72, 72]
    assert np.array_equal(ids, assign_layers_by_gap(atoms))
    assert np.allclose(atoms.cell[:2, :2], 6 * hexagonal_cell(A, 1.0)[:2, :2])
    with pytest.raises(ValueError):
        in_plane_supercell(atoms, 0)
    with pytest.raises(ValueError):
        graphene_bilayer("ABC")


# ---------------------------------------------------------------------- commensurate twist


def test_commensurate_twist_reference_cells():
    t = commensurate_twist(1, 1)
    assert t.theta_deg == pytest.approx(21.7867893, abs=1e-6)
    assert t.n_atoms == 28
    t = commensurate_twist(31, 1)
    assert t.theta_deg == pytest.approx(1.0501209, abs=1e-6)
    assert t.n_atoms == 11908
    # moiré length a / (2 sin(θ/2)) for r = 1
    assert t.moire_length(A) == pytest.approx(A / (2 * np.sin(np.radians(t.theta_deg) / 2)))
    # 3 | r: cell three times smaller; (1, 3) is the 60° - 21.79° partner of (1, 1)
    t = commensurate_twist(1, 3)
    assert t.theta_deg == pytest.approx(60.0 - 21.7867893, abs=1e-6)
    assert t.n_atoms == 28
    assert commensurate_twist(2, 3).n_atoms == 4 * (12 + 18 + 9) // 3
    with pytest.raises(StackingError, match="share the factor"):
        commensurate_twist(2, 2)
    with pytest.raises(StackingError):
        commensurate_twist(0, 1)


@pytest.mark.parametrize("m,r", [(1, 1), (1, 2), (1, 3), (2, 3), (3, 1)])
def test_commensurate_cell_is_the_smallest_coincidence_cell(m, r):
    """Brute-force sublattice search (another way) finds the same cell size and no smaller."""
    t = commensurate_twist(m, r)
    cell = A * hexagonal_cell(1.0, 1.0)[:2, :2]
    match = find_supercell_match(cell, cell, max_strain=1e-9, max_rotation_deg=1e-7,
                                 twist_deg=t.theta_deg, max_cells=t.n_cells)
    assert match.n_bottom_cells == t.n_cells == match.n_top_cells
    assert abs(np.linalg.det(t.bottom_matrix)) == pytest.approx(t.n_cells)


def test_find_commensurate_twist():
    assert (find_commensurate_twist(1.05, 0.01, 20000).m, find_commensurate_twist(1.05, 0.01).r) \
        == (31, 1)
    best = find_commensurate_twist(21.79, 0.01, 1000)
    assert best.n_atoms == 28 and (best.m, best.r) == (1, 1)
    # a loose tolerance picks the smallest cell in the window
    assert find_commensurate_twist(20.0, 2.0, 1000).n_atoms == 28
    with pytest.raises(StackingError, match="raise max_atoms"):
        find_commensurate_twist(1.05, 0.001, 1000)
    with pytest.raises(StackingError):
        find_commensurate_twist(75.0)


def _check_perfect_graphene_layers(atoms: Atoms, theta_deg: float):
    area = abs(np.linalg.det(atoms.cell[:2, :2]))
    ids = atoms.arrays["layer_ids"]
    assert np.bincount(ids).tolist() == [round(area / AREA_PER_ATOM)] * 2
    edges = labelled_edges(atoms, cutoff_intra=1.6, cutoff_inter=0.0)
    assert not edges.is_inter.any()
    assert np.bincount(edges.i, minlength=len(atoms)).tolist() == [3] * len(atoms)
    assert np.allclose(edges.distances, BOND, atol=1e-8)
    # bond directions: the top layer is the bottom one rotated by θ (mod 60°)
    ang = np.degrees(np.arctan2(edges.vectors[:, 1], edges.vectors[:, 0])) % 60.0
    bottom = ang[ids[edges.i] == 0]
    top = ang[ids[edges.i] == 1]
    assert np.ptp(bottom) < 1e-6 or np.ptp((bottom + 30) % 60) < 1e-6
    diff = (top[0] - bottom[0] - theta_deg) % 60.0
    assert min(diff, 60.0 - diff) < 1e-6
    z = atoms.positions[:, 2]
    assert np.allclose(z[ids == 1] - z[ids == 0].mean(), D)
    frac = atoms.get_scaled_positions(wrap=False)[:, :2]
    assert frac.min() >= -1e-9 and frac.max() < 1.0 + 1e-9


@pytest.mark.parametrize("m,r", [(1, 1), (2, 1), (1, 3), (2, 3), (5, 2)])
def test_twisted_bilayer_layers_are_perfect_graphene(m, r):
    atoms = twisted_bilayer_graphene(m=m, r=r, a=A, interlayer_distance=D)
    t = commensurate_twist(m, r)
    assert len(atoms) == t.n_atoms
    assert tuple(atoms.pbc) == (True, True, False)
    assert atoms.info["twist_angle_deg"] == pytest.approx(t.theta_deg)
    _check_perfect_graphene_layers(atoms, t.theta_deg)


def test_magic_angle_bilayer_is_fast_and_perfect():
    start = time.perf_counter()
    atoms = twisted_bilayer_graphene(theta_deg=1.05, tol_deg=0.01)
    elapsed = time.perf_counter() - start
    assert len(atoms) == 11908
    assert elapsed < 2.0
    _check_perfect_graphene_layers(atoms, atoms.info["twist_angle_deg"])
    with pytest.raises(StackingError, match="exactly one"):
        twisted_bilayer_graphene()


# --------------------------------------------------------------------------- general stacking


def test_lattice_points_in_supercell():
    s = np.array([[3, 1], [-2, 4]])
    pts = lattice_points_in_supercell(s)
    assert len(pts) == 14 == len({tuple(p) for p in pts})
    frac = pts @ np.linalg.inv(s)
    assert frac.min() >= 0 and frac.max() < 1
    # distinct modulo the supercell
    assert len(pts) == len(lattice_points_in_supercell(s[::-1]))
    with pytest.raises(StackingError):
        lattice_points_in_supercell(np.array([[1, 2], [2, 4]]))


def test_graphene_on_graphene_gives_primitive_cell():
    atoms = stack_layers(graphene_monolayer(), graphene_monolayer(), D)
    assert len(atoms) == 4
    assert atoms.arrays["layer_ids"].tolist() == [0, 0, 1, 1]
    assert atoms.info["stacking_max_strain"] == 0.0
    assert np.allclose(atoms.cell[:2, :2], graphene_monolayer().cell[:2, :2])
    z = atoms.positions[:, 2]
    assert z[2] - z[0] == pytest.approx(D)


def test_stretched_graphene_reports_the_strain():
    top = graphene_monolayer(a=A * 1.02)
    atoms = stack_layers(graphene_monolayer(), top, D, max_strain=0.02)
    strain = np.asarray(atoms.info["stacking_top_strain"])
    assert np.allclose(strain, (1 / 1.02 - 1) * np.eye(2), atol=1e-12)
    # the strained top layer is graphene with the bottom lattice constant
    edges = labelled_edges(atoms, cutoff_intra=1.6, cutoff_inter=0.0)
    assert np.bincount(edges.i).tolist() == [3] * 4
    assert np.allclose(edges.distances, BOND)
    with pytest.raises(StackingError, match="no common supercell"):
        stack_layers(graphene_monolayer(), top, D, max_strain=0.01, max_atoms=200)


def test_sqrt3_r30_supercell_is_found():
    """Top lattice √3·a twisted by 30° matches the bottom √3×√3 R30° cell exactly."""
    top = graphene_monolayer(a=A * np.sqrt(3.0), symbol="B")
    atoms = stack_layers(graphene_monolayer(), top, D, max_strain=1e-6, twist_deg=30.0)
    assert len(atoms) == 6 + 2
    assert atoms.info["stacking_max_strain"] < 1e-12
    assert abs(np.linalg.det(atoms.info["stacking_bottom_matrix"])) == pytest.approx(3)
    assert abs(np.linalg.det(atoms.cell[:2, :2])) == pytest.approx(3 * 2 * AREA_PER_ATOM)


def test_hbn_like_on_graphene_and_on_a_bilayer():
    hbn = graphene_monolayer(a=2.50, symbol="B")
    hbn.symbols[1] = "N"
    atoms = stack_layers(graphene_monolayer(), hbn, 3.3, max_strain=0.02)
    assert atoms.info["stacking_max_strain"] < 0.02
    assert atoms.info["stacking_max_strain"] == pytest.approx(1 - 2.46 / 2.50)
    assert atoms.get_chemical_symbols() == ["C", "C", "B", "N"]
    # on an AB bilayer: bottom ids kept, hBN is layer 2, 3.3 Å above the top graphene
    atoms = stack_layers(graphene_bilayer("AB"), hbn, 3.3)
    ids = atoms.arrays["layer_ids"]
    assert ids.tolist() == [0, 0, 1, 1, 2, 2]
    z = atoms.positions[:, 2]
    assert z[ids == 2].min() - z[ids == 1].max() == pytest.approx(3.3)
    assert z[ids == 1].min() - z[ids == 0].max() == pytest.approx(D)
    with pytest.raises(StackingError):
        stack_layers(graphene_monolayer(), hbn, -1.0)


def test_stack_layers_top_shift_sets_the_registry():
    # graphene on graphene shifted by (1/3, 2/3): the AB bilayer of graphene_bilayer, atom for atom
    atoms = stack_layers(graphene_monolayer(), graphene_monolayer(), D, top_shift=(1 / 3, 2 / 3))
    ab = graphene_bilayer("AB")
    assert np.allclose(atoms.get_scaled_positions()[:, :2], ab.get_scaled_positions()[:, :2], atol=1e-12)
    assert atoms.info["stacking_top_shift"] == pytest.approx([1 / 3, 2 / 3])
    with pytest.raises(StackingError, match="top_shift"):
        stack_layers(graphene_monolayer(), graphene_monolayer(), D, top_shift=(0.5,))
