"""Tests of :mod:`aiida_mlepi.core.phonons` against an analytic nearest-neighbour spring model of graphene.

The model (:class:`GrapheneSprings`) is exactly harmonic: every C–C bond of the ideal lattice is a central
spring ``k`` in the plane plus a spring ``kz`` on the relative out-of-plane displacement, so finite
differences are exact and the frequencies at every q follow from a 6×6 dynamical matrix written down by
hand (:func:`analytic_frequencies_thz`), computed here without phonopy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from aiida_mlepi.core.layers import LAYER_ARRAY
from aiida_mlepi.core.phonons import (
    PhononError,
    PhononSetup,
    SupercellModes,
    band_structure,
    compute_supercell_modes,
    enforce_acoustic_sum_rule,
    hexagonal_path,
)
from aiida_mlepi.core.structures import graphene_bilayer, graphene_monolayer
from aiida_mlepi.core.units import AMU_KG, ANGSTROM_M, EV_J

#: nearest-neighbour in-plane bond stiffness (eV/Å²): graphene G mode ≈ 47 THz (1580 cm⁻¹) via ω² = 3k/M
K_INPLANE = 36.0
#: second-neighbour in-plane stiffness (eV/Å²); without it the honeycomb of central springs is floppy
#: (a flat band of zero-frequency in-plane modes). It does not enter the Γ optical frequency.
K_SECOND = 4.0
#: nearest-neighbour out-of-plane stiffness (eV/Å²): ZO(Γ) ≈ 26 THz via ω² = 6kz/M
K_OUT = 5.5
#: √(eV/(Å²·amu)) → THz from CODATA constants (phonopy's own factor is not used for the reference)
TO_THZ = np.sqrt(EV_J / (AMU_KG * ANGSTROM_M**2)) / (2.0 * np.pi * 1e12)
FIRST_SHELL = 1.8  # Å, between the 1st (1.42 Å) and the 2nd (2.46 Å) neighbour shell
SECOND_SHELL = 2.6  # Å, between the 2nd (2.46 Å) and the 3rd (2.84 Å) neighbour shell


def bond_stiffness(d: np.ndarray, k: float, k2: float, kz: float) -> np.ndarray:
    """(E, 3, 3) stiffness matrices of bonds d (E, 3): central k (1st shell) or k2 (2nd), plus kz·ẑẑ (1st)."""
    dist = np.linalg.norm(d, axis=1)
    n = d / dist[:, None]
    first = dist < FIRST_SHELL
    kc = np.where(first, k, k2)
    mats = kc[:, None, None] * np.einsum("ea,eb->eab", n, n)
    mats[:, 2, 2] += np.where(first, kz, 0.0)
    return mats


class GrapheneSprings:
    """Harmonic springs on the ideal lattice of a (2-atom) graphene ``primitive``.

    Calling it on any supercell of that lattice with small displacements returns the forces (eV/Å):
    F_i = −Σ_j K_ij (u_i − u_j), u the displacement from the nearest lattice site, K_ij from
    :func:`bond_stiffness` (linearised central springs of the 1st and 2nd shell, out-of-plane 1st shell).
    """

    def __init__(self, primitive: Atoms, k: float = K_INPLANE, k2: float = K_SECOND, kz: float = K_OUT):
        self.cell = np.array(primitive.cell[:])
        self.sites = primitive.get_positions()
        self.k, self.k2, self.kz = k, k2, kz

    def reference_positions(self, atoms: Atoms) -> np.ndarray:
        r = atoms.get_positions()
        best = np.full(len(atoms), np.inf)
        ref = np.zeros_like(r)
        for site in self.sites:
            frac = np.linalg.solve(self.cell.T, (r - site).T).T
            frac[:, :2] = np.round(frac[:, :2])
            frac[:, 2] = 0.0
            cand = site + frac @ self.cell
            dist = np.linalg.norm(r - cand, axis=1)
            take = dist < best
            best[take], ref[take] = dist[take], cand[take]
        return ref

    def __call__(self, atoms: Atoms) -> np.ndarray:
        ref = self.reference_positions(atoms)
        u = atoms.get_positions() - ref
        ref_atoms = Atoms(numbers=atoms.numbers, positions=ref, cell=atoms.cell, pbc=atoms.pbc)
        i, j, d = neighbor_list("ijD", ref_atoms, SECOND_SHELL)
        mats = bond_stiffness(d, self.k, self.k2, self.kz)
        f_pair = -np.einsum("eab,eb->ea", mats, u[i] - u[j])
        forces = np.zeros_like(u)
        np.add.at(forces, i, f_pair)
        return forces


def analytic_frequencies_thz(primitive: Atoms, q_reduced: np.ndarray, k: float = K_INPLANE,
                             k2: float = K_SECOND, kz: float = K_OUT) -> np.ndarray:
    """Sorted 6 frequencies (THz) of the spring model at q (reduced coordinates), by a hand-built D(q)."""
    mass = primitive.get_masses()[0]
    q_cart = 2.0 * np.pi * np.linalg.solve(np.array(primitive.cell[:]), q_reduced)
    i, j, d = neighbor_list("ijD", primitive, SECOND_SHELL)
    assert np.bincount(i).tolist() == [9, 9]  # 3 first + 6 second neighbours each
    mats = bond_stiffness(d, k, k2, kz)
    dyn = np.zeros((2, 3, 2, 3), dtype=complex)
    for a, b, dvec, m in zip(i, j, d, mats):
        dyn[a, :, a, :] += m
        dyn[a, :, b, :] -= m * np.exp(1j * q_cart @ dvec)
    lam = np.linalg.eigvalsh(dyn.reshape(6, 6) / mass)
    return np.sort(np.sign(lam) * np.sqrt(np.abs(lam)) * TO_THZ)


@pytest.fixture(scope="module")
def graphene() -> Atoms:
    return graphene_monolayer()


@pytest.fixture(scope="module")
def setup_6x6(graphene) -> PhononSetup:
    return PhononSetup.create(graphene, supercell_matrix=(6, 6, 1), displacement_angstrom=0.01)


@pytest.fixture(scope="module")
def modes_6x6(graphene, setup_6x6) -> SupercellModes:
    model = GrapheneSprings(graphene)
    forces = [model(atoms) for atoms in setup_6x6.displaced_supercells()]
    return setup_6x6.supercell_modes(forces)


def test_spring_model_is_translation_invariant_and_linear(graphene):
    """Sanity of the reference model itself: a rigid shift gives zero force, forces are linear in u."""
    sc = graphene.repeat((3, 3, 1))
    model = GrapheneSprings(graphene)
    assert np.abs(model(sc)).max() == 0.0
    shifted = sc.copy()
    shifted.positions += [0.03, -0.02, 0.01]
    assert np.abs(model(shifted)).max() < 1e-12
    rng = np.random.default_rng(1)
    u = 0.01 * rng.standard_normal((len(sc), 3))
    one, two = sc.copy(), sc.copy()
    one.positions += u
    two.positions += 2 * u
    np.testing.assert_allclose(model(two), 2 * model(one), rtol=1e-10, atol=1e-12)


def test_setup_displacements_and_layer_ids(graphene, setup_6x6):
    # graphene (P6/mmm): one symmetry-inequivalent atom; phonopy displaces it once, diagonally in the
    # x–z plane (the mirror z → −z makes the minus displacement redundant)
    assert setup_6x6.n_displacements == 1
    supercells = setup_6x6.displaced_supercells()
    assert len(supercells) == 1
    ref = setup_6x6.supercell
    assert len(ref) == 72
    for atoms, disp in zip(supercells, setup_6x6.dataset["first_atoms"]):
        assert tuple(atoms.pbc) == (True, True, False)
        assert np.all(atoms.arrays[LAYER_ARRAY] == 0)
        delta = atoms.positions - ref.positions
        moved = np.flatnonzero(np.linalg.norm(delta, axis=1) > 1e-12)
        assert moved.tolist() == [disp["number"]]
        assert np.linalg.norm(delta[moved[0]]) == pytest.approx(0.01, rel=1e-12)


def test_bilayer_layer_ids_carried_to_supercells():
    bilayer = graphene_bilayer("AB")
    setup = PhononSetup.create(bilayer, supercell_matrix=(2, 2, 1))
    sc = setup.supercell
    ids = sc.arrays[LAYER_ARRAY]
    assert np.bincount(ids).tolist() == [8, 8]
    z_bottom, z_top = bilayer.positions[[0, 2], 2]
    np.testing.assert_allclose(sc.positions[ids == 0, 2], z_bottom, atol=1e-9)
    np.testing.assert_allclose(sc.positions[ids == 1, 2], z_top, atol=1e-9)
    for atoms in setup.displaced_supercells():
        assert np.array_equal(atoms.arrays[LAYER_ARRAY], ids)


def test_setup_json_round_trip(setup_6x6):
    text = json.dumps(setup_6x6.to_dict())
    back = PhononSetup.from_dict(json.loads(text))
    assert back.n_displacements == setup_6x6.n_displacements
    np.testing.assert_array_equal(back.supercell_matrix, setup_6x6.supercell_matrix)
    for a, b in zip(back.displaced_supercells(), setup_6x6.displaced_supercells()):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
        np.testing.assert_allclose(a.get_masses(), b.get_masses())
        assert np.array_equal(a.arrays[LAYER_ARRAY], b.arrays[LAYER_ARRAY])


def test_acoustic_sum_rule_and_orthonormal_modes(modes_6x6):
    fc = modes_6x6.force_constants
    assert np.abs(fc.sum(axis=1)).max() < 1e-8
    # permutation symmetry Φ_ij^αβ = Φ_ji^βα
    assert np.abs(fc - fc.transpose(1, 0, 3, 2)).max() < 1e-8
    n = modes_6x6.n_atoms
    vecs = modes_6x6.eigenvectors.reshape(3 * n, 3 * n)
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(3 * n), atol=1e-10)
    freqs = modes_6x6.frequencies_thz
    assert np.count_nonzero(np.abs(freqs) < 1e-3) == 3
    assert modes_6x6.acoustic_mask.sum() == 3
    assert np.all(np.abs(freqs[modes_6x6.acoustic_mask]) < 1e-3)
    assert modes_6x6.n_imaginary() == 0


def test_sum_rule_exact_with_noisy_forces(graphene, setup_6x6):
    """Noise in the forces (as from an SCF or an ML model) breaks the sum rule; the pipeline restores it."""
    model = GrapheneSprings(graphene)
    rng = np.random.default_rng(11)
    forces = [model(atoms) + 1e-3 * rng.standard_normal((72, 3)) for atoms in setup_6x6.displaced_supercells()]
    modes = setup_6x6.supercell_modes(forces)
    assert np.abs(modes.force_constants.sum(axis=1)).max() < 1e-8
    assert np.count_nonzero(np.abs(modes.frequencies_thz) < 1e-3) == 3
    assert np.all(np.abs(modes.frequencies_thz[modes.acoustic_mask]) < 1e-3)


def test_gamma_frequencies_match_closed_form(modes_6x6, graphene):
    mass = graphene.get_masses()[0]
    f_optical = np.sqrt(3 * K_INPLANE / mass) * TO_THZ  # in-plane optical (G mode), twice
    f_zo = np.sqrt(6 * K_OUT / mass) * TO_THZ
    freqs = modes_6x6.frequencies_thz
    assert np.count_nonzero(np.abs(freqs - f_optical) < 1e-6 * f_optical) == 2
    assert np.count_nonzero(np.abs(freqs - f_zo) < 1e-6 * f_zo) == 1


def test_all_supercell_frequencies_match_analytic_commensurate_q(modes_6x6, graphene):
    """The 216 supercell modes are the folded modes of the 36 commensurate q of the primitive cell."""
    n = 6
    reference = np.sort(np.concatenate([
        analytic_frequencies_thz(graphene, np.array([i / n, j / n, 0.0])) for i in range(n) for j in range(n)
    ]))
    freqs = modes_6x6.frequencies_thz
    assert freqs.shape == (216,)
    nonzero = np.abs(reference) > 1e-3
    np.testing.assert_allclose(freqs[nonzero], reference[nonzero], rtol=1e-6)
    np.testing.assert_allclose(freqs[~nonzero], 0.0, atol=1e-3)


def test_band_structure_matches_analytic_model(graphene, setup_6x6, modes_6x6):
    bands = setup_6x6.band_structure(modes_6x6.force_constants, npoints=11)
    assert bands.tick_labels == ["Γ", "M", "K", "Γ"]
    assert bands.frequencies_thz.shape == (33, 6)
    # commensurate q-points (Γ, M, K for 6×6) are exact; the others are Fourier-interpolated
    for idx, label_q in ((0, [0, 0, 0]), (10, [0.5, 0, 0]), (21, [1 / 3, 1 / 3, 0])):
        np.testing.assert_allclose(bands.qpoints[idx], label_q, atol=1e-12)
        ref = analytic_frequencies_thz(graphene, np.array(label_q, dtype=float))
        np.testing.assert_allclose(np.sort(bands.frequencies_thz[idx]), ref, atol=1e-5 * ref.max())
    # the nearest-neighbour model has a range shorter than the supercell: interpolation is exact too
    mid = 5
    ref = analytic_frequencies_thz(graphene, bands.qpoints[mid])
    np.testing.assert_allclose(np.sort(bands.frequencies_thz[mid]), ref, atol=1e-5 * ref.max())


def test_band_structure_in_a_basis_phonopy_would_reduce(graphene):
    """The same graphene with the in-plane cell a1 = (−a/2, a√3/2), a2 = (−a/2, −a√3/2) (the catalogue's hBN
    orientation, for which phonopy ≥ 4's default 'auto' finds another primitive basis). The band path's reduced q
    are those of the cell as given: the bands at Γ, M, K are the analytic ones."""
    a = np.linalg.norm(graphene.cell[0])
    cell = np.array([[-a / 2, a * np.sqrt(3) / 2, 0.0], [-a / 2, -a * np.sqrt(3) / 2, 0.0], graphene.cell[2]])
    turned = Atoms(graphene.numbers, scaled_positions=graphene.get_scaled_positions(), cell=cell, pbc=graphene.pbc)
    setup = PhononSetup.create(turned, supercell_matrix=(3, 3, 1), displacement_angstrom=0.01)
    model = GrapheneSprings(turned)
    modes = setup.supercell_modes([model(atoms) for atoms in setup.displaced_supercells()])
    bands = setup.band_structure(modes.force_constants, npoints=7)
    path, _ = hexagonal_path(turned)
    for idx, q in zip((0, 6, 13), path[:3]):
        ref = analytic_frequencies_thz(turned, np.asarray(q, dtype=float))
        np.testing.assert_allclose(np.sort(bands.frequencies_thz[idx]), ref, atol=1e-5 * ref.max())


def test_modes_array_round_trip(modes_6x6):
    arrays = modes_6x6.to_arrays()
    assert all(name.isidentifier() for name in arrays)
    back = SupercellModes.from_arrays({k: np.array(v) for k, v in arrays.items()})
    np.testing.assert_array_equal(back.frequencies_thz, modes_6x6.frequencies_thz)
    np.testing.assert_array_equal(back.eigenvectors, modes_6x6.eigenvectors)
    np.testing.assert_array_equal(back.acoustic_mask, modes_6x6.acoustic_mask)
    np.testing.assert_allclose(back.supercell.get_masses(), modes_6x6.masses_amu)
    np.testing.assert_array_equal(back.supercell.arrays[LAYER_ARRAY], modes_6x6.supercell.arrays[LAYER_ARRAY])
    np.testing.assert_allclose(back.frequencies_cm1, modes_6x6.frequencies_thz * 33.35641, rtol=1e-6)


def test_compute_supercell_modes_convenience_and_imaginary_count(graphene):
    model = GrapheneSprings(graphene)
    modes = compute_supercell_modes(graphene, (3, 3, 1), model)
    ref = np.sort(np.concatenate([analytic_frequencies_thz(graphene, np.array([i / 3, j / 3, 0.0]))
                                  for i in range(3) for j in range(3)]))
    big = np.abs(ref) > 1e-3
    np.testing.assert_allclose(modes.frequencies_thz[big], ref[big], rtol=1e-6)
    # a negative out-of-plane stiffness makes the out-of-plane branch unstable: ZO(Γ) = −√(6|kz|/M)
    unstable = compute_supercell_modes(graphene, (3, 3, 1), GrapheneSprings(graphene, kz=-1.0))
    assert unstable.n_imaginary() == 9 + 8  # all 9 ZO + the 8 ZA at q ≠ 0
    mass = graphene.get_masses()[0]
    assert unstable.frequencies_thz[0] == pytest.approx(-np.sqrt(6.0 / mass) * TO_THZ, rel=1e-6)
    assert unstable.n_imaginary() > 0


def test_enforce_acoustic_sum_rule_on_random_blocks():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((12, 12))
    fc = (f + f.T).reshape(4, 3, 4, 3).transpose(0, 2, 1, 3)  # Φ_ij^αβ = Φ_ji^βα, no sum rule
    assert np.abs(fc.sum(axis=1)).max() > 0.1
    fixed = enforce_acoustic_sum_rule(fc)
    assert np.abs(fixed.sum(axis=1)).max() < 1e-12
    assert np.abs(fixed.sum(axis=0)).max() < 1e-12
    np.testing.assert_allclose(fixed, fixed.transpose(1, 0, 3, 2), atol=1e-14)
    # a projection: applying it twice changes nothing
    np.testing.assert_allclose(enforce_acoustic_sum_rule(fixed), fixed, atol=1e-13)


def test_bad_input_raises(graphene, setup_6x6):
    with pytest.raises(PhononError, match="expected forces for 1"):
        setup_6x6.supercell_modes([np.zeros((72, 3))] * 2)
    with pytest.raises(PhononError, match="shape"):
        setup_6x6.supercell_modes([np.zeros((71, 3))])
    with pytest.raises(PhononError, match="singular"):
        PhononSetup.create(graphene, supercell_matrix=(6, 0, 1))
    with pytest.raises(PhononError, match="positive"):
        PhononSetup.create(graphene, displacement_angstrom=-0.01)
    with pytest.raises(PhononError, match="missing"):
        PhononSetup.from_dict({"format_version": 1})
    with pytest.raises(PhononError, match="hexagonal"):
        band_structure(Atoms("C", cell=np.diag([2.0, 3.0, 10.0])), (2, 2, 1), np.zeros((4, 4, 3, 3)))


def test_plot_phonon_bands_writes_png(tmp_path, setup_6x6, modes_6x6):
    import matplotlib.image as mpimg

    from aiida_mlepi.core.plotting_phonons import PlotError, plot_phonon_bands

    bands = setup_6x6.band_structure(modes_6x6.force_constants, npoints=21)
    out = plot_phonon_bands(bands, tmp_path / "sub" / "bands.png", reference=bands, title="springs",
                            figsize=(4.0, 3.0), dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(out).shape[:2] == (150, 200)  # figsize × dpi
    with pytest.raises(PlotError, match="unit"):
        plot_phonon_bands(bands, tmp_path / "x.png", unit="meV")


def _shear_overlap(modes: SupercellModes, mu: int) -> float:
    """Weight of mode μ in the two rigid in-plane interlayer-shear patterns (layers slide oppositely)."""
    ids = modes.supercell.arrays[LAYER_ARRAY]
    sign = np.where(ids == 0, 1.0, -1.0) * np.sqrt(modes.masses_amu)
    weight = 0.0
    for alpha in (0, 1):
        pattern = np.zeros((modes.n_atoms, 3))
        pattern[:, alpha] = sign
        weight += np.sum(modes.eigenvectors[mu] * pattern) ** 2 / np.sum(pattern**2)
    return weight


def test_relaxed_ab_bilayer_6x6_modes(engine_bilayer_modes):
    """No imaginary modes; three zero acoustic modes; the softest optical pair is the interlayer shear.

    Measured: shear pair 24.2 cm⁻¹ (bilayer graphene experiment: ~32 cm⁻¹), highest mode 1711 cm⁻¹.
    With a coarser 6×6-equivalent k sampling (Γ-only forces on the 6×6 supercell) the engine's sliding
    restoring force is ~0 and the shear pair comes out at −1.35 cm⁻¹: converge k before computing phonons.
    """
    modes = engine_bilayer_modes
    freqs_cm1 = modes.frequencies_cm1
    optical = np.sort(freqs_cm1[~modes.acoustic_mask])
    print(f"AB bilayer 6x6: {len(freqs_cm1)} modes, lowest optical {optical[:2]} cm-1, highest {freqs_cm1.max():.1f}")
    assert len(modes.supercell) == 144
    assert modes.n_imaginary() == 0
    assert np.count_nonzero(np.abs(modes.frequencies_thz) < 1e-3) == 3
    assert np.all(np.abs(modes.frequencies_thz[modes.acoustic_mask]) < 1e-3)
    shear = np.argsort(np.where(modes.acoustic_mask, np.inf, freqs_cm1))[:2]
    for mu in shear:
        assert _shear_overlap(modes, mu) > 0.99
        assert 10.0 < freqs_cm1[mu] < 60.0
    # the G mode of graphene is ~1580 cm⁻¹; any sensible carbon force field puts the top in 1200–2000 cm⁻¹
    assert 1200.0 < freqs_cm1.max() < 2000.0


def test_residual_forces_are_subtracted(graphene, setup_6x6):
    """A force model whose undisplaced supercell is not a stationary point (a constant residual F₀ on every atom,
    as GPAW at an unrelaxed catalogue geometry): forward differences put F₀/u into the force constants (graphene's
    one displacement has no minus partner), the residual correction recovers the clean modes (1e-5 THz)."""
    model = GrapheneSprings(graphene)
    residual = 0.05 * np.random.default_rng(4).standard_normal((len(setup_6x6.supercell), 3))  # eV/Å
    clean = setup_6x6.supercell_modes([model(atoms) for atoms in setup_6x6.displaced_supercells()])
    forces = [model(atoms) + residual for atoms in setup_6x6.displaced_supercells()]
    biased = setup_6x6.supercell_modes(forces)
    assert np.abs(biased.frequencies_thz - clean.frequencies_thz).max() > 1.0  # 0.05 eV/Å / 0.01 Å: ruined
    corrected = setup_6x6.supercell_modes(forces, residual=model(setup_6x6.supercell) + residual)
    np.testing.assert_allclose(corrected.frequencies_thz, clean.frequencies_thz, atol=1e-5)  # acoustic: √(round-off)
    with pytest.raises(PhononError, match="residual forces must be finite"):
        setup_6x6.supercell_modes(forces, residual=residual[:-1])


def test_canonical_eigenvectors_do_not_depend_on_the_solver_basis(modes_6x6):
    """Any orthonormal basis of each degenerate subspace, with any signs (what another LAPACK build may return),
    canonicalises to the same eigenvectors (1e-8), and they remain eigenvectors of the dynamical matrix."""
    from aiida_mlepi.core.phonons import DEGENERACY_TOLERANCE, canonical_eigenvectors

    n = len(modes_6x6.frequencies_thz)
    vecs = modes_6x6.eigenvectors.reshape(n, -1).T  # columns
    omega2 = np.sign(modes_6x6.frequencies_thz) * modes_6x6.frequencies_thz ** 2
    rng = np.random.default_rng(9)
    scrambled, start, degenerate = vecs.copy(), 0, 0
    while start < n:
        stop = start + 1
        while stop < n and omega2[stop] - omega2[stop - 1] <= DEGENERACY_TOLERANCE * np.abs(omega2).max():
            stop += 1
        q, _ = np.linalg.qr(rng.standard_normal((stop - start, stop - start)))
        scrambled[:, start:stop] = vecs[:, start:stop] @ q
        degenerate += stop - start > 1
        start = stop
    scrambled *= rng.choice([-1.0, 1.0], size=n)
    assert degenerate > 10 and np.abs(scrambled - vecs).max() > 0.1
    np.testing.assert_allclose(canonical_eigenvectors(omega2, scrambled), vecs, atol=1e-8)
