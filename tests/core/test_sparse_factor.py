"""Sparse factorisations for shift-invert (:mod:`aiida_mlepi.core.sparse_factor`) against dense eigh."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from aiida_mlepi.core.bands import ShiftInvert, states_in_window
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.sparse_factor import (PARDISO_MIN_SIZE, FactorizationError, factorize, pardiso_available,
                                            resolve_factorization)
from aiida_mlepi.core.stacking import twisted_bilayer_graphene

needs_pardiso = pytest.mark.skipif(not pardiso_available(),
                                   reason="pypardiso/MKL not installed (pip install 'aiida-mlepi[sparse]')")
METHODS = ["superlu", pytest.param("pardiso", marks=needs_pardiso)]
#: fractional k of the twisted cell: Γ (H(k) real), a generic point (complex), M (real: e^{iπn} = ±1)
K_FRAC = {"gamma": (0.0, 0.0, 0.0), "generic": (0.137, 0.052, 0.0), "M": (0.5, 0.0, 0.0)}


@pytest.fixture(scope="module")
def twisted():
    """Reference-engine H(R) of the θ = 13.17° twisted bilayer (76 atoms, 304 orbitals, sp³)."""
    return ReferenceEngine().hamiltonian(twisted_bilayer_graphene(m=2))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k_name", list(K_FRAC))
def test_shift_invert_matches_dense_eigh(twisted, method, k_name):
    """The 10 states nearest the Dirac energy agree with dense eigh to 1e-8 eV, at real and complex H(k)."""
    k = np.asarray(K_FRAC[k_name]) @ twisted.reciprocal_cell()
    full = scipy.linalg.eigh(twisted.hk(k).toarray(), eigvals_only=True)
    sigma = 0.5 * (full[2 * 76 - 1] + full[2 * 76]) + 0.0123  # near E_F: 4 electrons per C, 2 per state
    expected = np.sort(full[np.argsort(np.abs(full - sigma))[:10]])
    solver = ShiftInvert(twisted, k, sigma, factorization=method)
    assert solver.lu.method == method
    energies, vectors = solver.nearest(10)
    assert np.abs(energies - expected).max() < 1e-8
    hk = twisted.hk(k)
    assert np.abs(hk @ vectors - vectors * energies).max() < 1e-8


@pytest.mark.parametrize("method", METHODS)
def test_factorization_solves_complex_and_real_right_hand_sides(twisted, method):
    """A x = b to round-off for a complex A (real-equivalent path of PARDISO) and a real A with complex b."""
    rng = np.random.default_rng(0)
    for k_frac in (K_FRAC["generic"], K_FRAC["gamma"]):
        a = (twisted.hk(np.asarray(k_frac) @ twisted.reciprocal_cell()) - 0.3 * sp.identity(twisted.num_orbitals)).tocsc()
        b = rng.normal(size=a.shape[0]) + 1j * rng.normal(size=a.shape[0])
        f = factorize(a, method)
        x = f.solve(b)
        assert f.fill > a.nnz // 2
        assert np.linalg.norm(a @ x - b) < 1e-9 * np.linalg.norm(b)
        f.release()


@pytest.mark.parametrize("method", METHODS)
def test_states_in_window_with_each_factorization(twisted, method):
    k = np.asarray(K_FRAC["generic"]) @ twisted.reciprocal_cell()
    full = scipy.linalg.eigh(twisted.hk(k).toarray(), eigvals_only=True)
    e_f = 0.5 * (full[151] + full[152])
    energies, _ = states_in_window(twisted, k, e_f - 1.5, e_f + 1.5, solver="sparse", factorization=method)
    expected = full[(full >= e_f - 1.5) & (full <= e_f + 1.5)]
    assert len(expected) > 4 and energies.shape == expected.shape
    assert np.abs(energies - expected).max() < 1e-8


def test_bad_factorization_names():
    with pytest.raises(FactorizationError, match="unknown factorisation"):
        resolve_factorization("mumps")
    with pytest.raises(FactorizationError, match="SuperLU ordering"):
        factorize(sp.identity(3, format="csc"), "superlu", ordering="METIS")
    assert resolve_factorization("auto") == ("pardiso" if pardiso_available() else "superlu")
    assert resolve_factorization("auto", size=PARDISO_MIN_SIZE - 1) == "superlu"  # small: SuperLU is faster
    assert factorize(sp.identity(3, format="csc"), "auto").method == "superlu"


@pytest.mark.skipif(pardiso_available(), reason="checks the message shown when pypardiso is missing")
def test_missing_pardiso_is_a_clear_error():
    with pytest.raises(FactorizationError, match=r"aiida-mlepi\[sparse\]"):
        resolve_factorization("pardiso")
