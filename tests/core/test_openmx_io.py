"""OpenMX 3.9 I/O: input writer vs the real MoTe2 input, .out parser vs the real OpenMX 3.9.9 output
(cross-checked with the DeepH export of the same run), .scfout reader/writer round trips."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_mlepi.core.hamiltonian import HamiltonianR
from aiida_mlepi.core.io.openmx_input import (
    OpenmxInputError,
    OpenmxInputParameters,
    OpenmxSpecies,
    basis_shells,
    parse_openmx_keywords,
    write_openmx_input,
)
from aiida_mlepi.core.io.openmx_out import (
    OPENMX_BOHR_ANG,
    OPENMX_HARTREE_EV,
    OpenmxOutputIncompleteError,
    parse_openmx_out,
    read_openmx_out,
)
from aiida_mlepi.core.io.scfout import (
    LINE_SIZE,
    ScfoutData,
    ScfoutFormatError,
    hamiltonian_to_scfout,
    read_scfout,
    scfout_to_hamiltonian,
    write_scfout,
)
from tests.conftest import shared_fixture

MOTE2_SPECIES = {
    "Mo": OpenmxSpecies("Mo7.0-s3p2d2", "Mo_PBE19", 14.0),
    "Te": OpenmxSpecies("Te7.0-s3p2d2", "Te_PBE19", 16.0),
}


def _fixture_atoms() -> tuple[Atoms, str]:
    text = (shared_fixture("openmx", "MoTe2") / "openmx_in.dat").read_text()
    kw = parse_openmx_keywords(text)
    cell = np.array([[float(x) for x in r] for r in kw.block("Atoms.UnitVectors")])
    rows = kw.block("Atoms.SpeciesAndCoordinates")
    atoms = Atoms([r[1] for r in rows], scaled_positions=[[float(x) for x in r[2:5]] for r in rows], cell=cell, pbc=True)
    return atoms, text


# ------------------------------------------------------------------ input writer
def test_basis_shells_of_pao_names():
    assert basis_shells("Mo7.0-s3p2d2") == (0, 0, 0, 1, 1, 2, 2)
    assert basis_shells("C6.0-s2p2d1") == (0, 0, 1, 1, 2)
    with pytest.raises(OpenmxInputError):
        basis_shells("C6.0")


def test_input_regression_mote2():
    atoms, reference_text = _fixture_atoms()
    params = OpenmxInputParameters(
        data_path="/public/home/zhaobh/Program/Calc/OpenMX/3.9.9/openmx3.9/DFT_DATA19",
        kgrid=(9, 9, 1), energy_cutoff_ry=300.0, max_iter=300, criterion_hartree=5.4e-5,
        mixing_type="RMM-DIISH", species=MOTE2_SPECIES,
    )
    ours = parse_openmx_keywords(write_openmx_input(atoms, params))
    ref = parse_openmx_keywords(reference_text)
    # species block, atom rows (species + initial spin populations), cell and k-grid agree
    assert sorted(ours.block("Definition.of.Atomic.Species")) == sorted(ref.block("Definition.of.Atomic.Species"))
    ours_atoms, ref_atoms = ours.block("Atoms.SpeciesAndCoordinates"), ref.block("Atoms.SpeciesAndCoordinates")
    assert [r[:2] for r in ours_atoms] == [r[:2] for r in ref_atoms]
    np.testing.assert_allclose(np.array(ours_atoms)[:, 2:].astype(float), np.array(ref_atoms)[:, 2:].astype(float),
                               atol=1e-13)
    np.testing.assert_allclose(np.array(ours.block("Atoms.UnitVectors"), float),
                               np.array(ref.block("Atoms.UnitVectors"), float), atol=1e-14)
    for key in ("scf.Kgrid", "Atoms.Number", "Species.Number", "Atoms.SpeciesAndCoordinates.Unit",
                "Atoms.UnitVectors.Unit", "scf.XcType", "scf.EigenvalueSolver", "DATA.PATH", "System.Name"):
        assert ours.get(key).split() == ref.get(key).split(), key
    for key in ("scf.criterion", "scf.energycutoff", "scf.maxIter", "scf.ElectronicTemperature"):
        assert float(ours.get(key)) == float(ref.get(key)), key
    assert ours.get("HS.fileout").lower() == ref.get("HS.fileout").lower() == "on"


def test_input_writer_rejects_unknown_element_and_bad_kgrid():
    with pytest.raises(OpenmxInputError, match="Xe"):
        write_openmx_input(Atoms("Xe", cell=np.eye(3) * 5), OpenmxInputParameters())
    with pytest.raises(OpenmxInputError, match="kgrid"):
        OpenmxInputParameters(kgrid=(0, 1, 1))


# ------------------------------------------------------------------ .out parser
def test_out_parser_on_real_mote2_output():
    out = read_openmx_out(shared_fixture("openmx", "MoTe2") / "openmx.out")
    legacy = shared_fixture("deeph", "legacy", "MoTe2")
    assert out.version == "3.9.9"
    assert out.converged and out.scf_iterations == 15 and out.max_iter == 300
    assert out.energy_ev == pytest.approx(-267.721524870356 * OPENMX_HARTREE_EV, abs=1e-9)
    assert out.symbols == ["Te", "Te", "Mo"]
    np.testing.assert_array_equal([52, 52, 42], np.loadtxt(legacy / "element.dat"))
    # cell and positions: DeepH files hold them as columns
    np.testing.assert_allclose(out.cell, np.loadtxt(legacy / "lat.dat").T, atol=1e-6)
    np.testing.assert_allclose(out.positions, np.loadtxt(legacy / "site_positions.dat").T, atol=1e-6)
    import json

    fermi = json.loads((legacy / "info.json").read_text())["fermi_level"]
    assert out.chemical_potential_ev == pytest.approx(fermi, abs=1e-6)
    # forces: eV/Å, Te pair mirror-symmetric about the Mo plane; total force ~ 0 (Newton III):
    # 4e-8 eV/Å along z, 1.2e-3 eV/Å in-plane (OpenMX's real-space grid breaks translation symmetry)
    assert out.forces.shape == (3, 3)
    assert out.forces[0, 2] == pytest.approx(-0.018083116803 * OPENMX_HARTREE_EV / OPENMX_BOHR_ANG, rel=1e-12)
    assert out.forces[0, 2] == pytest.approx(-out.forces[1, 2], rel=1e-7)
    total = out.forces.sum(axis=0)
    assert abs(total[2]) < 1e-6 and np.abs(total).max() < 2e-3
    assert np.abs(out.forces).max() == pytest.approx(0.92987, abs=1e-5)
    assert out.as_dict()["energy_units"] == "eV"


def test_out_parser_truncated_and_unconverged():
    text = (shared_fixture("openmx", "MoTe2") / "openmx.out").read_text()
    with pytest.raises(OpenmxOutputIncompleteError):
        parse_openmx_out(text[: len(text) // 2])
    # same run with scf.maxIter 15 and a criterion the last step does not meet -> not converged
    hacked = text.replace("scf.maxIter                300", "scf.maxIter                15", 1)
    hacked = hacked.replace("scf.criterion              5.4e-05", "scf.criterion              1.0e-06", 1)
    out = parse_openmx_out(hacked)
    assert out.max_iter == 15 and out.criterion_hartree == 1e-6
    assert not out.converged


# ------------------------------------------------------------------ .scfout
def _random_scfout(spinp: int, rng: np.random.Generator) -> ScfoutData:
    """Two atoms (4 and 10 orbitals) in a small cell, neighbours in R = 0, ±a1, random hermitian H."""
    norbs = np.array([4, 10])
    cells = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0]])
    natn = [np.array([1, 2, 2, 1, 1]), np.array([2, 1, 1])]
    ncn = [np.array([0, 0, 1, 2, 1]), np.array([0, 0, 2])]
    tv = np.diag([4.0, 5.0, 20.0])
    edges = [(cells[c], a, j - 1) for a in range(2) for j, c in zip(natn[a], ncn[a])]
    blocks = {}
    for r, i, j in edges:  # hermitian: block(i, j, R) = block(j, i, -R)^T
        key, partner = (tuple(r), i, j), (tuple(-r), j, i)
        if partner in blocks:
            blocks[key] = blocks[partner].T
        else:
            b = rng.normal(size=(norbs[i], norbs[j]))
            blocks[key] = (b + b.T) / 2 if key == partner else b
    flat = np.concatenate([blocks[(tuple(r), i, j)].ravel() for r, i, j in edges])
    m = flat.size
    nspin = spinp + 1
    return ScfoutData(
        spinp_switch=spinp, atv=cells @ tv, atv_ijk=cells, total_num_orbs=norbs, natn=natn, ncn=ncn,
        tv=tv, rtv=2 * np.pi * np.linalg.inv(tv).T, gxyz=np.array([[0.0, 0.0, 10.0], [2.0, 2.5, 10.0]]),
        hks=np.stack([flat * (1 + 0.1 * s) for s in range(nspin)]), olp=rng.normal(size=m),
        olp_r=rng.normal(size=(3, 2, m)), olp_p=rng.normal(size=(3, m)), dm=rng.normal(size=(nspin, m)),
        idm=rng.normal(size=(2, m)), ihks=rng.normal(size=(3, m)) if spinp == 3 else None,
        solver=3, chemical_potential_hartree=-0.15, electronic_temperature_k=300.0,
        dipole_moment_core=np.array([1.0, 2.0, 3.0]), dipole_moment_background=np.zeros(3),
        valence_electrons=10.0, total_spin_s=0.5 * spinp,
        input_lines=["<Definition.of.Atomic.Species\n", " C  C6.0-s1p1  C_PBE19\n", " Mo Mo7.0-s2p1d1 Mo_PBE19\n",
                     "Definition.of.Atomic.Species>\n", "<Atoms.SpeciesAndCoordinates\n", "1 C 0 0 0.5 2 2\n",
                     "2 Mo 0.5 0.5 0.5 7 7\n", "Atoms.SpeciesAndCoordinates>\n"],
        appended_text="appended .out text\n", catomnum=2,
    )


@pytest.mark.parametrize("spinp", [0, 1, 3])
def test_scfout_write_read_identical(tmp_path, spinp):
    data = _random_scfout(spinp, np.random.default_rng(spinp))
    back = read_scfout(write_scfout(data, tmp_path / "x.scfout"))
    assert back.spinp_switch == spinp and back.version == 3 and back.order_max == 2
    for name in ("atv", "atv_ijk", "total_num_orbs", "tv", "rtv", "gxyz", "hks", "olp", "olp_r", "olp_p", "dm", "idm",
                 "dipole_moment_core", "dipole_moment_background"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name), err_msg=name)
    for a in range(2):
        np.testing.assert_array_equal(back.natn[a], data.natn[a])
        np.testing.assert_array_equal(back.ncn[a], data.ncn[a])
    if spinp == 3:
        np.testing.assert_array_equal(back.ihks, data.ihks)
    else:
        assert back.ihks is None
    assert (back.solver, back.chemical_potential_hartree, back.electronic_temperature_k, back.valence_electrons,
            back.total_spin_s) == (3, -0.15, 300.0, 10.0, 0.5 * spinp)
    assert back.input_lines == data.input_lines and back.appended_text == data.appended_text


@pytest.mark.parametrize("spinp", [0, 1])
def test_scfout_to_hamiltonian_units_and_hermiticity(tmp_path, spinp):
    data = _random_scfout(spinp, np.random.default_rng(10 + spinp))
    back = read_scfout(write_scfout(data, tmp_path / "x.scfout"))
    h = scfout_to_hamiltonian(back, spin=spinp)
    assert h.numbers.tolist() == [6, 42] and h.basis == {6: (0, 1), 42: (0, 0, 1, 2)}
    assert h.hermiticity_error() < 1e-12
    np.testing.assert_allclose(h.h_values, data.hks[spinp] * OPENMX_HARTREE_EV, rtol=1e-15)
    np.testing.assert_allclose(h.cell, np.diag([4.0, 5.0, 20.0]) * OPENMX_BOHR_ANG, rtol=1e-15)
    assert h.metadata["fermi_energy_eV"] == pytest.approx(-0.15 * OPENMX_HARTREE_EV, rel=1e-15)
    # the edge of the (atom 0, neighbour 2) block is atom 1 in the cell R = +a1
    assert h.edges[2].tolist() == [1, 0, 0, 0, 1]
    # H(k) is hermitian at a generic k
    hk = h.hk(np.array([0.3, -0.2, 0.0])).toarray()
    assert np.abs(hk - hk.conj().T).max() < 1e-12


def test_scfout_electronic_temperature_is_stored_in_kelvin(tmp_path):
    """OpenMX 3.9 keeps E_Temp = T/eV2Hartree and SCF2File.c writes E_Temp*eV2Hartree: the double after
    ChemP is T in K (300.0 for the default scf.ElectronicTemperature 300), not k_B*T in Hartree."""
    data = _random_scfout(0, np.random.default_rng(0))
    raw = write_scfout(data, tmp_path / "x.scfout").read_bytes()
    # the file ends with: 10 doubles (ChemP, E_Temp, ...), num_lines, the 256-byte lines, the appended text
    tail = 4 + LINE_SIZE * len(data.input_lines) + len(data.appended_text.encode())
    chemp, e_temp = np.frombuffer(raw[len(raw) - tail - 80:len(raw) - tail - 64], dtype="<f8")
    assert (chemp, e_temp) == (-0.15, 300.0)
    back = read_scfout(tmp_path / "x.scfout")
    assert back.electronic_temperature_k == 300.0
    assert scfout_to_hamiltonian(back).metadata["electronic_temperature_K"] == 300.0


def test_scfout_truncated_and_wrong_version(tmp_path):
    data = _random_scfout(0, np.random.default_rng(0))
    raw = write_scfout(data, tmp_path / "x.scfout").read_bytes()
    for cut in (20, 200, len(raw) // 2, len(raw) - len(data.appended_text) - 300):
        (tmp_path / "cut.scfout").write_bytes(raw[:cut])
        with pytest.raises(ScfoutFormatError, match="truncated"):
            read_scfout(tmp_path / "cut.scfout")
    old = bytearray(raw)
    old[4:8] = np.array([1], dtype="<i4").tobytes()  # version 0 (OpenMX 3.8), spin 1
    (tmp_path / "old.scfout").write_bytes(bytes(old))
    with pytest.raises(ScfoutFormatError, match="version 0"):
        read_scfout(tmp_path / "old.scfout")
    with pytest.raises(ScfoutFormatError, match="non-collinear"):
        scfout_to_hamiltonian(_random_scfout(3, np.random.default_rng(1)))


def test_scfout_big_endian_is_detected(tmp_path):
    data = _random_scfout(1, np.random.default_rng(3))
    little = write_scfout(data, tmp_path / "le.scfout").read_bytes()
    big = write_scfout(data, tmp_path / "be.scfout", byteorder=">").read_bytes()
    assert len(big) == len(little) and big != little
    back = read_scfout(tmp_path / "be.scfout")
    np.testing.assert_array_equal(back.hks, data.hks)
    np.testing.assert_array_equal(back.ncn[0], data.ncn[0])
    assert back.chemical_potential_hartree == -0.15


def test_scfout_from_real_mote2_hamiltonian_round_trip(tmp_path):
    """The DeepH export of the real MoTe2 run -> .scfout (with the real input embedded and the
    real .out appended, as DeepH's workflow does) -> reader -> identical H(R), S(R) in eV."""
    from aiida_mlepi.core.io.deeph import read_deeph_legacy

    ref = read_deeph_legacy(shared_fixture("deeph", "legacy", "MoTe2"))
    folder = shared_fixture("openmx", "MoTe2")
    input_text = (folder / "openmx_in.dat").read_text()
    temperature_k = float(parse_openmx_keywords(input_text).get("scf.ElectronicTemperature"))
    assert temperature_k == 300.0  # the real run's scf.ElectronicTemperature (K)
    data = hamiltonian_to_scfout(ref, input_lines=input_text.splitlines(keepends=True),
                                 chemical_potential_ev=ref.metadata["fermi_energy_eV"],
                                 electronic_temperature_k=temperature_k, rng=np.random.default_rng(0))
    data.appended_text = (folder / "openmx.out").read_text()
    h = scfout_to_hamiltonian(read_scfout(write_scfout(data, tmp_path / "openmx.scfout")))
    assert isinstance(h, HamiltonianR)
    assert h.numbers.tolist() == ref.numbers.tolist() and h.basis == ref.basis and h.num_orbitals == 57
    np.testing.assert_allclose(h.cell, ref.cell, atol=1e-12)
    np.testing.assert_allclose(h.positions, ref.positions, atol=1e-12)
    index = {tuple(e): n for n, e in enumerate(ref.edges.tolist())}
    assert sorted(index) == sorted(map(tuple, h.edges.tolist()))
    for n, e in enumerate(h.edges.tolist()):
        np.testing.assert_allclose(h.block(n), ref.block(index[tuple(e)]), rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(h.block(n, "S"), ref.block(index[tuple(e)], "S"))
    assert h.metadata["fermi_energy_eV"] == pytest.approx(ref.metadata["fermi_energy_eV"], abs=1e-12)
    assert h.metadata["electronic_temperature_K"] == 300.0
    out = parse_openmx_out(read_scfout(tmp_path / "openmx.scfout").appended_text)
    assert out.chemical_potential_ev == pytest.approx(h.metadata["fermi_energy_eV"], abs=1e-6)
