"""DFT-D3 dispersion of GpawLcaoSettings(dispersion=...): physical on hBN, added a posteriori to GPAW."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings, dispersion_correction

pytest.importorskip("dftd3", reason="the dftd3 package (extra 'gpaw') is not installed")


@pytest.fixture(scope="module")
def hbn():
    from aiida_mlepi.core.catalogue import load_catalogue

    return load_catalogue()["aa-prime-bilayer-hbn"].build()


def test_d3_binds_the_layers_and_is_force_consistent(hbn):
    settings = GpawLcaoSettings(dispersion="d3bj")
    energy, forces = dispersion_correction(hbn, settings)
    top = hbn.arrays["layer_ids"] == 1
    assert energy < 0 and np.abs(forces.sum(axis=0)).max() < 1e-10  # attractive; no net force
    assert forces[top, 2].sum() < 0 < forces[~top, 2].sum()  # the layers pull each other together
    # force consistency: −dE/dz of a rigid shift of the top layer = Σ F_z(top) (central difference)
    step = 1e-3
    shifted = []
    for sign in (1, -1):
        atoms = hbn.copy()
        atoms.positions[top, 2] += sign * step
        shifted.append(dispersion_correction(atoms, settings)[0])
    assert -(shifted[0] - shifted[1]) / (2 * step) == pytest.approx(forces[top, 2].sum(), rel=1e-5)
    # open along z (pbc F) = the same cell periodic with 30 Å of vacuum
    slab = hbn.copy()
    slab.pbc = True
    slab.center(vacuum=15.0, axis=2)
    assert dispersion_correction(slab, settings)[0] == pytest.approx(energy, abs=1e-4)
    # zero damping binds less than Becke–Johnson at the equilibrium gap; 'none' is exactly zero
    assert energy < dispersion_correction(hbn, GpawLcaoSettings(dispersion="d3zero"))[0] < 0
    none_energy, none_forces = dispersion_correction(hbn, GpawLcaoSettings())
    assert none_energy == 0.0 and not none_forces.any()


def test_gpaw_energy_and_forces_include_d3():
    """GPAW with dispersion='d3bj' = GPAW without it + D3, on the same SCF (H2, Γ, ~1 s each)."""
    from tests.core.test_gpaw_engine import require_gpaw

    require_gpaw()
    from ase import Atoms

    from aiida_mlepi.core.engine.gpaw_lcao import compute

    atoms = Atoms("H2", positions=[[0, 0, 0], [0.1, 0, 0.74]], cell=[4.0, 4.0, 4.5], pbc=False)
    atoms.center()
    plain = compute(atoms, (1, 1, 1), GpawLcaoSettings(grid_spacing_angstrom=0.3))
    with_d3 = compute(atoms, (1, 1, 1), GpawLcaoSettings(grid_spacing_angstrom=0.3, dispersion="d3bj"))
    d3_energy, d3_forces = dispersion_correction(atoms, GpawLcaoSettings(dispersion="d3bj"))
    assert d3_energy < 0 and with_d3.dispersion_energy == d3_energy and plain.dispersion_energy == 0.0
    assert with_d3.energy - plain.energy == pytest.approx(d3_energy, abs=1e-8)
    np.testing.assert_allclose(with_d3.forces - plain.forces, d3_forces, atol=1e-8)
    assert with_d3.fermi_level == plain.fermi_level  # the electrons do not see D3
