"""Training configurations: perturbation generator, extxyz round trip, flat arrays, paper split."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlepi.core.dataset import ConfigurationSet, DatasetError, split_indices
from aiida_mlepi.core.layers import LAYER_ARRAY
from aiida_mlepi.core.perturbations import PerturbationError, PerturbationSettings, perturbed_configurations
from aiida_mlepi.core.structures import graphene_bilayer


@pytest.fixture(scope="module")
def configurations():
    settings = PerturbationSettings(supercell=(2, 2), displacement_std_angstrom=0.03)
    images = perturbed_configurations(graphene_bilayer("AB"), 6, settings, seed=7)
    rng = np.random.default_rng(1)
    return ConfigurationSet(images, rng.normal(size=6), [rng.normal(size=(len(a), 3)) for a in images])


def test_perturbations_are_seeded_and_have_the_requested_statistics():
    unit = graphene_bilayer("AB")
    settings = PerturbationSettings(supercell=(4, 4), displacement_std_angstrom=0.05, shift_fraction=0.0,
                                    separation_delta_angstrom=(0.0, 0.0))
    a = perturbed_configurations(unit, 20, settings, seed=3)
    b = perturbed_configurations(unit, 20, settings, seed=3)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    base = perturbed_configurations(unit, 1, PerturbationSettings(supercell=(4, 4), displacement_std_angstrom=0.0,
                                                                  shift_fraction=0.0,
                                                                  separation_delta_angstrom=(0.0, 0.0)))[0]
    assert len(base) == 64
    d = np.concatenate([x.get_positions() - base.get_positions() for x in a])
    d[:, :2] -= np.round(d[:, :2] @ np.linalg.inv(base.cell[:2, :2])) @ base.cell[:2, :2]  # undo wrapping
    # 20 × 64 × 3 Gaussian draws with σ = 0.05 Å: the sample σ is within a few % of it
    assert np.std(d) == pytest.approx(0.05, rel=0.05)
    assert abs(np.mean(d)) < 5e-3


def test_rigid_layer_shift_and_separation():
    unit = graphene_bilayer("AB")
    settings = PerturbationSettings(supercell=(2, 2), displacement_std_angstrom=0.0, shift_fraction=1.0,
                                    separation_delta_angstrom=(0.2, 0.2))
    for atoms in perturbed_configurations(unit, 5, settings, seed=11):
        ids = atoms.arrays[LAYER_ARRAY]
        z = atoms.positions[:, 2]
        gap = z[ids == 1].mean() - z[ids == 0].mean()
        assert gap == pytest.approx(unit.positions[2, 2] - unit.positions[0, 2] + 0.2, abs=1e-9)
        # each layer stays rigid: in-plane bonds within a layer are unchanged
        assert np.ptp(z[ids == 0]) < 1e-9 and np.ptp(z[ids == 1]) < 1e-9


def test_harmonic_family_keeps_the_stacking_and_has_its_own_amplitude():
    """harmonic_fraction 0.5 of 40: the first 20 configurations are those of the plain settings (same seed),
    the last 20 keep the relaxed stacking and separation exactly (layer means of the displacements vanish
    to the sampling error) and have in-layer displacements of σ = harmonic_displacement_std_angstrom."""
    unit = graphene_bilayer("AB")
    plain = PerturbationSettings(supercell=(4, 4))
    mixed = PerturbationSettings(supercell=(4, 4), harmonic_fraction=0.5, harmonic_displacement_std_angstrom=0.01)
    a = perturbed_configurations(unit, 20, plain, seed=5)
    b = perturbed_configurations(unit, 40, mixed, seed=5)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b[:20]))
    base = perturbed_configurations(unit, 1, PerturbationSettings(supercell=(4, 4), displacement_std_angstrom=0.0,
                                                                  shift_fraction=0.0,
                                                                  separation_delta_angstrom=(0.0, 0.0)))[0]
    d = np.array([x.get_positions() - base.get_positions() for x in b[20:]])  # (20, 64, 3)
    d[..., :2] -= np.round(d[..., :2] @ np.linalg.inv(base.cell[:2, :2])) @ base.cell[:2, :2]
    assert np.std(d) == pytest.approx(0.01, rel=0.05)
    ids = base.arrays[LAYER_ARRAY]
    for layer in (0, 1):  # no rigid shift: the mean displacement of a layer is σ/√(32) ≈ 0.002 Å, not ~1 Å
        assert np.abs(d[:, ids == layer].mean(axis=1)).max() < 0.01
    # the plain family shifts the top layer by up to a unit cell
    top = np.array([x.get_positions() - base.get_positions() for x in a])[:, ids == 1, 2].mean(axis=1)
    assert np.abs(top).max() > 0.1


def test_bad_perturbation_settings_are_named():
    with pytest.raises(PerturbationError, match="unknown perturbation settings"):
        PerturbationSettings.from_dict({"amplitude": 0.1})
    with pytest.raises(PerturbationError):
        PerturbationSettings(separation_delta_angstrom=(0.5, -0.5))
    with pytest.raises(PerturbationError, match="harmonic_fraction"):
        PerturbationSettings(harmonic_fraction=1.5)


def test_extxyz_round_trip_is_exact_and_keeps_layers(configurations, tmp_path):
    path = configurations.write_extxyz(tmp_path / "train.xyz")
    back = ConfigurationSet.read_extxyz(path)
    assert len(back) == len(configurations)
    for a, b in zip(configurations.structures, back.structures):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
        np.testing.assert_array_equal(a.arrays[LAYER_ARRAY], b.arrays[LAYER_ARRAY])
    np.testing.assert_allclose(back.energies, configurations.energies, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate(back.forces), np.concatenate(configurations.forces), atol=1e-8)
    with pytest.raises(DatasetError, match="lacks"):
        ConfigurationSet.read_extxyz(path, energy_key="DFT_energy")
    with pytest.raises(DatasetError, match="no such file"):
        ConfigurationSet.read_extxyz(tmp_path / "missing.xyz")


def test_flat_arrays_round_trip(configurations):
    back = ConfigurationSet.from_arrays(configurations.to_arrays())
    assert [len(a) for a in back.structures] == [len(a) for a in configurations.structures]
    for a, b in zip(configurations.to_atoms(), back.to_atoms()):
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        assert a.get_potential_energy() == b.get_potential_energy()


def test_mismatched_input_is_rejected(configurations):
    with pytest.raises(DatasetError, match="forces of shape"):
        ConfigurationSet(configurations.structures[:1], [0.0], [np.zeros((3, 3))])
    with pytest.raises(DatasetError, match="finite"):
        ConfigurationSet(configurations.structures[:1], [np.nan], [np.zeros((len(configurations.structures[0]), 3))])


def test_paper_split_is_disjoint_and_complete():
    split = split_indices(100, seed=2)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [81, 9, 10]
    assert np.array_equal(np.sort(np.concatenate(list(split.values()))), np.arange(100))
    assert all(np.array_equal(split_indices(100, seed=2)[k], split[k]) for k in split)
    with pytest.raises(DatasetError):
        split_indices(2)
