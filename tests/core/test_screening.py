"""Screening files (aiida_mlepi.core.screening): every bad run reported at once, one line each; run keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from ase.io import write

from aiida_mlepi.core.catalogue import load_catalogue
from aiida_mlepi.core.screening import ScreeningError, ScreeningRun, engine_elements, load_screening
from aiida_mlepi.core.structures import graphene_monolayer

REPO = Path(__file__).resolve().parents[2]
PROTOCOLS = ("fast", "balanced", "stringent")


def _write(tmp_path: Path, text: str, name: str = "screen.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_example_files_are_valid():
    plan = load_screening(REPO / "examples" / "screening-ci.yaml", protocols=PROTOCOLS)
    assert [(r.name, r.engine, r.workflow, r.protocol) for r in plan.runs] == [
        ("ab-bilayer-graphene", "reference", "loop", "fast"),
        ("ab-bilayer-graphene-zg", "reference", "loop", "fast"),
        ("aa-prime-bilayer-hbn", "gpaw", "loop", "fast")]  # GPAW through the engine-only loop
    # defaults apply where a run has no overrides of its own; a run's overrides replace them whole
    assert plan.runs[0].overrides["production"]["n_samples"] == 4
    assert plan.runs[1].overrides["production"]["sampler"] == "zg"
    assert plan.runs[2].overrides["loop"]["engine_parameters"]["basis"] == "sz(dzp)"
    assert len({r.key for r in plan.runs}) == 3
    gpaw, = load_screening(REPO / "examples" / "screening-gpaw.yaml", protocols=(*PROTOCOLS, "gpaw_cpu")).runs
    assert (gpaw.engine, gpaw.workflow, gpaw.protocol) == ("gpaw", "pipeline", "gpaw_cpu")


def test_gpaw_engine_only_loop_inputs(aiida_profile):
    """The screening builds the GPAW engine-only loop: 'engine' providers, the run's GPAW parameters, the local
    Python code for the CalcJobs, residual forces subtracted, the band edges of the overrides."""
    from aiida_mlepi.data.layered_structure import LayeredStructureData
    from aiida_mlepi.screening.inputs import build_process

    run = load_screening(REPO / "examples" / "screening-ci.yaml", protocols=PROTOCOLS).runs[2]
    structure = LayeredStructureData.from_ase(run.entry.build(), material=run.entry.name)
    builder = build_process(run.as_dict(), structure, "screening/test")
    assert (builder.force_provider.value, builder.hamiltonian_provider.value, builder.engine.value) == \
        ("engine", "engine", "gpaw")
    assert builder.engine_parameters.get_dict()["grid_spacing_angstrom"] == 0.18
    assert builder.phonon_kpoints_mesh.get_list() == [9, 9, 1] and builder.subtract_residual_forces.value
    assert "code" in builder.engine_inputs and builder.supercell_matrix.get_list() == [1, 1, 1]
    edges = builder.observable_settings.get_dict()["spectral"]["band_edge_k_frac"]
    assert [k[:2] for k in edges] == [[1 / 3, 1 / 3], [0.5, 0.0]]


def test_every_bad_entry_is_reported_once_before_anything(tmp_path):
    """Unknown material, an element the engine lacks, a single-layer entry, a loop with a DFT engine, an
    unknown protocol and a bad catalogue entry: six problems, one line each, in one error."""
    monolayer = tmp_path / "graphene.extxyz"
    write(monolayer, graphene_monolayer())
    path = _write(tmp_path, f"""
        materials:
          single-graphene:
            builder: file
            parameters: {{path: {monolayer}}}
            layers: [{{label: graphene, elements: [C]}}]
            observable: {{name: fermi_velocity, spectral_model: monolayer}}
            supercells: [[2, 2]]
            engine: reference
          broken:
            builder: graphene_bilayer
            parameters: {{stacking: AB, a: 2.46}}
            layers: [{{label: g, elements: [C]}}, {{label: g, elements: [C]}}]
            observable: {{name: fermi_velocity, spectral_model: ab-bilayer}}
            supercells: [[2, 2]]
            engine: reference
        screen:
          - ab-bilayer-graphene
          - ab-bilayergraphene
          - {{material: graphene-hbn, engine: reference, workflow: pipeline}}
          - {{material: single-graphene, workflow: loop}}
          - {{material: mos2-ws2-heterobilayer, workflow: loop, engine: vasp}}
          - {{material: aa-bilayer-graphene, protocol: quick}}
          - broken
        """)
    with pytest.raises(ScreeningError) as info:
        load_screening(path, protocols=PROTOCOLS)
    problems = info.value.problems
    assert len(problems) == 6, problems
    assert "screen[1] (ab-bilayergraphene): unknown material 'ab-bilayergraphene' (did you mean " \
           "'ab-bilayer-graphene'?)" in problems[0]
    assert problems[1].startswith("screen[2] (graphene-hbn): engine 'reference' has no parameters for element(s) B, N")
    assert problems[2].startswith("screen[3] (single-graphene): material 'single-graphene' has 1 layer")
    assert "engine-only loop" in problems[3] and "not 'vasp'" in problems[3]  # VASP gives no H(R)
    assert "unknown protocol 'quick'" in problems[4]
    assert problems[5].startswith("screen[6] (broken):") and "field 'parameters.a'" in problems[5]
    message = str(info.value)
    assert "6 problem(s), nothing was submitted" in message and message.count("\n  - ") == 6


def test_malformed_yaml_is_one_clear_error(tmp_path):
    path = _write(tmp_path, "screen:\n  - ab-bilayer-graphene\n  - {material: [unclosed\n")
    with pytest.raises(ScreeningError) as info:
        load_screening(path)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith("not valid YAML:")
    assert "line 3" in info.value.problems[0]  # where the parser stopped, on one line
    with pytest.raises(ScreeningError, match="expected a top-level mapping with 'screen"):
        load_screening(_write(tmp_path, "materials: {}\n", "no-screen.yaml"))
    with pytest.raises(ScreeningError, match="does not exist"):
        load_screening(tmp_path / "absent.yaml")


def test_duplicate_run_names_and_unknown_keys(tmp_path):
    path = _write(tmp_path, """
        defaults: {workflow: loop, colour: red}
        screen:
          - ab-bilayer-graphene
          - ab-bilayer-graphene
          - {material: aa-bilayer-graphene, samples: 3}
        """)
    with pytest.raises(ScreeningError) as info:
        load_screening(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert "defaults: unknown key 'colour'" in problems[0]
    assert "run name 'ab-bilayer-graphene' is used twice" in problems[1]
    assert "unknown key 'samples'" in problems[2]


def test_key_changes_with_every_setting_and_only_then():
    entry = load_catalogue()["ab-bilayer-graphene"]
    run = ScreeningRun("ab", entry, "reference", "loop", "fast", {"production": {"n_samples": 4}})
    same = ScreeningRun("ab", entry, "reference", "loop", "fast", {"production": {"n_samples": 4}})
    assert run.key == same.key and run.key.startswith("ab|reference|loop|fast|")
    others = [ScreeningRun("ab", entry, "reference", "loop", "fast", {"production": {"n_samples": 6}}),
              ScreeningRun("ab", entry, "reference", "pipeline", "fast", {"production": {"n_samples": 4}}),
              ScreeningRun("ab", entry, "reference", "loop", "balanced", {"production": {"n_samples": 4}}),
              ScreeningRun("ab", load_catalogue()["aa-bilayer-graphene"], "reference", "loop", "fast",
                           {"production": {"n_samples": 4}})]
    assert len({run.settings_hash, *(o.settings_hash for o in others)}) == 5


def test_engine_elements():
    assert engine_elements("reference") == frozenset({"C"})
    assert engine_elements("vasp") is None  # the POTCARs of a cluster are unknown here
    gpaw = engine_elements("gpaw")
    if gpaw:  # GPAW with gpaw-data installed: every element of the catalogue has a PBE setup and a dzp basis
        assert {"B", "C", "N", "Mo", "S", "W"} <= gpaw
