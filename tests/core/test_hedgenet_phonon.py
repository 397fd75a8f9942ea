"""HedgeNet-Phonon: symmetry, autograd forces, use of inter-layer edges, baseline size, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from aiida_mlepi.core.ml import (HedgeNetCalculator, HedgeNetPhonon, HedgeNetPhononConfig,
                                 ModelFileError, build_graph, load_model, predict, save_model)
from aiida_mlepi.core.structures import graphene_bilayer, graphene_monolayer, in_plane_supercell

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
torch.set_num_threads(1)


def tiny_config(**kw) -> HedgeNetPhononConfig:
    base = dict(num_channels=8, radial_mlp=(16, 16), max_ell=2, max_L=1, correlation=2,
                num_interactions=2, r_max_intra=4.5, r_max_inter=6.0, dtype="float64",
                atomic_energies=(-1.5,))
    base.update(kw)
    return HedgeNetPhononConfig(**base)


@pytest.fixture(scope="module")
def model() -> HedgeNetPhonon:
    torch.manual_seed(0)
    return HedgeNetPhonon(tiny_config())


def perturbed_bilayer(n: int = 2, d: float = 3.35, seed: int = 3):
    atoms = in_plane_supercell(graphene_bilayer("AB", interlayer_distance=d), n)
    atoms.rattle(0.05, seed=seed)
    return atoms


def energy_forces(model, atoms):
    atoms = atoms.copy()
    atoms.calc = HedgeNetCalculator(model)
    return atoms.get_potential_energy(), atoms.get_forces()


def test_invariance_and_equivariance(model):
    atoms = perturbed_bilayer(2)
    e0, f0 = energy_forces(model, atoms)
    assert np.abs(f0).max() > 1e-3  # forces are not trivially zero
    rng = np.random.default_rng(7)
    for k in range(3):
        rot = Rotation.random(random_state=k).as_matrix()
        moved = atoms.copy()
        moved.set_cell(atoms.cell[:] @ rot.T, scale_atoms=False)
        moved.positions = atoms.positions @ rot.T + rng.normal(size=3) * 3.0
        e, f = energy_forces(model, moved)
        assert abs(e - e0) <= 1e-5 * abs(e0)
        assert np.abs(f - f0 @ rot.T).max() <= 1e-5 * np.abs(f0).max()
    perm = rng.permutation(len(atoms))
    e, f = energy_forces(model, atoms[perm])
    assert abs(e - e0) <= 1e-5 * abs(e0)
    assert np.abs(f - f0[perm]).max() <= 1e-5 * np.abs(f0).max()
    assert np.abs(f0.sum(axis=0)).max() < 1e-10  # translation invariance: no net force


def test_forces_are_minus_energy_gradient(model):
    atoms = perturbed_bilayer(2)
    _, forces = energy_forces(model, atoms)
    h = 1e-4
    for atom, axis in [(0, 0), (3, 2), (9, 1), (14, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        fd = -(energy_forces(model, plus)[0] - energy_forces(model, minus)[0]) / (2 * h)
        assert fd == pytest.approx(forces[atom, axis], rel=1e-6, abs=1e-8)


def test_stress_is_strain_derivative(model):
    atoms = perturbed_bilayer(2)
    atoms.calc = HedgeNetCalculator(model)
    stress = atoms.get_stress(voigt=False)
    eps = 1e-5
    for a, b in [(0, 0), (1, 1), (0, 1)]:
        es = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * eps / (2 if a != b else 1)
            strain[b, a] += sign * eps / 2 if a != b else 0.0
            s = atoms.copy()
            s.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
            es.append(energy_forces(model, s)[0])
        fd = (es[0] - es[1]) / (2 * eps) / atoms.get_volume()
        assert fd == pytest.approx(stress[a, b], rel=1e-5, abs=1e-9)


def test_inter_layer_edges_are_used(model):
    """Between r_max_intra (4.5 Å) and r_max_inter (6 Å) only inter edges see the separation."""
    distances = [4.8, 5.2, 5.6, 7.0, 7.5]
    curve = np.array([energy_forces(model, perturbed_bilayer(2, d))[0] for d in distances])
    assert np.ptp(curve[:3]) > 1e-4  # binding curve depends on d beyond the intra cutoff
    assert curve[3] == pytest.approx(curve[4], abs=1e-10)  # beyond both cutoffs: flat
    zeroed = HedgeNetPhonon(model.config)
    zeroed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for blocks in (zeroed.interactions, zeroed.products):
            for p in (q for layer in blocks for q in layer["inter"].parameters()):
                p.zero_()
    flat = np.array([energy_forces(zeroed, perturbed_bilayer(2, d))[0] for d in distances])
    assert np.ptp(flat) < 1e-10  # without the inter block the layers do not see each other
    assert np.abs(flat[:3] - curve[:3]).max() > 1e-4  # so zeroing changed the binding curve


def test_single_layer_structure_works(model):
    mono = in_plane_supercell(graphene_monolayer(), 3)
    mono.rattle(0.03, seed=1)
    graph = build_graph(mono, model.config.atomic_numbers, model.config.cutoffs, torch.float64)
    assert graph.edge_index["inter"].shape == (2, 0)
    e_mono, f_mono = energy_forces(model, mono)
    assert np.isfinite(e_mono) and np.abs(f_mono.sum(axis=0)).max() < 1e-10
    # two copies far apart (20 Å > both cutoffs) are two independent layers
    bil = in_plane_supercell(graphene_bilayer("AA", interlayer_distance=20.0), 3)
    bil.positions[:] = np.concatenate([mono.positions[:18], mono.positions[:18]])[
        np.argsort(np.r_[np.flatnonzero(bil.arrays["layer_ids"] == 0),
                         np.flatnonzero(bil.arrays["layer_ids"] == 1)])]
    bil.positions[bil.arrays["layer_ids"] == 1, 2] += 20.0
    e_bil, _ = energy_forces(model, bil)
    assert e_bil == pytest.approx(2 * e_mono, rel=1e-10)


def test_homogeneous_baseline_has_half_the_interaction_parameters():
    het = HedgeNetPhonon(tiny_config(heterogeneous=True))
    hom = HedgeNetPhonon(tiny_config(heterogeneous=False))
    assert het.num_parameters("interactions") == 2 * hom.num_parameters("interactions")
    assert het.num_parameters() - hom.num_parameters() == hom.num_parameters("interactions")
    atoms = perturbed_bilayer(2)
    e, f = energy_forces(hom, atoms)
    assert np.isfinite(e) and np.abs(f.sum(axis=0)).max() < 1e-10


def test_batched_predictor_matches_calculator(model):
    structures = [perturbed_bilayer(2, seed=s) for s in range(3)] + [perturbed_bilayer(1)]
    energies, forces = predict(model, structures, batch_size=3)
    for atoms, e, f in zip(structures, energies, forces):
        e_ref, f_ref = energy_forces(model, atoms)
        assert e == pytest.approx(e_ref, rel=1e-12)
        assert np.abs(f - f_ref).max() < 1e-10


def test_float32_default_agrees_with_float64(model):
    m32 = HedgeNetPhonon(tiny_config(dtype="float32"))
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    atoms = perturbed_bilayer(2)
    assert HedgeNetPhononConfig().dtype == "float32"
    (e32, f32), (e64, f64) = energy_forces(m32, atoms), energy_forces(model, atoms)
    # the total is a near-cancellation of Σ E0 (−24 eV here) and the readouts (+23.5 eV): float32 round-off is
    # relative to those terms (1e-6 of 24 eV), not to the −0.54 eV left over (7e-6 eV seen with torch 2.13 CPU)
    scale = abs(sum(model.config.atomic_energies[0] for _ in atoms)) + abs(e64)
    assert abs(e32 - e64) < 1e-6 * scale
    assert np.abs(f32 - f64).max() < 1e-4 * max(1.0, np.abs(f64).max())


def test_save_load_round_trip_and_errors(model, tmp_path):
    path = tmp_path / "model.pt"
    save_model(model, path)
    payload = torch.load(path, weights_only=True)
    assert payload["config"]["num_channels"] == 8
    loaded = load_model(path)
    atoms = perturbed_bilayer(2)
    assert energy_forces(loaded, atoms)[0] == energy_forces(model, atoms)[0]

    # energy_scale / energy_shift: E = Σ E0 + scale · Σ readout + N · shift, forces scale with it
    from dataclasses import replace
    e, f = energy_forces(model, atoms)
    saved = model.config
    try:
        model.config = replace(saved, energy_scale=3.0, energy_shift=0.25)
        e2, f2 = energy_forces(model, atoms)
    finally:
        model.config = saved
    e0 = len(atoms) * saved.atomic_energies[0]
    assert e2 == pytest.approx(e0 + 3.0 * (e - e0) + 0.25 * len(atoms), rel=1e-5)
    assert np.allclose(f2, 3.0 * f, rtol=1e-4, atol=1e-6)
    # version-1 files (no energy_scale / energy_shift) still load, as scale 1 and shift 0
    old = dict(payload, version=1, config={k: v for k, v in payload["config"].items()
                                          if k not in ("energy_scale", "energy_shift")})
    torch.save(old, tmp_path / "v1.pt")
    assert energy_forces(load_model(tmp_path / "v1.pt"), atoms)[0] == e
    torch.save(dict(payload, version=99), tmp_path / "v99.pt")
    with pytest.raises(ModelFileError, match="version 99"):
        load_model(tmp_path / "v99.pt")

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(corrupt)

    payload["config"]["num_channels"] = 4
    mismatched = tmp_path / "mismatched.pt"
    torch.save(payload, mismatched)
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(mismatched)


def test_bad_input_is_rejected(model):
    with pytest.raises(ValueError, match="atomic energy"):
        HedgeNetPhononConfig(atomic_numbers=(6, 1), atomic_energies=(0.0,))
    atoms = perturbed_bilayer(1)
    atoms.numbers[0] = 1
    with pytest.raises(ValueError, match="atomic numbers"):
        energy_forces(model, atoms)
