"""Committee spreads: analytic values, zero for identical members, > 0 for members of different seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from aiida_mlepi.core.committee import (CommitteeError, CommitteeThreshold, force_spread, hamiltonian_spread,
                                        member_std)
from aiida_mlepi.core.engine import ReferenceEngine
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations
from aiida_mlepi.core.structures import graphene_bilayer

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def structure():
    return perturbed_configurations(graphene_bilayer("AB"), 1, PerturbationSettings(supercell=(2, 2)), seed=3)[0]


@pytest.fixture(scope="module")
def engine_h(structure):
    return ReferenceEngine().hamiltonian(structure)


def test_member_std_is_the_sample_std():
    assert member_std([1.0]) is None and member_std([]) is None
    assert member_std([1.0, 3.0]) == pytest.approx(np.sqrt(2.0))  # |a − b|/√2
    assert member_std([2.0, 4.0, 6.0]) == pytest.approx(2.0)


def test_force_spread_analytic():
    rng = np.random.default_rng(0)
    forces = rng.normal(size=(16, 3))
    assert force_spread([forces]) is None
    assert force_spread([forces, forces.copy()]) == 0.0
    shift = np.array([0.3, -0.4, 0.0])  # |d| = 0.5 eV/Å on every atom: per-atom std vector norm |d|/√2
    assert force_spread([forces, forces + shift]) == pytest.approx(0.5 / np.sqrt(2), rel=1e-12)
    # three members: one atom displaced only → RMS over atoms = sqrt(var_sum(atom 0)/N)
    third = forces.copy()
    third[0] += [0.0, 0.0, 0.9]
    var = np.var([0.0, 0.0, 0.9], ddof=1)
    assert force_spread([forces, forces, third]) == pytest.approx(np.sqrt(var / 16), rel=1e-12)
    with pytest.raises(ValueError):
        force_spread([forces, forces[:, :2]])


def test_hamiltonian_spread_analytic_and_aligned_by_edges(engine_h):
    assert hamiltonian_spread([engine_h]) is None
    assert hamiltonian_spread([engine_h, dataclasses.replace(engine_h)]) == 0.0
    shifted = dataclasses.replace(engine_h, h_values=engine_h.h_values + 0.02)
    assert hamiltonian_spread([engine_h, shifted]) == pytest.approx(0.02 / np.sqrt(2), rel=1e-12)
    # the same blocks in another edge order: still identical members
    order = np.random.default_rng(1).permutation(len(engine_h.edges))
    offsets = engine_h.block_offsets
    values = np.concatenate([engine_h.h_values[offsets[k]:offsets[k + 1]] for k in order])
    permuted = dataclasses.replace(engine_h, edges=engine_h.edges[order], h_values=values)
    assert hamiltonian_spread([engine_h, permuted]) == 0.0
    with pytest.raises(CommitteeError, match="not of the same structure"):
        other = dataclasses.replace(engine_h, numbers=np.full_like(engine_h.numbers, 1), basis={1: (0, 1)})
        hamiltonian_spread([engine_h, other])


def test_threshold_parsing_and_flags():
    limits = CommitteeThreshold.from_dict({"forces_ev_per_angstrom": 0.1, "hamiltonian_mev": 5})
    assert limits.exceeded(0.05, 4.0) == [] and limits.exceeded(0.2, 6.0) == ["forces", "hamiltonian"]
    assert limits.exceeded(None, 6.0) == ["hamiltonian"]
    assert CommitteeThreshold.from_dict({"forces_ev_per_angstrom": None}).exceeded(9.0, 9.0) == []
    with pytest.raises(CommitteeError, match="unknown committee_threshold keys"):
        CommitteeThreshold.from_dict({"forces": 0.1})
    with pytest.raises(CommitteeError, match="must be a number ≥ 0"):
        CommitteeThreshold.from_dict({"hamiltonian_mev": -1})


def test_member_seeds():
    from aiida_mlepi.workchains.committee import member_parameters

    base = {"model": {"num_layers": 1}, "training": {"seed": 3, "max_epochs": 2}, "split": {"seed": 0}}
    assert member_parameters(base, 0) == base
    two = member_parameters(base, 2)
    assert two["training"] == {"seed": 5, "max_epochs": 2} and two["split"]["seed"] == 2 and base["training"]["seed"] == 3
    assert member_parameters({"model": {}}, 1)["training"]["seed"] == 1


def test_electron_members_identical_vs_different_seeds(structure):
    """Same seed → identical weights → zero spread exactly; another seed → a spread > 0 (meV scale)."""
    torch = pytest.importorskip("torch")
    from aiida_mlepi.core.ml.electron_batch import predict_hamiltonians
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig

    config = HedgeNetElectronConfig(dtype="float64", num_layers=1, num_scalars=8, num_vectors=2, num_tensors=1,
                                    radial_hidden=16, num_basis=6)
    models = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        models.append(HedgeNetElectron(config))
    h = [predict_hamiltonians(model, [structure], dtype="float64")[0] for model in models]
    assert hamiltonian_spread(h[:2]) == 0.0
    spread = hamiltonian_spread([h[0], h[2]])
    assert spread > 1e-4  # eV
    # std of two = |Δ|/√2 elementwise → RMS equals the RMS difference / √2
    assert spread == pytest.approx(np.sqrt(np.mean((h[0].h_values - h[2].h_values) ** 2)) / np.sqrt(2), rel=1e-12)


def test_phonon_members_identical_vs_different_seeds(structure):
    torch = pytest.importorskip("torch")
    from aiida_mlepi.core.ml import HedgeNetPhonon, HedgeNetPhononConfig, predict

    config = HedgeNetPhononConfig(num_channels=8, radial_mlp=(16, 16), max_ell=1, max_L=0, correlation=2,
                                  num_interactions=1, r_max_intra=3.0, r_max_inter=4.5, dtype="float64",
                                  atomic_energies=(-1.5,))
    forces = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        forces.append(predict(HedgeNetPhonon(config), [structure])[1][0])
    assert force_spread(forces[:2]) == 0.0
    assert force_spread([forces[0], forces[2]]) > 0.0
