"""VASP through aiida-vasp's VaspWorkChain, with a mock VASP that replays real recorded runs.

The recorded runs are in ``../shared/fixtures/vasp`` (VASP 5.4.4 outputs published by aiida-vasp):
``exit_codes/converged`` (Si, 2 atoms, displaced), ``exit_codes/elec-unconverged`` (NELM reached),
``exit_codes/ionic-unconverged`` and ``exit_codes/unfinished`` (vasprun.xml cut off, empty CONTCAR).
aiida-vasp writes the inputs and parses the outputs for real; only the VASP binary is replaced by
``mlepi-mock-vasp``, which checks the inputs it gets against the recording before replaying it.
POTCARs: aiida-vasp needs a potential family; the test uploads minimal fake POTCAR headers
(clearly labelled FAKE) — the mock only reads their TITEL lines.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import aiida_vasp  # noqa: F401
except ImportError:  # a laptop without the extra skips; CI (MLEPI_REQUIRE_SERVICES=1) must have it
    if os.environ.get("MLEPI_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip("aiida-vasp is not installed (pip install 'aiida-mlepi[vasp]')", allow_module_level=True)

from aiida import orm  # noqa: E402
from aiida.engine import run_get_node  # noqa: E402

from aiida_mlepi.engines import mock_vasp  # noqa: E402
from aiida_mlepi.engines.vasp import (  # noqa: E402
    VaspConversionError,
    VaspOutcome,
    classify_vasp_node,
    get_vasp_builder,
    vasp_outputs_to_arrays,
)
from tests.conftest import shared_fixture  # noqa: E402

FAMILY = "mlepi-FAKE-PBE"
FAKE_POTCAR = """  PAW_PBE {sym} 01Jan2000
 {zval:.8f}
 parameters from PSCTR are:
   VRHFIN ={sym}: FAKE potential for mock-VASP tests - not a real PAW dataset
   LEXCH  = PE
   TITEL  = PAW_PBE {sym} 01Jan2000
   POMASS =   28.085; ZVAL   =    {zval:.3f}    mass and valenz
   ENMAX  =  245.345; ENMIN  =  184.009 eV
 END of PSCTR-controll parameters
 End of Dataset
"""


def _mock_executable() -> str:
    exe = Path(sys.executable).parent / "mlepi-mock-vasp"
    found = str(exe) if exe.exists() else shutil.which("mlepi-mock-vasp")
    if not found:
        pytest.fail("mlepi-mock-vasp is not installed: pip install -e . (console script of aiida-mlepi)")
    return found


@pytest.fixture(scope="module")
def vasp_root() -> Path:
    return shared_fixture("vasp").resolve()


@pytest.fixture(scope="module")
def potcar_family(aiida_profile, tmp_path_factory):
    """A POTCAR family of fake (header-only) potentials for Si, P, S, Zn."""
    from aiida_vasp.data.potcar import PotcarData

    root = tmp_path_factory.mktemp("potcars") / FAMILY
    for sym, zval in (("Si", 4), ("P", 5), ("S", 6), ("Zn", 12)):
        (root / sym).mkdir(parents=True)
        (root / sym / "POTCAR").write_text(FAKE_POTCAR.format(sym=sym, zval=zval))
    PotcarData.upload_potcar_family(str(root), FAMILY, "FAKE potentials for mock-VASP tests", stop_if_existing=False)
    return FAMILY


@pytest.fixture
def make_mock_code(aiida_code_installed, vasp_root):
    """Factory: an InstalledCode on localhost running ``mlepi-mock-vasp`` with the given environment."""

    def factory(**environment: str):
        environment = {"MLEPI_MOCK_VASP_ROOT": str(vasp_root), **environment}
        return aiida_code_installed(
            default_calc_job_plugin="vasp.vasp",
            filepath_executable=_mock_executable(),
            prepend_text="\n".join(f"export {key}='{value}'" for key, value in environment.items()),
        )

    return factory


@pytest.fixture
def mock_code(make_mock_code):
    return make_mock_code()


def _incar(path: Path) -> dict:
    """A recorded INCAR as typed Python values (what a user would pass as ``parameters``)."""
    typed = {}
    for key, raw in mock_vasp.read_incar(path).items():
        value = mock_vasp._normalise_incar_value(raw)
        if isinstance(value, float) and value.is_integer() and re.fullmatch(r"-?\d+", raw.strip()):
            value = int(value)
        elif isinstance(value, str):
            value = raw.strip()
        typed[key] = value
    return typed


def _recorded_inputs(folder: Path, tag: str):
    """(structure, INCAR dict, mesh) of a recorded run; the INCAR carries the mock's SYSTEM tag."""
    from ase.io import read

    structure = orm.StructureData(ase=read(folder / "POSCAR", format="vasp"))
    parameters = _incar(folder / "INCAR")
    parameters["SYSTEM"] = f"mlepi-mock:{tag}"
    mesh = mock_vasp.read_kpoints_mesh(folder / "KPOINTS")
    return structure, parameters, mesh


def _outcar_final_forces(path: Path, natoms: int) -> np.ndarray:
    """Forces of the last ``TOTAL-FORCE`` block of an OUTCAR (eV/Å), read independently of aiida-vasp."""
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if "TOTAL-FORCE (eV/Angst)" in line)
    return np.array([[float(x) for x in lines[start + 2 + i].split()[3:6]] for i in range(natoms)])


def _outcar_final_free_energy(path: Path) -> float:
    """Last ``free  energy   TOTEN`` of an OUTCAR (eV)."""
    return float(re.findall(r"free  energy   TOTEN\s+=\s+(-?\d+\.\d+)", path.read_text())[-1])


def _stdout(calc) -> str:
    """What the (mock) VASP printed, as retrieved by aiida-vasp."""
    try:
        return calc.outputs.retrieved.get_object_content("vasp_output")
    except (AttributeError, FileNotFoundError, KeyError):
        return ""


#: the tests skip aiida-vasp's default job monitors (they poll the stdout; ~5 s per run here)
NO_MONITORS = {"no_default_monitors": True}


def _run(code, potcar_family, vasp_root, tag):
    folder = vasp_root / tag
    structure, parameters, (divisions, shifts) = _recorded_inputs(folder, tag)
    builder = get_vasp_builder(
        structure,
        parameters,
        {"mesh": list(divisions), "offset": list(shifts)},
        potcar_family,
        code,
        options={"withmpi": False, "max_wallclock_seconds": 600},
        settings=NO_MONITORS,
    )
    _, node = run_get_node(builder)
    return node, folder


def test_converged_run_gives_forces_in_ev_per_angstrom(mock_code, potcar_family, vasp_root):
    node, folder = _run(mock_code, potcar_family, vasp_root, "exit_codes/converged")
    calc = node.called[-1]
    assert node.is_finished_ok, (node.exit_status, node.exit_message, _stdout(calc))
    assert calc.exit_status == 0
    # the mock got the inputs aiida-vasp wrote and checked them against the recording
    assert "structure, INCAR and k mesh match the recording" in calc.outputs.retrieved.get_object_content("vasp_output")

    energy, forces = vasp_outputs_to_arrays(node)
    assert forces.shape == (2, 3)
    expected = _outcar_final_forces(folder / "OUTCAR", 2)
    np.testing.assert_allclose(forces, expected, atol=1e-6)
    # displaced Si: non-zero, equal and opposite forces (the sum vanishes for 2 atoms)
    assert np.abs(forces).max() > 0.1
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-6)
    assert energy == pytest.approx(_outcar_final_free_energy(folder / "OUTCAR"), abs=1e-5)
    # and against ASE's own vasprun.xml reader (free energy, final forces)
    from ase.io import read

    atoms = read(folder / "vasprun.xml", format="vasp-xml", index=-1)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-6)
    assert energy == pytest.approx(atoms.get_potential_energy(force_consistent=True), abs=1e-6)

    status = classify_vasp_node(node)
    assert status.ok and status.outcome is VaspOutcome.OK
    assert status.as_dict()["status"] == "ok"


@pytest.mark.parametrize(
    ("tag", "workchain_exit", "calc_exit", "outcome"),
    [
        ("exit_codes/elec-unconverged", 503, 701, VaspOutcome.ELECTRONIC_NOT_CONVERGED),
        ("exit_codes/unfinished", 502, 700, VaspOutcome.DID_NOT_FINISH),
        pytest.param("exit_codes/ionic-unconverged", 504, 702, VaspOutcome.IONIC_NOT_CONVERGED,
                     marks=pytest.mark.slow),
    ],
)
def test_failed_runs_give_documented_exit_codes(mock_code, potcar_family, vasp_root, tag, workchain_exit, calc_exit,
                                                outcome):
    from aiida_vasp.calcs.vasp import VaspCalculation
    from aiida_vasp.workchains.v2.vasp import VaspWorkChain

    node, _ = _run(mock_code, potcar_family, vasp_root, tag)
    assert node.is_failed
    assert node.exit_status == workchain_exit
    assert VaspWorkChain.exit_codes(workchain_exit).status == workchain_exit
    calcs = [n for n in node.called if isinstance(n, orm.CalcJobNode)]
    assert len(calcs) == 1, "single-attempt mode must not relaunch"
    assert calcs[0].exit_status == calc_exit == VaspCalculation.exit_codes(calc_exit).status

    status = classify_vasp_node(node)
    assert status.outcome is outcome and not status.ok
    assert status.calculation_exit_status == calc_exit
    assert status.as_dict() | {"message": ""} == {
        "status": "failed", "reason": outcome.value, "exit_status": workchain_exit,
        "calculation_exit_status": calc_exit, "calculation_pk": calcs[0].pk, "message": "",
    }
    # the calculation node alone classifies the same way
    assert classify_vasp_node(calcs[0]).outcome is outcome


def test_dataset_workchain_records_vasp_forces_and_failures(make_mock_code, potcar_family, vasp_root):
    """DatasetWorkChain(engine='vasp'): member 0 replays the converged run, member 1 the unconverged one."""
    from ase import Atoms

    from aiida_mlepi.data.layered_structure import LayeredStructureData
    from aiida_mlepi.workchains.dataset import DatasetWorkChain

    code = make_mock_code(
        MLEPI_MOCK_VASP_CHECK="species",  # the perturbed toy cell only shares the composition (Si2) with the recording
        MLEPI_MOCK_VASP_MAP="sample 0=exit_codes/converged;sample 1=exit_codes/elec-unconverged",
    )
    atoms = Atoms("Si2", cell=[[3.84, 0, 0], [-1.92, 3.3255, 0], [0, 0, 20.0]],
                  positions=[[0, 0, 8.0], [1.92, 1.1085, 10.35]], pbc=True)
    parameters = _incar(vasp_root / "exit_codes/converged" / "INCAR")
    builder = DatasetWorkChain.get_builder()
    builder.structure = LayeredStructureData.from_ase(atoms, material="Si-toy-bilayer")
    builder.num_configurations = orm.Int(2)
    builder.perturbations = orm.Dict({"supercell": [1, 1], "displacement_std_angstrom": 0.02})
    builder.engine = orm.Str("vasp")
    builder.engine_parameters = orm.Dict(parameters)
    builder.kpoints_mesh = orm.List([4, 4, 1])
    builder.engine_inputs = {"code": code, "potential_family": orm.Str(potcar_family), "settings": orm.Dict(NO_MONITORS)}
    builder.max_concurrent = orm.Int(2)
    builder.max_failure_fraction = orm.Float(0.5)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)

    failures = results["failures"].get_dict()
    assert list(failures) == ["m0001"]
    assert failures["m0001"].startswith("electronic_not_converged: VaspWorkChain exit status 503, VaspCalculation<")
    assert "exit status 701" in failures["m0001"]
    dataset = results["dataset"]
    assert dataset.num_configurations == 1
    assert dataset.base.attributes.get("failed_members") == ["m0001"]
    assert dataset.base.attributes.get("source") == "vasp"
    configurations = dataset.get_configuration_set()
    folder = vasp_root / "exit_codes/converged"
    np.testing.assert_allclose(configurations.forces[0], _outcar_final_forces(folder / "OUTCAR", 2), atol=1e-6)
    assert configurations.energies[0] == pytest.approx(_outcar_final_free_energy(folder / "OUTCAR"), abs=1e-5)
    # provenance: each member is a VaspWorkChain whose INCAR SYSTEM names the sample
    systems = sorted(n.inputs.parameters.get_dict()["incar"]["system"] for n in node.called
                     if n.process_label == "VaspWorkChain")
    assert systems == ["Si-toy-bilayer sample 0", "Si-toy-bilayer sample 1"]


# ---------------------------------------------------------------------------------------------- the mock itself
def _workdir_from_recording(tmp_path: Path, folder: Path, tag: str | None) -> Path:
    """A VASP working directory with the inputs of a recording (+ a fake POTCAR), as aiida-vasp would write it."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("POSCAR", "KPOINTS"):
        shutil.copy(folder / name, work / name)
    incar = (folder / "INCAR").read_text()
    if tag is not None:
        incar += f"\nSYSTEM = mlepi-mock:{tag}\n"
    (work / "INCAR").write_text(incar)
    (work / "POTCAR").write_text(FAKE_POTCAR.format(sym="Si", zval=4))
    return work


def test_mock_replays_recording_and_rejects_wrong_inputs(tmp_path, vasp_root, monkeypatch, capsys):
    folder = vasp_root / "exit_codes/converged"
    monkeypatch.setenv("MLEPI_MOCK_VASP_ROOT", str(vasp_root))
    for variable in ("MLEPI_MOCK_VASP_CHECK", "MLEPI_MOCK_VASP_MAP", "MLEPI_MOCK_VASP_FIXTURE"):
        monkeypatch.delenv(variable, raising=False)
    work = _workdir_from_recording(tmp_path, folder, "exit_codes/converged")
    assert mock_vasp.main(workdir=work) == 0
    for name in ("OUTCAR", "vasprun.xml", "CONTCAR"):
        assert (work / name).read_bytes() == (folder / name).read_bytes()
    out = capsys.readouterr().out
    assert "structure, INCAR and k mesh match the recording" in out
    assert (folder / "vasp_output").read_text() in out

    # a displaced atom, another INCAR value, a POTCAR for the wrong element: refused, nothing written
    cases = {
        "POSCAR": ("0.7800000000000000  0.7700000000000000", "0.7810000000000000  0.7700000000000000"),
        "INCAR": ("ENCUT = 300", "ENCUT = 400"),
        "POTCAR": ("PAW_PBE Si", "PAW_PBE Ge"),
    }
    for name, (old, new) in cases.items():
        case = tmp_path / name
        case.mkdir()
        work = _workdir_from_recording(case, folder, "exit_codes/converged")
        text = (work / name).read_text()
        assert old in text
        (work / name).write_text(text.replace(old, new))
        assert mock_vasp.main(workdir=work) == 2, name
        assert not (work / "OUTCAR").exists()
        assert "MLEPI MOCK VASP ERROR" in capsys.readouterr().out


def test_mock_selection_and_kpoint_conventions(tmp_path, vasp_root):
    folder = vasp_root / "exit_codes/converged"
    work = _workdir_from_recording(tmp_path, folder, None)
    environ = {"MLEPI_MOCK_VASP_ROOT": str(vasp_root / "exit_codes")}
    with pytest.raises(mock_vasp.MockVaspError, match="no recording selected"):
        mock_vasp.select_recording(work, environ)
    (work / "INCAR").write_text((work / "INCAR").read_text() + "SYSTEM = Si-toy sample 1\n")
    mapping = "sample 10=unfinished;sample 1=elec-unconverged;sample 0=converged"
    assert mock_vasp.select_recording(work, {**environ, "MLEPI_MOCK_VASP_MAP": mapping}).name == "elec-unconverged"
    assert mock_vasp.select_recording(work, {"MLEPI_MOCK_VASP_FIXTURE": str(folder)}) == folder
    # Monkhorst–Pack 4×4×4 ≡ Γ-centred 4×4×4 shifted by half a step (how aiida-vasp writes it)
    gamma = tmp_path / "KPOINTS"
    gamma.write_text("written by aiida-vasp\n0\nGamma\n4 4 4\n0.5 0.5 0.5\n")
    assert mock_vasp.read_kpoints_mesh(gamma) == mock_vasp.read_kpoints_mesh(folder / "KPOINTS") == (
        (4, 4, 4), (0.5, 0.5, 0.5))


# ---------------------------------------------------------------------------------------------- the converter
def test_converter_shapes_and_errors():
    misc = {"forces": [[0.1, -0.2, 0.3], [-0.1, 0.2, -0.3]],
            "total_energies": {"energy_free": -10.5, "energy_extrapolated": -10.49}}
    energy, forces = vasp_outputs_to_arrays(misc)
    assert energy == -10.5 and forces.shape == (2, 3) and forces.dtype == float
    assert vasp_outputs_to_arrays(misc, energy_type="energy_extrapolated")[0] == -10.49
    assert vasp_outputs_to_arrays(orm.Dict(misc), natoms=2)[1][1, 2] == -0.3
    with pytest.raises(VaspConversionError, match="expected 3"):
        vasp_outputs_to_arrays(misc, natoms=3)
    with pytest.raises(VaspConversionError, match="no forces"):
        vasp_outputs_to_arrays({"total_energies": misc["total_energies"]})
    with pytest.raises(VaspConversionError, match=r"shape \(6,\)"):
        vasp_outputs_to_arrays({**misc, "forces": [0.1] * 6})
    with pytest.raises(VaspConversionError, match="not finite"):
        vasp_outputs_to_arrays({**misc, "forces": [[float("nan"), 0, 0]]})


def test_converter_on_104_atom_phonopy_supercell(vasp_root):
    """phonondb (Zn–P–S, 104 atoms): aiida-vasp's vasprun.xml parser → converter → the OUTCAR forces, in order."""
    from aiida_vasp.parsers.content_parsers.vasprun import VasprunParser

    folder = vasp_root / "phonondb"
    with (folder / "vasprun.xml").open("rb") as handle:
        parser = VasprunParser(handler=handle, settings={"energy_type": ["energy_free", "energy_extrapolated"]})
        quantities, _ = parser.get_all_quantities()
    misc = {"forces": np.asarray(quantities["forces"]).tolist(), "total_energies": quantities["total_energies"]}
    energy, forces = vasp_outputs_to_arrays(misc, natoms=104)
    assert forces.shape == (104, 3)
    np.testing.assert_allclose(forces, _outcar_final_forces(folder / "OUTCAR", 104), atol=1e-6)
    assert energy == pytest.approx(_outcar_final_free_energy(folder / "OUTCAR"), abs=1e-5)
    assert energy == pytest.approx(-459.87614, abs=1e-4)  # OSZICAR: F= -.45987614E+03
