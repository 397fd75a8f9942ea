"""Tests of the reference tight-binding engine (aiida_mlepi.core.engine)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from aiida_mlepi.core import units
from aiida_mlepi.core.engine import (EngineParameters, KPointError, ReferenceCalculator,
                                     ReferenceEngine, UnsupportedElementError,
                                     analytic_fermi_velocity)
from aiida_mlepi.core.engine.relax import (relaxed_bilayer_graphene, relaxed_interlayer_distance,
                                           relaxed_lattice_constant)
from aiida_mlepi.core.engine.slater_koster import smooth_switch, xwch_radial
from aiida_mlepi.core.structures import graphene_bilayer, graphene_monolayer, in_plane_supercell

CARBON_MASS = 12.011  # amu
A_GRAPHENE = 2.4555  # Å, close to the engine's relaxed value


@pytest.fixture(scope="module")
def engine() -> ReferenceEngine:
    return ReferenceEngine()


def _perturbed(atoms: Atoms, scale: float, seed: int) -> Atoms:
    out = atoms.copy()
    out.positions += np.random.default_rng(seed).normal(scale=scale, size=out.positions.shape)
    return out


def _fd_forces(engine: ReferenceEngine, atoms: Atoms, kpts, h: float = 1e-5) -> np.ndarray:
    forces = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            forces[a, c] = -(engine.energy(plus, kpts) - engine.energy(minus, kpts)) / (2 * h)
    return forces


# ---------------------------------------------------------------- 1. forces = −∂F/∂x
@pytest.mark.parametrize("kind", ["supercell_gamma", "strained_cell_kmesh"])
def test_forces_are_exact_derivative_of_free_energy(engine, kind):
    if kind == "supercell_gamma":
        atoms, kpts = _perturbed(in_plane_supercell(graphene_bilayer("AB"), 2), 0.05, 1), (1, 1, 1)
    else:
        atoms = _perturbed(graphene_bilayer("AB", interlayer_distance=3.1), 0.08, 2)
        atoms.set_cell(atoms.cell @ np.array([[1.02, 0.01, 0], [0.0, 0.99, 0], [0, 0, 1]]),
                       scale_atoms=True)
        kpts = (3, 3, 1)
    analytic = engine.forces(atoms, kpts)
    numeric = _fd_forces(engine, atoms, kpts)
    rel = np.abs(analytic - numeric).max() / np.abs(analytic).max()
    assert np.abs(analytic).max() > 0.1  # a real test: the structure is far from equilibrium
    assert rel < 1e-5, rel


# ---------------------------------------------------------------- 2. bilayer equilibrium
def test_relaxed_geometries(engine):
    a = relaxed_lattice_constant(engine)
    assert 2.40 < a < 2.50  # XWCH graphene: a ≈ 2.456 Å (exp. 2.46)
    ab = relaxed_bilayer_graphene(engine, "AB")
    d_ab = ab.positions[2, 2] - ab.positions[0, 2]
    assert 3.2 < d_ab < 3.6
    assert abs(ab.cell[0, 0] - a) < 0.005  # weak vdW coupling barely changes a
    np.testing.assert_array_equal(ab.arrays["layer_ids"], [0, 0, 1, 1])
    # the relaxed structure is in equilibrium for rigid flat layers: zero net force per layer and
    # zero in-plane forces (by symmetry); the AB sublattices feel opposite z forces (±0.035 eV/Å)
    # because only one sublattice sits on top of an atom of the other layer
    forces = engine.forces(ab, (6, 6, 1))
    assert abs(forces[2:, 2].sum()) < 1e-5 and abs(forces[:2, 2].sum()) < 1e-5
    assert np.abs(forces[:, :2]).max() < 1e-8
    assert 0.0 < np.abs(forces[:, 2]).max() < 0.1
    d_aa = relaxed_interlayer_distance(engine, a, "AA")
    assert d_ab < d_aa < 3.7  # AA stacking puts atoms on top of each other: larger d
    e_mono = engine.energy(graphene_monolayer(a), (6, 6, 1)) / 2
    e_ab = engine.energy(ab, (6, 6, 1)) / 4 - e_mono
    e_aa = engine.energy(graphene_bilayer("AA", a, d_aa), (6, 6, 1)) / 4 - e_mono
    assert -0.05 < e_ab < e_aa < -0.01  # bound, AB favoured (meV-scale vdW binding per atom)


# ---------------------------------------------------------------- 3. Dirac cone
def test_dirac_cone_fermi_velocity(engine):
    atoms = graphene_monolayer(A_GRAPHENE)
    ham = engine.hamiltonian(atoms)
    k_point = np.array([1.0 / 3.0, 1.0 / 3.0, 0.0]) @ ham.reciprocal_cell()
    assert np.isclose(np.linalg.norm(k_point), 4 * np.pi / (3 * A_GRAPHENE))
    e_k = np.linalg.eigvalsh(ham.hk(k_point).toarray())
    # 8 electrons in 8 spin-degenerate bands → bands 3 and 4 (0-based) meet at K
    assert e_k[4] - e_k[3] < 1e-3
    analytic = analytic_fermi_velocity(engine, A_GRAPHENE)
    dk = 1e-4  # Å⁻¹
    for direction in (np.array([1.0, 0, 0]), np.array([0.0, 1, 0])):
        e = np.linalg.eigvalsh(ham.hk(k_point + dk * direction).toarray())
        numeric = 0.5 * (e[4] - e[3]) / dk * units.EV_ANGSTROM_TO_M_PER_S
        assert abs(numeric / analytic - 1) < 0.05
    assert 5e5 < analytic < 1.1e6


# ---------------------------------------------------------------- 4. E2g phonon
def test_gamma_optical_phonon_e2g(engine):
    """Frozen phonon on the 2-atom cell, 12×12 k mesh: Γ force constants from analytic forces."""
    atoms = graphene_monolayer(A_GRAPHENE)
    kpts, h = (12, 12, 1), 1e-3
    fc = np.zeros((6, 6))
    for i in range(2):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            fc[3 * i + c] = -(engine.forces(plus, kpts) - engine.forces(minus, kpts)).ravel() / (2 * h)
    assert np.abs(fc - fc.T).max() < 1e-3 * np.abs(fc).max()  # Maxwell symmetry of −∂²F/∂x∂x
    w2 = np.linalg.eigvalsh(0.5 * (fc + fc.T) / CARBON_MASS)  # eV/(Å² amu)
    to_cm = (np.sqrt(units.EV_J / (units.ANGSTROM_M**2 * units.AMU_KG)) / (2 * np.pi) / 1e12
             * units.THZ_TO_CM1)
    freqs = np.sign(w2) * np.sqrt(np.abs(w2)) * to_cm
    assert np.abs(freqs[:3]).max() < 1.0  # acoustic sum rule: three zero modes at Γ
    assert abs(freqs[4] - freqs[5]) < 1e-3  # E2g is doubly degenerate
    assert abs(freqs[5] / 1580.0 - 1) < 0.20
    print(f"omega_E2g (12x12 k, 2-atom cell) = {freqs[5]:.1f} cm^-1, ZO = {freqs[3]:.1f} cm^-1")


# ---------------------------------------------------------------- 5 + 6. k mesh ≡ supercell, timing
def test_kmesh_equals_supercell_and_timing(engine):
    cell = graphene_bilayer("AB", a=A_GRAPHENE, interlayer_distance=3.4)
    big = in_plane_supercell(cell, 6)
    start = time.perf_counter()
    res_big = engine.compute(big, hamiltonian=True)
    elapsed = time.perf_counter() - start
    print(f"144-atom AB 6x6 supercell, Gamma-only, energy+forces+H: {elapsed:.3f} s")
    res = engine.compute(cell, kpts=(6, 6, 1))
    assert abs(res_big.energy / len(big) - res.energy / len(cell)) < 1e-8
    np.testing.assert_allclose(res_big.forces, np.tile(res.forces, (36, 1)), atol=1e-8)
    assert abs(res_big.fermi_level - res.fermi_level) < 1e-8


def test_kmesh_equals_supercell_perturbed(engine):
    cell = _perturbed(graphene_bilayer("AB", a=A_GRAPHENE), 0.05, 3)
    res = engine.compute(cell, kpts=(3, 2, 1))
    big = in_plane_supercell(cell, 3, 2)
    res_big = engine.compute(big)
    assert abs(res_big.energy / len(big) - res.energy / len(cell)) < 1e-8
    # make_supercell orders atoms cell-copy-major: images of atom i are i, i + 4, i + 8, …
    np.testing.assert_allclose(res_big.forces, np.tile(res.forces, (6, 1)), atol=1e-8)


# ---------------------------------------------------------------- 7. H(R), invariances, errors
def test_hamiltonian_blocks(engine):
    atoms = _perturbed(graphene_bilayer("AB", a=A_GRAPHENE), 0.05, 4)
    res = engine.compute(atoms, hamiltonian=True)
    ham = res.hamiltonian
    assert ham.hermiticity_error() == 0.0
    assert ham.s_values is None and ham.basis == {6: (0, 1)}
    assert ham.metadata["parameters"] == engine.parameters.as_dict()
    onsite = ham.block(0)
    np.testing.assert_allclose(np.diag(onsite), [-2.99, 3.71, 3.71, 3.71])
    # the stored blocks reproduce the engine's own spectrum at Γ
    e_gamma = np.linalg.eigvalsh(ham.hk(np.zeros(3)).toarray())
    np.testing.assert_allclose(e_gamma, res.eigenvalues[0], atol=1e-10)
    # hamiltonian() alone gives the same blocks (possibly in another order)
    alone = engine.hamiltonian(atoms)
    assert len(alone.edges) == len(ham.edges)
    blocks = {tuple(e): ham.block(n) for n, e in enumerate(ham.edges.tolist())}
    for n, e in enumerate(alone.edges.tolist()):
        np.testing.assert_array_equal(alone.block(n), blocks[tuple(e)])
    # inter-layer blocks have no s components
    inter = (atoms.arrays["layer_ids"][ham.edges[:, 3]] != atoms.arrays["layer_ids"][ham.edges[:, 4]])
    for e in np.flatnonzero(inter)[:20]:
        block = ham.block(int(e))
        assert np.all(block[0] == 0) and np.all(block[:, 0] == 0)


def test_translation_and_rotation_invariance(engine):
    atoms = _perturbed(graphene_bilayer("AB", a=A_GRAPHENE), 0.07, 5)
    ref = engine.compute(atoms, kpts=(2, 2, 1))
    moved = atoms.copy()
    moved.translate([0.37, -1.21, 0.55])
    assert abs(engine.energy(moved, (2, 2, 1)) - ref.energy) < 1e-9
    rot = Rotation.from_euler("zyx", [37.0, 21.0, -48.0], degrees=True)
    turned = atoms.copy()
    turned.set_cell(rot.apply(np.asarray(atoms.cell)))
    turned.positions = rot.apply(atoms.positions)
    res = engine.compute(turned, kpts=(2, 2, 1))
    assert abs(res.energy - ref.energy) < 1e-9
    np.testing.assert_allclose(res.forces, rot.apply(ref.forces), atol=1e-9)  # covariance


def test_unsupported_element_and_bad_kpoints(engine):
    atoms = graphene_monolayer()
    atoms[1].symbol = "Si"
    with pytest.raises(UnsupportedElementError, match="Si"):
        engine.compute(atoms)
    with pytest.raises(KPointError):
        engine.compute(graphene_monolayer(), kpts=(2, 2, 2))  # not periodic along z


def test_layer_ids_default_and_pair_terms(engine):
    atoms = graphene_bilayer("AB", a=A_GRAPHENE)
    bare = atoms.copy()
    del bare.arrays["layer_ids"]
    assert engine.energy(bare, (3, 3, 1)) == pytest.approx(engine.energy(atoms, (3, 3, 1)), abs=1e-12)
    mono = engine.compute(graphene_monolayer(A_GRAPHENE), kpts=(3, 3, 1))
    assert mono.lj_energy == 0.0 and mono.inter_repulsive_energy == 0.0
    # well separated layers (7 Å > hopping and overlap-repulsion cutoffs): only LJ couples them
    far = engine.compute(graphene_bilayer("AB", a=A_GRAPHENE, interlayer_distance=7.0), kpts=(3, 3, 1))
    assert abs(far.energy - 2 * mono.energy - far.lj_energy) < 1e-6
    assert -5e-3 < far.lj_energy / 4 < 0


def test_calculator_and_parameters_roundtrip(engine):
    atoms = graphene_bilayer("AB", a=A_GRAPHENE)
    atoms.calc = ReferenceCalculator(kpts=(2, 2, 1))
    res = engine.compute(atoms, kpts=(2, 2, 1))
    assert atoms.get_potential_energy() == pytest.approx(res.energy, abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), res.forces, atol=1e-12)
    params = EngineParameters(electronic_temperature=0.05)
    assert EngineParameters.from_dict(params.as_dict()) == params
    with pytest.raises(ValueError, match="unknown"):
        EngineParameters.from_dict({"not_a_parameter": 1.0})
    with pytest.raises(ValueError, match="electronic_temperature"):
        EngineParameters(electronic_temperature=0.0)


def test_radial_functions_are_c2_and_vanish_at_cutoff():
    p = EngineParameters()
    args = (p.hop_n, p.hop_nc, p.hop_rc, p.hop_r0, p.hop_tail_start, p.hop_cutoff)
    s0, _ = xwch_radial(np.array([p.hop_r0]), *args)
    assert s0[0] == pytest.approx(1.0, abs=1e-12)  # s(r0) = 1 by construction
    eps = 1e-7
    for r in (p.hop_tail_start, p.hop_cutoff):
        (v_lo, v_hi), (d_lo, d_hi) = xwch_radial(np.array([r - eps, r + eps]), *args)
        assert abs(v_hi - v_lo) < 1e-6 and abs(d_hi - d_lo) < 1e-5
    v, d = xwch_radial(np.array([p.hop_cutoff, 3.0]), *args)
    assert np.all(v == 0) and np.all(d == 0)
    sw, dsw = smooth_switch(np.array([0.0, 9.0, 9.5, 10.0, 11.0]), 9.0, 10.0)
    np.testing.assert_allclose(sw, [1, 1, 0.5, 0, 0])
    assert dsw[2] == pytest.approx(-1.875)  # −30 t²(1−t)²/w at t = 1/2
