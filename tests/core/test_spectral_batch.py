"""Batched spectra (one model load, batched inference, worker processes) = the per-configuration path."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from aiida_mlepi.core.ml.hedgenet_electron import (HedgeNetElectron, HedgeNetElectronConfig, predict_hamiltonian,
                                                   save_model)
from aiida_mlepi.core.spectral_batch import SpectralBatchError, predicted_spectra
from aiida_mlepi.core.spectral_estimators import SpectralSettings, configuration_spectrum
from aiida_mlepi.core.structures import graphene_bilayer, in_plane_supercell

TINY = dict(num_layers=1, num_scalars=8, num_vectors=2, num_tensors=1, radial_hidden=16, num_basis=6)
#: few k-points: 2 directions × 2 q + a 3-point line; 3×3 supercell (36 atoms, 144 orbitals, K folds onto Γ)
SETTINGS = SpectralSettings(n_q=2, n_directions=2, line_points=3, energy_half_width_ev=3.0)


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(1)
    model = HedgeNetElectron(HedgeNetElectronConfig(dtype="float32", **TINY))
    buffer = io.BytesIO()
    save_model(model, buffer)
    primitive = graphene_bilayer("AB")
    rng = np.random.default_rng(2)
    structures = []
    for _ in range(3):
        atoms = in_plane_supercell(primitive, 3)
        atoms.positions += rng.normal(0.0, 0.04, atoms.positions.shape)
        structures.append(atoms)
    return model, buffer.getvalue(), primitive, structures


def _serial(model, primitive, structures, reference):
    """The per-configuration path: H(R) of each structure from scratch, then its spectrum."""
    n_electrons = 4 * len(structures[0])
    return [configuration_spectrum(predict_hamiltonian(model, atoms), primitive, n_electrons, SETTINGS, reference)
            for atoms in structures]


def test_batched_spectra_equal_per_configuration_path(case):
    """Two worker processes (one model load each, batched float32 inference with topology reuse): energies within
    1e-5 eV of the per-configuration path (float32 H(R) built through different graph paths), weights within
    1e-5, in input order. (``workers=1`` runs the same function in this process.)"""
    model, content, primitive, structures = case
    expected = _serial(model, primitive, structures, -0.1)
    spectra, timings = predicted_spectra(content, structures, primitive, 4 * len(structures[0]), SETTINGS,
                                         -0.1, workers=2)
    assert len(spectra) == len(structures) and timings.workers == 2
    assert timings.predict_s > 0 and timings.observable_s > 0 and timings.wall_s > 0
    assert [n for n, _, _ in timings.per_worker] == [2, 1]
    for got, want in zip(spectra, expected):
        assert np.isfinite(want.energies).sum() >= 4
        np.testing.assert_array_equal(np.isfinite(got.energies), np.isfinite(want.energies))
        assert np.nanmax(np.abs(got.energies - want.energies)) < 1e-5
        assert np.abs(got.weights - want.weights).max() < 1e-5
        assert np.nanmax(np.abs(got.line_energies - want.line_energies)) < 1e-5
        assert abs(got.fermi_level_ev - want.fermi_level_ev) < 1e-5
    # the configurations differ: the comparison is not of identical spectra
    assert np.nanmax(np.abs(spectra[0].energies - spectra[1].energies)) > 1e-3


def test_batched_spectra_input_errors(case):
    _, content, primitive, structures = case
    with pytest.raises(SpectralBatchError, match="workers"):
        predicted_spectra(content, structures, primitive, 144, SETTINGS, workers=0)
    assert predicted_spectra(content, [], primitive, 144, SETTINGS)[0] == []
