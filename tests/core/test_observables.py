"""Fermi velocity: valley folding, chord and Hellmann–Feynman velocities vs analytic π models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aiida_mlepi.core.bands import repeat_hamiltonian
from aiida_mlepi.core.observables import (ObservableInputError, fermi_velocity, fold,
                                          folded_valleys, in_plane_directions, valley_points)
from aiida_mlepi.core.units import EV_ANGSTROM_TO_M_PER_S
from tests.core.test_bands import A, A_CC, GAMMA1, T, bilayer_pi, graphene_pi, structure_factor

V_DIRAC = 1.5 * abs(T) * A_CC  #: ħ v_F of the nearest-neighbour model, eV·Å


def _k_valley(h):
    return valley_points(h.cell)["K"]


def analytic_chord(k0, k_r, n_dir=6, bilayer=False):
    """Direction-averaged chord velocity (eV·Å) from the exact bands ±|t f| (or the bilayer low bands)."""
    out = []
    for d in in_plane_directions(n_dir):
        phi = abs(T * structure_factor(k0 + k_r * d))
        e = np.sqrt(GAMMA1**2 / 4 + phi**2) - GAMMA1 / 2 if bilayer else phi
        out.append(e / k_r)
    return float(np.mean(out))


def test_valleys_and_folding():
    h = graphene_pi()
    v = valley_points(h.cell)
    assert np.isclose(np.linalg.norm(v["K"]), 4 * np.pi / (3 * A))
    np.testing.assert_allclose(v["K'"], -v["K"])
    assert abs(structure_factor(v["K"])) < 1e-12 and abs(structure_factor(v["K'"])) < 1e-12
    with pytest.raises(ObservableInputError):
        valley_points(np.diag([2.5, 2.5, 20.0]))  # square lattice: no K
    for n1, n2 in [(3, 3), (6, 6), (2, 2), (4, 4), (3, 2), (5, 7)]:
        sc_cell = np.diag([n1, n2, 1.0]) @ h.cell
        pts = folded_valleys(h.cell, sc_cell)
        if n1 % 3 == 0 and n2 % 3 == 0:
            assert len(pts) == 1 and pts[0].multiplicity == 2
            np.testing.assert_allclose(pts[0].k_cart, 0.0, atol=1e-12)  # both fold to Γ
        else:
            assert [p.valleys for p in pts] == [("K",), ("K'",)]
        rec = 2 * np.pi * np.linalg.inv(sc_cell).T
        if len(pts) == 2:  # K' = −K up to a supercell G (corner points have 3 nearest images)
            g = (pts[0].k_cart + pts[1].k_cart) @ np.linalg.inv(rec)
            np.testing.assert_allclose(g, np.round(g), atol=1e-9)
        for p in pts:
            # k_sc − K is a supercell reciprocal vector, and no other image is closer to Γ
            g = (v[p.valleys[0]] - p.k_cart) @ np.linalg.inv(rec)
            np.testing.assert_allclose(g, np.round(g), atol=1e-9)
            for m in itertools.product(range(-2, 3), repeat=2):
                assert np.linalg.norm(p.k_cart) <= np.linalg.norm(p.k_cart + np.array([*m, 0]) @ rec) + 1e-12
    # 2×2: K folds onto the supercell K, |k| = 4π/(3·2a)
    pts = folded_valleys(h.cell, np.diag([2, 2, 1.0]) @ h.cell)
    assert np.isclose(np.linalg.norm(pts[0].k_cart), 4 * np.pi / (6 * A))
    cart, frac = fold(np.array([3.0, 0.3, 0.0]), h.cell)  # outside the BZ: folds inside |K|
    assert np.linalg.norm(cart) <= 4 * np.pi / (3 * A) + 1e-12
    np.testing.assert_allclose(frac @ h.reciprocal_cell(), cart)
    with pytest.raises(ObservableInputError):
        folded_valleys(h.cell, np.diag([2.5, 2.0, 1.0]) @ h.cell)  # not commensurate


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_monolayer_chord_is_exact_and_tends_to_dirac_velocity(n):
    prim = graphene_pi()
    h = repeat_hamiltonian(prim, n, n) if n > 1 else prim
    k0 = _k_valley(prim)
    for k_r in (0.05, 0.2):
        fv = fermi_velocity(h, prim.cell, n_electrons=len(h), k_radius=k_r)
        assert np.isclose(fv.value_ev_angstrom, analytic_chord(k0, k_r), rtol=1e-10)
        assert np.isclose(fv.value_m_per_s, fv.value_ev_angstrom * EV_ANGSTROM_TO_M_PER_S)
        assert abs(fv.fermi_level_ev) < 1e-10 and fv.method == "chord"
        assert fv.per_direction.shape == (len(fv.folded_points), 6)
    # k_r → 0: the exact Dirac velocity 3|t|a_cc/2ħ (≈ 8.7e5 m/s for t = −2.7 eV)
    fv = fermi_velocity(h, prim.cell, len(h), k_radius=1e-4)
    assert abs(fv.value_ev_angstrom / V_DIRAC - 1) < 1e-6
    assert np.isclose(V_DIRAC * EV_ANGSTROM_TO_M_PER_S, 8.74e5, rtol=2e-3)
    # ± pairs cancel trigonal warping: per-direction values differ at 0.2 Å⁻¹, the mean is smooth
    fv = fermi_velocity(h, prim.cell, len(h), k_radius=0.2)
    spread = np.ptp(fv.per_direction) / fv.value_m_per_s
    dev_02 = abs(fv.value_ev_angstrom / V_DIRAC - 1)
    dev_01 = abs(fermi_velocity(h, prim.cell, len(h), k_radius=0.1).value_ev_angstrom / V_DIRAC - 1)
    if n % 3:
        assert spread > 5 * dev_02  # first-order warping (∝ k_r) cancels in the mean …
    else:  # K and K' at the same point: warping (opposite in the two valleys) cancels per direction
        assert spread < 1e-10
    assert 3.5 < dev_02 / dev_01 < 4.5  # … which deviates only at second order (∝ k_r²)


@pytest.mark.parametrize("n", [1, 3])
def test_monolayer_hellmann_feynman_agrees_with_chord(n):
    prim = graphene_pi()
    h = repeat_hamiltonian(prim, n, n) if n > 1 else prim
    chord = fermi_velocity(h, prim.cell, len(h), k_radius=1e-3)
    hf = fermi_velocity(h, prim.cell, len(h), k_radius=1e-3, method="hellmann-feynman")
    assert abs(hf.value_ev_angstrom / chord.value_ev_angstrom - 1) < 1e-5
    assert abs(hf.value_ev_angstrom / V_DIRAC - 1) < 1e-5
    # at finite k_r HF is the radial slope of |t f|: compare with a central difference
    k0, k_r, dk = _k_valley(prim), 0.1, 1e-5
    hf = fermi_velocity(h, prim.cell, len(h), k_radius=k_r, method="hellmann-feynman")
    slopes = [(abs(T * structure_factor(k0 + (k_r + dk) * d)) - abs(T * structure_factor(k0 + (k_r - dk) * d)))
              / (2 * dk) for d in in_plane_directions(6)]
    assert np.isclose(hf.value_ev_angstrom, np.mean(slopes), rtol=1e-7)


def test_bilayer_chord_matches_analytic_low_energy_band():
    prim = bilayer_pi()
    k0 = _k_valley(prim)
    for h in (prim, repeat_hamiltonian(prim, 3, 3), repeat_hamiltonian(prim, 2, 2)):
        fv = fermi_velocity(h, prim.cell, n_electrons=len(h), k_radius=0.05)
        assert np.isclose(fv.value_ev_angstrom, analytic_chord(k0, 0.05, bilayer=True), rtol=1e-10)
    # with ħvk for |t f|: E = ½[√(γ1² + 4(ħvk)²) − γ1] → v_chord = E/(ħ k_r) (within trigonal corrections)
    hvk = V_DIRAC * 0.05
    low = 0.5 * (np.sqrt(GAMMA1**2 + 4 * hvk**2) - GAMMA1)
    assert abs(fv.value_ev_angstrom / (low / 0.05) - 1) < 2e-3
    assert 0.5 < fv.value_ev_angstrom / V_DIRAC < 0.55  # parabolic bands: 0.52 of the monolayer
    # bilayer slope at K vanishes: HF at tiny k_r is ~0 while the chord is finite
    hf0 = fermi_velocity(prim, prim.cell, 4, k_radius=1e-4, method="hellmann-feynman")
    assert abs(hf0.value_ev_angstrom) < 1e-2 * V_DIRAC
    hf = fermi_velocity(prim, prim.cell, 4, k_radius=0.05, method="hellmann-feynman")
    phi = V_DIRAC * 0.05
    slope = V_DIRAC * phi / np.sqrt(GAMMA1**2 / 4 + phi**2)  # d/dk of the low band with |tf| = ħvk
    assert abs(hf.value_ev_angstrom / slope - 1) < 5e-3


def test_sparse_solver_agrees_with_dense():
    prim = bilayer_pi()
    h = repeat_hamiltonian(prim, 6, 6)  # 144 orbitals, both valleys at Γ, g = 2
    dense = fermi_velocity(h, prim.cell, len(h))
    for method in ("chord", "hellmann-feynman"):
        ref = dense if method == "chord" else fermi_velocity(h, prim.cell, len(h), method=method)
        sparse = fermi_velocity(h, prim.cell, len(h), sparse_threshold=10, method=method)
        assert sparse.solver == "sparse" and ref.solver == "dense"
        np.testing.assert_allclose(sparse.per_direction, ref.per_direction, rtol=1e-8)
    given = fermi_velocity(h, prim.cell, len(h), solver="sparse", fermi_level=0.0)
    assert np.isclose(given.value_m_per_s, dense.value_m_per_s, rtol=1e-8)


def test_bad_input_is_rejected():
    h = graphene_pi()
    for kwargs in ({"n_electrons": 3}, {"n_electrons": 4}, {"n_electrons": 2, "method": "slope"},
                   {"n_electrons": 2, "k_radius": 0.0}, {"n_electrons": 2, "n_directions": 0}):
        with pytest.raises(ValueError):
            fermi_velocity(h, h.cell, **kwargs)


def test_reference_engine_ab_bilayer_6x6_supercell():
    """sp³ reference engine: the 6×6 AB supercell (576 orbitals, K and K' at Γ) gives the
    primitive-cell value exactly, 3.05e5 m/s at k_r = 0.05 Å⁻¹ (the engine monolayer Dirac v_F: 6.37e5)."""
    engine_mod = pytest.importorskip("aiida_mlepi.core.engine.reference")
    from aiida_mlepi.core.structures import graphene_bilayer, graphene_monolayer, in_plane_supercell

    engine = engine_mod.ReferenceEngine()
    prim = graphene_bilayer("AB")
    sc = in_plane_supercell(prim, 6)
    h_sc = engine.hamiltonian(sc)
    assert h_sc.num_orbitals == 576
    fv_sc = fermi_velocity(h_sc, prim.cell, n_electrons=4 * len(sc))
    fv_prim = fermi_velocity(engine.hamiltonian(prim), prim.cell, n_electrons=16)
    assert [p.valleys for p in fv_sc.folded_points] == [("K", "K'")]
    assert np.isclose(fv_sc.value_m_per_s, fv_prim.value_m_per_s, rtol=1e-9)
    assert np.isclose(fv_sc.fermi_level_ev, fv_prim.fermi_level_ev, atol=1e-9)
    mono = engine.hamiltonian(graphene_monolayer())
    v_mono = fermi_velocity(mono, mono.cell, 8, k_radius=1e-4).value_m_per_s
    assert np.isclose(v_mono, engine_mod.analytic_fermi_velocity(engine, 2.46), rtol=1e-4)
    assert 0.45 < fv_sc.value_m_per_s / v_mono < 0.5  # 0.479: parabolic low-energy bands
    assert np.isclose(fv_sc.value_m_per_s, 3.053e5, rtol=1e-3)
