"""HedgeNet-Electron: CG block mapping, equivariance, hermiticity by construction, baseline, training, files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aiida_mlepi.core.engine import ReferenceEngine  # noqa: E402
from aiida_mlepi.core.layers import get_layer_ids  # noqa: E402
from aiida_mlepi.core.ml.electron_blocks import block_map, e3nn_to_openmx, pair_irreps  # noqa: E402
from aiida_mlepi.core.ml.electron_training import (ElectronTrainingSettings, evaluate,  # noqa: E402
                                                   load_hamiltonians, save_hamiltonians, train_electron_model)
from aiida_mlepi.core.ml.graph import GraphError  # noqa: E402
from aiida_mlepi.core.ml.hedgenet_electron import (ElectronModelConfigError, ElectronModelFileError,  # noqa: E402
                                                   HedgeNetElectron, HedgeNetElectronConfig, load_model,
                                                   predict_hamiltonian, save_model)
from aiida_mlepi.core.perturbations import PerturbationSettings, perturbed_configurations  # noqa: E402
from aiida_mlepi.core.structures import graphene_bilayer  # noqa: E402
from aiida_mlepi.core.wigner import rotate_blocks, wigner_d  # noqa: E402

TINY = dict(num_layers=1, num_scalars=8, num_vectors=2, num_tensors=1, radial_hidden=16, num_basis=6)
ROTATION = np.array([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]])  # proper, det = +1


@pytest.fixture(scope="module")
def configurations():
    return perturbed_configurations(graphene_bilayer("AB"), 6, PerturbationSettings(supercell=(2, 2)), seed=3)


@pytest.fixture(scope="module")
def hamiltonians(configurations):
    engine = ReferenceEngine()
    return [engine.hamiltonian(atoms) for atoms in configurations]


_MODELS: dict = {}


def _model(**kw) -> HedgeNetElectron:
    """Tiny float64 models, built once per settings (construction dominates these tests' time)."""
    key = tuple(sorted(kw.items()))
    if key not in _MODELS:
        torch.manual_seed(0)
        _MODELS[key] = HedgeNetElectron(HedgeNetElectronConfig(dtype="float64", **{**TINY, **kw}))
    return _MODELS[key]


def test_cg_block_map_is_equivariant_in_openmx_order():
    """f → D_e3nn f maps the block B(f) to D_openmx B D_openmxᵀ (s, p, d shells)."""
    from e3nn import o3

    rng = np.random.default_rng(0)
    shells_i, shells_j = (0, 1, 2), (1, 2)
    irreps = pair_irreps(shells_i, shells_j)
    m = block_map(shells_i, shells_j)
    assert m.shape == (irreps.dim, 9 * 8)
    f = rng.normal(size=irreps.dim)
    d_f = irreps.D_from_matrix(torch.tensor(ROTATION)).numpy()
    d_i = np.zeros((9, 9))
    d_j = np.zeros((8, 8))
    for d, shells in ((d_i, shells_i), (d_j, shells_j)):
        o = 0
        for l in shells:
            d[o:o + 2 * l + 1, o:o + 2 * l + 1] = wigner_d(l, ROTATION)
            o += 2 * l + 1
    block = (f @ m).reshape(9, 8)
    np.testing.assert_allclose((d_f @ f) @ m, (d_i @ block @ d_j.T).ravel(), atol=1e-12)
    # l = 1: e3nn's harmonics are (x, y, z) = OpenMX px, py, pz here; l = 2 is a proper rotation of the basis
    np.testing.assert_allclose(e3nn_to_openmx(1), np.eye(3), atol=1e-12)
    assert np.allclose(e3nn_to_openmx(2) @ e3nn_to_openmx(2).T, np.eye(5))
    assert str(pair_irreps((1,), (1,))) == "1x0e+1x1e+1x2e"


@pytest.mark.parametrize("heterogeneous", [True, False])
def test_equivariance_under_rotation(configurations, hamiltonians, heterogeneous):
    """Rotating the structure rotates every predicted block with the Wigner-D of its orbitals (< 1e-5 eV)."""
    model = _model(heterogeneous=heterogeneous)
    h = predict_hamiltonian(model, hamiltonians[0])
    assert np.abs(h.h_values).max() > 0.1  # not trivially zero
    rotated = rotate_blocks(h, ROTATION)  # D H Dᵀ of the prediction, and the rotated structure
    layers = get_layer_ids(configurations[0])
    again = predict_hamiltonian(model, rotated, layer_ids=layers)
    assert np.abs(again.h_values - rotated.h_values).max() < 1e-5
    # improper (mirror z → −z) as well: parity of the p shell included
    mirror = np.diag([1.0, 1.0, -1.0])
    mirrored = rotate_blocks(h, mirror)
    assert np.abs(predict_hamiltonian(model, mirrored, layer_ids=layers).h_values - mirrored.h_values).max() < 1e-5


def _blocks_by_edge(h) -> dict:
    """(Rx, Ry, Rz, i, j) → block (eV) of every edge of ``h``."""
    return {tuple(int(v) for v in edge): h.block(e) for e, edge in enumerate(h.edges)}


@pytest.mark.parametrize("heterogeneous", [True, False])
def test_equivariance_under_atom_permutation(configurations, heterogeneous):
    """Relabelling the atoms relabels the blocks: H'_kl(R) = H_{p(k) p(l)}(R) for every block (< 1e-10 eV)."""
    model = _model(heterogeneous=heterogeneous)
    atoms = configurations[2]
    perm = np.random.default_rng(11).permutation(len(atoms))
    assert not np.array_equal(perm, np.arange(len(atoms)))
    h = predict_hamiltonian(model, atoms)
    h_perm = predict_hamiltonian(model, atoms[perm])  # atom k of the permuted structure is atom perm[k]
    assert h_perm.hermiticity_error() == 0.0
    blocks, blocks_perm = _blocks_by_edge(h), _blocks_by_edge(h_perm)
    mapped = {(rx, ry, rz, int(perm[k]), int(perm[l])): b for (rx, ry, rz, k, l), b in blocks_perm.items()}
    assert set(mapped) == set(blocks) and len(blocks) > 10 * len(atoms)
    onsite = [key for key in blocks if key[3] == key[4] and not any(key[:3])]
    offsite = [key for key in blocks if key not in onsite]
    assert np.abs(np.concatenate([blocks[k].ravel() for k in offsite])).max() > 0.1  # not trivially zero
    err_on = max(np.abs(mapped[k] - blocks[k]).max() for k in onsite)
    err_off = max(np.abs(mapped[k] - blocks[k]).max() for k in offsite)
    assert err_on < 1e-10 and err_off < 1e-10, (err_on, err_off)


def test_hermitian_by_construction_and_engine_edge_set(configurations, hamiltonians):
    model = _model()
    h = predict_hamiltonian(model, configurations[1])
    assert h.hermiticity_error() == 0.0  # exactly: the partner block is the transpose
    onsite = np.flatnonzero((h.edges[:, 3] == h.edges[:, 4]) & ~h.edges[:, :3].any(axis=1))
    assert len(onsite) == len(configurations[1])
    for e in onsite[:4]:
        assert np.array_equal(h.block(e), h.block(e).T)
    # with the default block cutoffs (2.6 Å intra, 6.0 Å inter) the edge set is the engine's
    ref = hamiltonians[1]
    assert sorted(map(tuple, h.edges.tolist())) == sorted(map(tuple, ref.edges.tolist()))
    assert h.s_values is None and h.metadata["model"] == "HedgeNet-Electron"
    # H(k) is hermitian too
    hk = h.hk(np.array([0.3, 0.1, 0.0])).toarray()
    assert np.abs(hk - hk.conj().T).max() < 1e-12


def test_homogeneous_baseline_from_the_same_code(hamiltonians):
    het, hom = _model(), _model(heterogeneous=False)
    assert het.config.relations == ("intra", "inter") and hom.config.relations == ("all",)
    assert hom.config.cutoffs == {"all": 6.5}
    assert set(hom.convolutions[0]) == {"all"} and set(het.convolutions[0]) == {"intra", "inter"}
    assert hom.num_parameters() < het.num_parameters()
    assert _model(heterogeneous=False, num_layers=2).num_parameters() > hom.num_parameters()
    assert len(_model(heterogeneous=False, num_layers=2).convolutions) == 2
    h = predict_hamiltonian(hom, hamiltonians[0])
    assert h.hermiticity_error() == 0.0 and np.array_equal(h.edges, hamiltonians[0].edges)


def test_clear_errors(configurations, hamiltonians):
    with pytest.raises(ElectronModelConfigError, match="no orbital basis"):
        HedgeNetElectronConfig(atomic_numbers=(6, 1))
    with pytest.raises(ElectronModelConfigError, match="block cutoffs"):
        HedgeNetElectronConfig(block_cutoff_inter=7.0)
    with pytest.raises(ElectronModelConfigError, match="unknown"):
        HedgeNetElectronConfig.from_dict({"layers": 3})
    small = _model(r_max_inter=4.0, block_cutoff_inter=4.0)
    with pytest.raises(GraphError, match="beyond the model's inter cutoff"):
        small.graph(hamiltonians[0])
    atoms = configurations[0].copy()
    atoms.numbers[0] = 14
    with pytest.raises(GraphError, match="no orbital basis for atomic numbers \\[14\\]"):
        predict_hamiltonian(_model(), atoms)


def test_training_resume_and_model_files(hamiltonians, tmp_path):
    config = HedgeNetElectronConfig(dtype="float64", **TINY)
    settings = ElectronTrainingSettings(max_epochs=4, learning_rate=2e-2, batch_size=1, seed=5)
    train, val, test = hamiltonians[:4], hamiltonians[4:5], hamiltonians[5:]
    untrained = evaluate(_model(), test).mae_mev
    full = train_electron_model(config, train, val, test, settings)
    assert [row["epoch"] for row in full.history] == [1, 2, 3, 4]
    assert full.history[-1]["train_loss"] < full.history[0]["train_loss"]
    assert np.isfinite(full.test.mae_mev) and full.test.mae_mev < 0.7 * untrained
    assert full.test.num_values == hamiltonians[5].h_values.size
    metrics = full.metrics()
    assert metrics["model_kind"] == "hedgenet-electron" and metrics["test"]["h_mae_mev"] == full.test.mae_mev

    # interrupted after 2 epochs, resumed to 4: the same history and weights as the straight run
    ckpt = tmp_path / "checkpoint.pt"
    train_electron_model(config, train, val, test,
                         ElectronTrainingSettings(**{**settings.to_dict(), "max_epochs": 2}), checkpoint_path=ckpt)
    resumed = train_electron_model(config, train, val, test, settings, checkpoint_path=ckpt, resume_from=ckpt)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_allclose([r["train_loss"] for r in resumed.history],
                               [r["train_loss"] for r in full.history], rtol=1e-9)
    assert resumed.test.mae_mev == pytest.approx(full.test.mae_mev, rel=1e-9)
    old_ckpt = tmp_path / "old_checkpoint.pt"  # written before the order-independent readout: no model_version
    state = torch.load(ckpt, weights_only=True)
    assert state.pop("model_version") == 2
    torch.save(state, old_ckpt)
    with pytest.raises(ElectronModelFileError, match="version-1 HedgeNet-Electron checkpoint.*retrain"):
        train_electron_model(config, train, val, test, settings, resume_from=old_ckpt)
    with pytest.raises(ElectronModelFileError, match="different model config"):
        train_electron_model(HedgeNetElectronConfig(dtype="float64", **{**TINY, "num_scalars": 4}),
                             train, val, test, settings, resume_from=ckpt)

    # model file: safe load round trip, corrupt and mismatched files
    path = tmp_path / "model.pt"
    save_model(full.model, path)
    assert torch.load(path, weights_only=True)["format"] == "aiida-mlepi/hedgenet-electron"
    loaded = load_model(path)
    np.testing.assert_array_equal(predict_hamiltonian(loaded, test[0]).h_values,
                                  predict_hamiltonian(full.model, test[0]).h_values)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ElectronModelFileError, match="corrupt or truncated"):
        load_model(bad)
    payload = torch.load(path, weights_only=True)
    assert payload["version"] == 2
    for version, message in ((1, "version-1 HedgeNet-Electron model file.*retrain"), (7, "version 7")):
        torch.save({**payload, "version": version}, bad)
        with pytest.raises(ElectronModelFileError, match=message):
            load_model(bad)
    payload["config"]["num_scalars"] = 4
    torch.save(payload, bad)
    with pytest.raises(ElectronModelFileError, match="do not match its config"):
        load_model(bad)


def test_dataset_file_round_trip(hamiltonians, tmp_path):
    save_hamiltonians(tmp_path / "h.npz", hamiltonians[:2])
    back = load_hamiltonians(tmp_path / "h.npz")
    assert len(back) == 2 and back[1].basis == {6: (0, 1)}
    np.testing.assert_array_equal(back[1].h_values, hamiltonians[1].h_values)
    np.testing.assert_array_equal(back[1].edges, hamiltonians[1].edges)


@pytest.fixture(scope="module")
def batch_structures(configurations):
    """A reference, copies with the same / other edge sets, one moved beyond the skin, one strained."""
    from aiida_mlepi.core.ml.electron_batch import DEFAULT_SKIN

    base = configurations[0]
    rng = np.random.default_rng(4)
    tiny = base.copy()
    tiny.positions += rng.normal(0.0, 1e-4, tiny.positions.shape)  # no pair crosses a cutoff
    crossed = base.copy()
    crossed.positions[3, 2] += 0.4  # inter-layer pairs cross the 6.0/6.5 Å cutoffs; within skin/2
    far = base.copy()
    far.positions += rng.normal(0.0, 0.02, far.positions.shape)
    far.positions[5, 2] += 0.6 * DEFAULT_SKIN  # beyond skin/2: rebuilt from scratch
    strained = base.copy()
    strained.set_cell(1.01 * base.cell[:], scale_atoms=True)  # another cell: its own forward pass
    shaken = base.copy()
    shaken.positions += rng.normal(0.0, 0.05, shaken.positions.shape)
    return [base, tiny, crossed, strained, far, shaken]


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-6), ("float64", 1e-12)])
def test_batched_inference_matches_single_structure(batch_structures, dtype, tol):
    """predict_hamiltonians (4 per forward pass) = predict_hamiltonian per structure, block by block (eV)."""
    from aiida_mlepi.core.ml.electron_batch import inference_model, predict_hamiltonians

    model = _model()  # float64 weights; float32 inference runs on a converted copy
    hs = predict_hamiltonians(model, batch_structures, batch_size=4, dtype=dtype)
    assert model.config.dtype == "float64" and next(model.parameters()).dtype == torch.float64
    assert [h.metadata["graph"] for h in hs[:5]] == ["reused", "reused", "candidates", "rebuilt", "rebuilt"]
    single_model = inference_model(model, dtype)
    assert next(single_model.parameters()).dtype == getattr(torch, dtype)
    reference_keys = set(_blocks_by_edge(hs[0]))
    for atoms, h in zip(batch_structures, hs):
        single = predict_hamiltonian(single_model, atoms)
        blocks, expected = _blocks_by_edge(h), _blocks_by_edge(single)
        assert set(blocks) == set(expected)
        assert max(np.abs(blocks[k] - expected[k]).max() for k in expected) < tol
        assert h.hermiticity_error() == 0.0
        assert np.allclose(h.positions, atoms.positions) and np.abs(h.h_values).max() > 0.1
    assert set(_blocks_by_edge(hs[2])) != reference_keys  # the moved atom changed the edge set
    assert set(_blocks_by_edge(hs[1])) == reference_keys
    # the same without topology reuse (every graph rebuilt)
    again = predict_hamiltonians(model, batch_structures[:3], batch_size=3, dtype=dtype, reuse_topology=False)
    assert [h.metadata["graph"] for h in again] == ["rebuilt"] * 3
    for h, h_reused in zip(again, hs):
        a, b = _blocks_by_edge(h), _blocks_by_edge(h_reused)
        assert max(np.abs(a[k] - b[k]).max() for k in a) < tol


def test_batched_inference_clear_errors(configurations):
    from aiida_mlepi.core.ml.electron_batch import BatchInputError, predict_hamiltonians

    model = _model()
    assert predict_hamiltonians(model, []) == []
    for kwargs in ({"batch_size": 0}, {"dtype": "float16"}, {"skin": 0.0}):
        with pytest.raises(BatchInputError):
            predict_hamiltonians(model, configurations[:1], **kwargs)
    with pytest.raises(BatchInputError):
        predict_hamiltonians(model, [configurations[0][:0]])
