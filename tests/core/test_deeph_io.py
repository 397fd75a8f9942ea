"""DeepH legacy / updated layouts: import agreement, exact round trips, units, rotated water."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from scipy.linalg import eigh
from scipy.spatial.transform import Rotation

from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.io import (
    DeepHFormatError,
    read_deeph_legacy,
    read_deeph_updated,
    write_deeph_legacy,
    write_deeph_updated,
)
from aiida_mlepi.core.wigner import kabsch_rotation, rotate_blocks
from tests.conftest import shared_fixture


@pytest.fixture(scope="module")
def legacy_mote2() -> HamiltonianR:
    return read_deeph_legacy(shared_fixture("deeph", "legacy", "MoTe2"))


@pytest.fixture(scope="module")
def updated_mote2() -> HamiltonianR:
    return read_deeph_updated(shared_fixture("deeph", "updated", "MoTe2"))


def _assert_same(a: HamiltonianR, b: HamiltonianR, tol: float = 0.0) -> None:
    assert np.array_equal(a.numbers, b.numbers)
    assert a.basis == b.basis
    assert np.array_equal(a.edges, b.edges)
    assert np.abs(a.cell - b.cell).max() <= tol
    assert np.abs(a.positions - b.positions).max() <= tol
    assert np.abs(a.h_values - b.h_values).max() <= tol
    if a.s_values is None:
        assert b.s_values is None
    else:
        assert np.abs(a.s_values - b.s_values).max() <= tol


def _s_hermiticity_error(h: HamiltonianR) -> float:
    key = {tuple(e): n for n, e in enumerate(h.edges.tolist())}
    return max(
        float(np.abs(h.block(n, "S") - h.block(key[(-rx, -ry, -rz, j, i)], "S").T).max())
        for n, (rx, ry, rz, i, j) in enumerate(h.edges.tolist())
    )


# ------------------------------------------------------------------------------------ MoTe2 import
def test_mote2_structure(legacy_mote2):
    h = legacy_mote2
    assert h.numbers.tolist() == [52, 52, 42]
    assert h.basis == {52: (0, 0, 0, 1, 1, 2, 2), 42: (0, 0, 0, 1, 1, 2, 2)}
    assert h.num_orbitals == 57
    assert len(h.edges) == 131
    # lat.dat columns are the lattice vectors: hexagonal a = 3.566 Å (2H-MoTe2), 120° between a1, a2
    a1, a2, a3 = h.cell
    assert np.linalg.norm(a1) == pytest.approx(3.5657, abs=1e-4)
    assert np.linalg.norm(a2) == pytest.approx(np.linalg.norm(a1), rel=1e-14)
    assert a1 @ a2 / (a1 @ a1) == pytest.approx(-0.5, abs=1e-12)
    assert a3 == pytest.approx([0.0, 0.0, 14.64777841])
    # site_positions.dat columns are positions: Te–Te vertical distance 3.579 Å, Mo in the middle
    z = h.positions[:, 2]
    assert z[1] - z[0] == pytest.approx(3.57925, abs=1e-5)
    assert z[2] == pytest.approx(0.5 * (z[0] + z[1]), abs=1e-12)
    assert h.metadata["fermi_energy_eV"] == pytest.approx(-4.1934752874697425)


def test_legacy_and_updated_give_the_same_blocks(legacy_mote2, updated_mote2):
    """Same OpenMX run in two layouts: identical after the m-order -> OpenMX-order permutation."""
    _assert_same(legacy_mote2, updated_mote2, tol=1e-14)
    # without the orbital permutation the two layouts would differ by ~eV
    assert np.abs(legacy_mote2.h_values).max() > 1.0


def test_imported_data_hermitian(legacy_mote2, updated_mote2):
    # measured: max |H_ij(R) − H_ji(−R)ᵀ| = 9.3e-9 eV; S: 1.5e-10
    for h in (legacy_mote2, updated_mote2):
        assert h.hermiticity_error() < 1e-7
        assert _s_hermiticity_error(h) < 1e-9


def test_units_ev_fermi_level_in_gap(legacy_mote2):
    """H in eV: 46 valence electrons -> 23 bands below E_F (eV) at Γ, M, K; direct gap at K ≈ 1.04 eV."""
    h = legacy_mote2
    ef = h.metadata["fermi_energy_eV"]
    rec = h.reciprocal_cell()
    gaps = {}
    for name, frac in {"G": (0, 0, 0), "M": (0.5, 0, 0), "K": (1 / 3, 1 / 3, 0)}.items():
        k = np.array(frac) @ rec
        hk, sk = h.hk(k).toarray(), h.sk(k).toarray()
        w = eigh(0.5 * (hk + hk.conj().T), 0.5 * (sk + sk.conj().T), eigvals_only=True)
        assert int((w < ef).sum()) == 23
        gaps[name] = w[23] - w[22]
    # PBE monolayer MoTe2: direct gap at K ≈ 1.0–1.1 eV (measured 1.0400 eV); in Hartree it would be ~0.04
    assert 0.9 < gaps["K"] < 1.2
    assert gaps["K"] == min(gaps.values())


# ------------------------------------------------------------------------------------ round trips
def test_round_trip_legacy(legacy_mote2, tmp_path):
    write_deeph_legacy(legacy_mote2, tmp_path / "legacy")
    back = read_deeph_legacy(tmp_path / "legacy")
    _assert_same(legacy_mote2, back)
    assert back.metadata["fermi_energy_eV"] == legacy_mote2.metadata["fermi_energy_eV"]
    # rlat.dat columns are the reciprocal vectors (2π included)
    rlat = np.loadtxt(tmp_path / "legacy" / "rlat.dat")
    assert np.abs(rlat.T @ legacy_mote2.cell.T - 2 * np.pi * np.eye(3)).max() < 1e-12
    ref = np.loadtxt(shared_fixture("deeph", "legacy", "MoTe2", "rlat.dat"))
    assert np.abs(rlat - ref).max() < 1e-12


def test_round_trip_updated(updated_mote2, tmp_path):
    write_deeph_updated(updated_mote2, tmp_path / "updated")
    back = read_deeph_updated(tmp_path / "updated")
    _assert_same(updated_mote2, back)
    assert back.metadata["fermi_energy_eV"] == updated_mote2.metadata["fermi_energy_eV"]


def test_cross_layout_conversion(legacy_mote2, tmp_path):
    """legacy -> updated writes the same entries, in DeepH-dock's m order, as the fixture."""
    write_deeph_updated(legacy_mote2, tmp_path / "u")
    for name in ("hamiltonian.h5", "overlap.h5"):
        ours = h5py.File(tmp_path / "u" / name, "r")
        ref = h5py.File(shared_fixture("deeph", "updated", "MoTe2", name), "r")
        ref_index = {tuple(p): n for n, p in enumerate(ref["atom_pairs"][()].tolist())}
        rb, ob = ref["chunk_boundaries"][()], ours["chunk_boundaries"][()]
        assert len(ref_index) == len(ours["atom_pairs"])
        for n, pair in enumerate(ours["atom_pairs"][()].tolist()):
            m = ref_index[tuple(pair)]
            assert np.array_equal(ours["entries"][ob[n]:ob[n + 1]], ref["entries"][rb[m]:rb[m + 1]])
        ours.close(), ref.close()
    info = json.loads((tmp_path / "u" / "info.json").read_text())
    assert info["orbits_quantity"] == 57 and info["elements_orbital_map"]["Mo"] == [0, 0, 0, 1, 1, 2, 2]


def _toy(orthogonal: bool) -> HamiltonianR:
    """Two atoms, shells up to l = 3, random (not hermitian: the round trip must not care)."""
    rng = np.random.default_rng(0)
    edges = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [1, -1, 0, 1, 1]])
    n = {0: 1 + 7 + 5, 1: 4}
    size = sum(n[i] * n[j] for *_, i, j in edges.tolist())
    return HamiltonianR(
        cell=np.diag([3.0, 4.0, 20.0]),
        positions=rng.normal(size=(2, 3)),
        numbers=np.array([79, 8]),
        basis={79: (0, 3, 2), 8: (0, 1)},
        edges=edges,
        h_values=rng.normal(size=size),
        s_values=None if orthogonal else rng.normal(size=size),
    )


@pytest.mark.parametrize("orthogonal", [False, True])
@pytest.mark.parametrize(
    "write,read", [(write_deeph_legacy, read_deeph_legacy), (write_deeph_updated, read_deeph_updated)]
)
def test_round_trip_f_shells_and_orthogonal(tmp_path, write, read, orthogonal):
    h = _toy(orthogonal)
    back = read(write(h, tmp_path / "x"))
    _assert_same(h, back)
    assert (tmp_path / "x" / ("overlaps.h5" if write is write_deeph_legacy else "overlap.h5")).exists() != orthogonal


# ------------------------------------------------------------------------------------ rotated water
@pytest.fixture(scope="module")
def water0() -> HamiltonianR:
    return read_deeph_updated(shared_fixture("deeph", "rotated_water", "0"))


@pytest.mark.parametrize("copy", [1, 2, 3])
def test_rotated_water_blocks_rotate_back(water0, copy):
    """Kabsch rotation from the positions, blocks rotated back with Wigner-D agree to sub-meV.

    Measured max |ΔH|: 0.312 meV (1), 0.275 meV (2), 0.174 meV (3); max |ΔS| ≈ 3e-6.
    """
    folder = shared_fixture("deeph", "rotated_water", str(copy))
    h = read_deeph_updated(folder)
    m = kabsch_rotation(water0.positions, h.positions)
    # the Kabsch rotation is the documented one: Rotation.from_euler('zyz', [γ, β, α])
    alpha, beta, gamma = np.loadtxt(folder / "euler_angle")
    assert np.abs(m - Rotation.from_euler("zyz", [gamma, beta, alpha]).as_matrix()).max() < 1e-12
    back = rotate_blocks(h, m.T)
    dh_mev = 1e3 * np.abs(back.h_values - water0.h_values).max()
    assert dh_mev < 0.5
    assert np.abs(back.s_values - water0.s_values).max() < 1e-5
    # the check is discriminating: unrotated blocks, or the inverse rotation, are off by eV
    assert 1e3 * np.abs(h.h_values - water0.h_values).max() > 1e3
    assert 1e3 * np.abs(rotate_blocks(h, m).h_values - water0.h_values).max() > 1e3


# ------------------------------------------------------------------------------------ bad input
def test_missing_files_raise(tmp_path):
    with pytest.raises(DeepHFormatError, match="not a directory"):
        read_deeph_legacy(tmp_path / "nope")
    src = shared_fixture("deeph", "legacy", "MoTe2")
    dst = tmp_path / "legacy"
    shutil.copytree(src, dst)
    (dst / "overlaps.h5").unlink()
    with pytest.raises(DeepHFormatError, match="no 'overlaps.h5'"):
        read_deeph_legacy(dst)
    upd = tmp_path / "upd"
    shutil.copytree(shared_fixture("deeph", "updated", "MoTe2"), upd)
    (upd / "POSCAR").unlink()
    with pytest.raises(DeepHFormatError, match="no 'POSCAR'"):
        read_deeph_updated(upd)
    assert issubclass(DeepHFormatError, ValueError)


def test_inconsistent_content_raises(tmp_path, legacy_mote2):
    folder = write_deeph_legacy(legacy_mote2, tmp_path / "a")
    with h5py.File(folder / "hamiltonians.h5", "a") as f:
        del f["[0, 0, 0, 1, 3]"]
        f["[0, 0, 0, 1, 3]"] = np.zeros((19, 18))
    with pytest.raises(DeepHFormatError, match=r"shape \(19, 18\)"):
        read_deeph_legacy(folder)
    with h5py.File(folder / "hamiltonians.h5", "a") as f:
        del f["[0, 0, 0, 1, 3]"]
        f["[0, 0, 0, 0, 3]"] = np.zeros((19, 19))
    with pytest.raises(DeepHFormatError, match="1-based"):
        read_deeph_legacy(folder)
    (folder / "orbital_types.dat").write_text("0 1\n0 1 2\n0 1\n")
    with pytest.raises(DeepHFormatError, match="different orbital sets"):
        read_deeph_legacy(folder)

    upd = write_deeph_updated(legacy_mote2, tmp_path / "b")
    with h5py.File(upd / "hamiltonian.h5", "a") as f:
        cb = f["chunk_boundaries"][()]
        cb[-1] += 1
        f["chunk_boundaries"][...] = cb
    with pytest.raises(DeepHFormatError, match="chunk_boundaries"):
        read_deeph_updated(upd)
    info = json.loads((upd / "info.json").read_text())
    info["orbits_quantity"] = 56
    (upd / "info.json").write_text(json.dumps(info))
    with pytest.raises(DeepHFormatError, match="orbits_quantity=56"):
        read_deeph_updated(upd)
