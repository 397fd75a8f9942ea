"""OpenmxCalculation input generation (dry run on localhost) and OpenmxParser on retrieved folders
built from the real OpenMX 3.9.9 MoTe2 `.out` and a synthetic `.scfout` of the same run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_fixture

MOTE2_PARAMS = {
    "data_path": "/opt/openmx3.9/DFT_DATA19",
    "energy_cutoff_ry": 300.0,
    "max_iter": 300,
    "criterion_hartree": 5.4e-5,
    "species": {"Mo": ["Mo7.0-s3p2d2", "Mo_PBE19", 14.0], "Te": ["Te7.0-s3p2d2", "Te_PBE19", 16.0]},
}


def _mote2_structure():
    from aiida import orm

    from aiida_mlepi.core.io.openmx_out import read_openmx_out

    out = read_openmx_out(shared_fixture("openmx", "MoTe2") / "openmx.out")
    return orm.StructureData(ase=out.to_atoms())


def test_dry_run_writes_input(aiida_profile, aiida_code_installed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a dry run writes its folder into submit_test/ of the working directory
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    from aiida_mlepi.core.io.openmx_input import parse_openmx_keywords

    code = aiida_code_installed(default_calc_job_plugin="mlepi.openmx", filepath_executable="/bin/true")
    builder = CalculationFactory("mlepi.openmx").get_builder()
    builder.code = code
    builder.structure = _mote2_structure()
    builder.parameters = orm.Dict(MOTE2_PARAMS)
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([9, 9, 1])
    builder.kpoints = kpoints
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    folder = Path(node.dry_run_info["folder"])
    written = parse_openmx_keywords((folder / "aiida.dat").read_text())
    reference = parse_openmx_keywords((shared_fixture("openmx", "MoTe2") / "openmx_in.dat").read_text())
    assert written.get("scf.Kgrid").split() == ["9", "9", "1"]
    assert written.get("System.Name") == "aiida" and written.get("HS.fileout") == "On"
    assert sorted(written.block("Definition.of.Atomic.Species")) == sorted(reference.block("Definition.of.Atomic.Species"))
    np.testing.assert_allclose(np.array(written.block("Atoms.UnitVectors"), float),
                               np.array(reference.block("Atoms.UnitVectors"), float), atol=1e-12)
    frac = np.array([r[2:5] for r in written.block("Atoms.SpeciesAndCoordinates")], float)
    ref_frac = np.array([r[2:5] for r in reference.block("Atoms.SpeciesAndCoordinates")], float)
    np.testing.assert_allclose(frac, ref_frac, atol=1e-12)
    script = (folder / "_aiidasubmit.sh").read_text()
    assert "'aiida.dat'" in script and "aiida.std" in script


# ------------------------------------------------------------------ parser
def _scfout_bytes(tmp_path: Path) -> bytes:
    from aiida_mlepi.core.io.deeph import read_deeph_legacy
    from aiida_mlepi.core.io.scfout import hamiltonian_to_scfout, write_scfout

    ref = read_deeph_legacy(shared_fixture("deeph", "legacy", "MoTe2"))
    lines = (shared_fixture("openmx", "MoTe2") / "openmx_in.dat").read_text().splitlines(keepends=True)
    data = hamiltonian_to_scfout(ref, input_lines=lines, chemical_potential_ev=ref.metadata["fermi_energy_eV"])
    return write_scfout(data, tmp_path / "aiida.scfout").read_bytes()


def _parse(aiida_localhost, files: dict[str, bytes], parameters: dict | None = None):
    from aiida import orm
    from aiida.common.links import LinkType
    from aiida.plugins import ParserFactory

    node = orm.CalcJobNode(computer=aiida_localhost, process_type="aiida.calculations:mlepi.openmx")
    node.set_option("resources", {"num_machines": 1, "num_mpiprocs_per_machine": 1})
    params = orm.Dict(parameters if parameters is not None else MOTE2_PARAMS).store()
    node.base.links.add_incoming(params, LinkType.INPUT_CALC, "parameters")
    node.store()
    retrieved = orm.FolderData()
    for name, content in files.items():
        retrieved.base.repository.put_object_from_filelike(io.BytesIO(content), name)
    retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
    retrieved.store()
    results, calcfunction = ParserFactory("mlepi.openmx").parse_from_node(node, store_provenance=False)
    return results, calcfunction.exit_status


@pytest.fixture
def out_bytes() -> bytes:
    return (shared_fixture("openmx", "MoTe2") / "openmx.out").read_bytes()


def test_parser_complete_run(aiida_profile, aiida_localhost, out_bytes, tmp_path):
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    results, status = _parse(aiida_localhost, {"aiida.out": out_bytes, "aiida.scfout": _scfout_bytes(tmp_path)})
    assert status == 0
    params = results["output_parameters"].get_dict()
    fermi = json.loads((shared_fixture("deeph", "legacy", "MoTe2") / "info.json").read_text())["fermi_level"]
    assert params["chemical_potential"] == pytest.approx(fermi, abs=1e-6)
    assert params["energy"] == pytest.approx(-267.721524870356 * 27.2113845, abs=1e-8)
    assert params["version"] == "3.9.9" and params["scf_converged"] is True
    forces = results["forces"].get_array("forces")
    assert forces.shape == (3, 3) and forces[0, 2] == pytest.approx(-0.018083116803 * 27.2113845 / 0.529177249)
    h = results["hamiltonian"]
    assert isinstance(h, HamiltonianData)
    ham = h.get_hamiltonian()
    assert ham.num_orbitals == 57 and ham.hermiticity_error() < 1e-7


def test_parser_exit_codes(aiida_profile, aiida_localhost, out_bytes, tmp_path):
    scfout = _scfout_bytes(tmp_path)
    assert _parse(aiida_localhost, {})[1] == 301
    assert _parse(aiida_localhost, {"aiida.out": out_bytes[: len(out_bytes) // 3], "aiida.scfout": scfout})[1] == 302
    assert _parse(aiida_localhost, {"aiida.out": out_bytes})[1] == 303
    results, status = _parse(aiida_localhost, {"aiida.out": out_bytes, "aiida.scfout": scfout[: len(scfout) // 2]})
    assert status == 304 and "forces" in results
    # HS.fileout off: no .scfout needed
    assert _parse(aiida_localhost, {"aiida.out": out_bytes}, {**MOTE2_PARAMS, "hs_fileout": False})[1] == 0
    # unconverged: the same output read with scf.maxIter = 15 and a tighter criterion
    text = out_bytes.decode()
    text = text.replace("scf.maxIter                300", "scf.maxIter                15", 1)
    text = text.replace("scf.criterion              5.4e-05", "scf.criterion              1.0e-06", 1)
    results, status = _parse(aiida_localhost, {"aiida.out": text.encode(), "aiida.scfout": scfout})
    assert status == 410
    assert results["output_parameters"]["scf_converged"] is False and "hamiltonian" in results
