"""Model inputs are checked at input validation (exit 302, before any stage runs); a failed stage names
the child's reason."""

from __future__ import annotations

import io

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlepi.core.structures import graphene_bilayer
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData
from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain
from aiida_mlepi.workchains.observable import ObservableWorkChain
from aiida_mlepi.workchains.phonons import PhononWorkChain

PHONON, ELECTRON = "hedgenet-phonon", "hedgenet-electron"
LOADERS = {PHONON: "aiida_mlepi.core.ml.hedgenet_phonon:load_model",
           ELECTRON: "aiida_mlepi.core.ml.hedgenet_electron:load_model"}


@pytest.fixture(scope="module")
def model_files():
    """Real (untrained, small) model files of both networks, as bytes."""
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectron, HedgeNetElectronConfig
    from aiida_mlepi.core.ml.hedgenet_electron import save_model as save_electron
    from aiida_mlepi.core.ml.hedgenet_phonon import HedgeNetPhonon, HedgeNetPhononConfig
    from aiida_mlepi.core.ml.hedgenet_phonon import save_model as save_phonon

    files = {}
    for kind, model, save in ((PHONON, HedgeNetPhonon(HedgeNetPhononConfig(num_channels=4)), save_phonon),
                              (ELECTRON, HedgeNetElectron(HedgeNetElectronConfig()), save_electron)):
        buffer = io.BytesIO()
        save(model, buffer)
        files[kind] = buffer.getvalue()
    return files


def _node(content: bytes, kind: str) -> TrainedModelData:
    return TrainedModelData.from_bytes(content, model_kind=kind, loader=LOADERS[kind],
                                       description={"atomic_numbers": [6]})


def _structure(aiida_profile) -> LayeredStructureData:
    return LayeredStructureData.from_ase(graphene_bilayer("AB"), material="AB-unrelaxed")


def _bad_files(files: dict, kind: str) -> dict:
    """Content that must be rejected as a ``kind`` model file → the words its message must contain."""
    other = PHONON if kind == ELECTRON else ELECTRON
    label = {PHONON: "HedgeNet-Phonon", ELECTRON: "HedgeNet-Electron"}
    return {"truncated": (files[kind][: len(files[kind]) // 2], "corrupt or truncated"),
            "garbage": (b"not a torch file at all", "corrupt or truncated"),
            "mislabelled": (files[other], f"is a {label[other]} model file, not a {label[kind]} one")}


@pytest.mark.parametrize("case", ["truncated", "garbage", "mislabelled"])
def test_bad_electron_model_is_exit_302_before_any_stage(aiida_profile, model_files, case):
    content, words = _bad_files(model_files, ELECTRON)[case]
    _, node = run_get_node(EpiLoopWorkChain, structure=_structure(aiida_profile),
                           hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=_node(content, ELECTRON))
    assert node.exit_status == 302, node.exit_message
    assert words in node.exit_message and "hamiltonian_model" in node.exit_message
    assert not node.called  # no phonon or sampling stage ran


@pytest.mark.parametrize("case", ["truncated", "garbage", "mislabelled"])
def test_bad_phonon_model_is_exit_302_in_epi_loop_and_phonons(aiida_profile, model_files, case):
    content, words = _bad_files(model_files, PHONON)[case]
    model = _node(content, PHONON)
    _, loop = run_get_node(EpiLoopWorkChain, structure=_structure(aiida_profile),
                           force_provider=orm.Str("hedgenet"), phonon_model=model)
    assert loop.exit_status == 302 and words in loop.exit_message and "`phonon_model`" in loop.exit_message
    assert not loop.called
    _, phonons = run_get_node(PhononWorkChain, structure=_structure(aiida_profile),
                              force_provider=orm.Str("hedgenet"), model=model)
    assert phonons.exit_status == 302 and words in phonons.exit_message
    assert not phonons.called


def test_bad_electron_model_is_exit_302_in_observable(aiida_profile, model_files):
    content, words = _bad_files(model_files, ELECTRON)["truncated"]
    structure = _structure(aiida_profile)
    _, node = run_get_node(ObservableWorkChain, structures={"sample_0000": structure}, temperature_k=orm.Float(0.0),
                           settings=orm.Dict({"primitive_cell": structure.cell}),
                           hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=_node(content, ELECTRON))
    assert node.exit_status == 302 and words in node.exit_message
    assert not node.called


def test_good_model_files_pass_the_check(aiida_profile, model_files):
    assert _node(model_files[PHONON], PHONON).file_problem(PHONON) is None
    assert _node(model_files[ELECTRON], ELECTRON).file_problem(ELECTRON) is None


def test_kinds_named_c1_c2_pass_the_model_element_check(aiida_profile, model_files):
    atoms = graphene_bilayer("AB")
    atoms.set_tags([1, 2, 1, 2])
    structure = LayeredStructureData.from_ase(atoms, material="AB-kinds")
    assert structure.get_kind_names() == ["C1", "C2"]
    # a carbon model: the model and element checks pass, validation stops at the displacement (302)
    _, node = run_get_node(PhononWorkChain, structure=structure, force_provider=orm.Str("hedgenet"),
                           model=_node(model_files[PHONON], PHONON), displacement_angstrom=orm.Float(-0.01))
    assert node.exit_status == 302 and node.exit_message == "Invalid input: displacement_angstrom must be positive"


def test_stage_failure_message_carries_the_child_exit_status_and_message(aiida_profile):
    from aiida_mlepi.workchains.common import child_failure

    structure = _structure(aiida_profile)
    _, child = run_get_node(ObservableWorkChain, structures={"sample_0000": structure},
                            temperature_k=orm.Float(300.0), settings=orm.Dict({}))
    assert child.exit_status == 302
    reason = child_failure(child)
    assert reason == (f"ObservableWorkChain<{child.pk}> exit status 302: "
                      "Invalid input: settings need 'primitive_cell' (3×3, Å)")
    for code, extra in ((EpiLoopWorkChain.exit_codes.ERROR_PHONONS_FAILED, {}),
                        (EpiLoopWorkChain.exit_codes.ERROR_SAMPLING_FAILED, {"temperature": 300.0}),
                        (EpiLoopWorkChain.exit_codes.ERROR_OBSERVABLE_FAILED, {"temperature": 300.0})):
        assert code.format(message=reason, **extra).message.endswith(reason)
