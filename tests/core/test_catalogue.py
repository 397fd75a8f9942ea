"""Tests of the materials catalogue (aiida_mlepi/catalogue/materials.yaml, aiida_mlepi.core.catalogue)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import yaml
from ase.io import write

from aiida_mlepi.core.catalogue import (SHIPPED_CATALOGUE, CatalogueError, MaterialEntry,
                                        load_catalogue)
from aiida_mlepi.core.layers import assign_layers_by_gap
from aiida_mlepi.core.observables import valley_points
from aiida_mlepi.core.stacking import commensurate_twist, find_supercell_match
from aiida_mlepi.core.structures import graphene_bilayer, hexagonal_cell

#: entry → (atoms, layers) of the built cell
EXPECTED_SIZES = {
    "ab-bilayer-graphene": (4, 2),
    "aa-bilayer-graphene": (4, 2),
    "twisted-bilayer-graphene-21.79": (28, 2),  # (m, r) = (1, 1): 4·7
    "twisted-bilayer-graphene-13.17": (76, 2),  # (2, 1): 4·19
    "twisted-bilayer-graphene-9.43": (148, 2),  # (3, 1): 4·37
    "graphene-hbn": (4, 2),
    "aa-prime-bilayer-hbn": (4, 2),
    "2h-bilayer-mos2": (6, 2),
    "mos2-ws2-heterobilayer": (6, 2),
}


@pytest.fixture(scope="module")
def catalogue() -> dict[str, MaterialEntry]:
    return load_catalogue()


@pytest.fixture(scope="module")
def built(catalogue) -> dict:
    return {name: entry.build() for name, entry in catalogue.items()}


def _mic_xy(atoms, d: np.ndarray) -> np.ndarray:
    """In-plane displacement vectors d (rows, Å) reduced to the nearest periodic image."""
    cell = atoms.cell[:2, :2]
    frac = d @ np.linalg.inv(cell)
    return (frac - np.rint(frac)) @ cell


def test_shipped_entries_build_with_the_right_sizes(catalogue, built):
    assert set(catalogue) == set(EXPECTED_SIZES)
    for name, atoms in built.items():
        n_atoms, n_layers = EXPECTED_SIZES[name]
        assert len(atoms) == n_atoms, name
        assert len(np.unique(atoms.arrays["layer_ids"])) == n_layers, name
        assert atoms.info["catalogue_entry"] == name
        assert tuple(atoms.pbc) == (True, True, False)


def test_layer_ids_separate_the_layers_by_z_and_gaps_equal_the_catalogued_distance(catalogue, built):
    for name, atoms in built.items():
        ids, z = atoms.arrays["layer_ids"], atoms.positions[:, 2]
        # the stored ids agree with an assignment from z-gaps alone
        assert np.array_equal(ids, assign_layers_by_gap(atoms)), name
        gap = z[ids == 1].min() - z[ids == 0].max()
        assert gap == pytest.approx(catalogue[name].interlayer_distance, abs=1e-6), name
        for layer_id, layer in enumerate(catalogue[name].layers):
            assert set(np.array(atoms.get_chemical_symbols())[ids == layer_id]) == set(layer.elements)


def _bond_angle_deg(atoms, mask: np.ndarray, bond: float) -> float:
    """Orientation (mod 60°) of the nearest-neighbour bonds of the atoms in ``mask`` (one layer)."""
    xy = atoms.positions[mask, :2]
    d = _mic_xy(atoms, xy[1:] - xy[0])
    d = d[np.abs(np.linalg.norm(d, axis=1) - bond) < 1e-6]
    assert len(d) == 3  # three neighbours of a graphene atom
    angles = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 60.0
    assert np.ptp(angles) < 1e-9  # the three bonds are 120° apart
    return float(angles[0])


@pytest.mark.parametrize("name, m, r", [("twisted-bilayer-graphene-21.79", 1, 1),
                                        ("twisted-bilayer-graphene-13.17", 2, 1),
                                        ("twisted-bilayer-graphene-9.43", 3, 1)])
def test_twist_angle_measured_from_the_bonds_equals_the_catalogued_angle(catalogue, built, name, m, r):
    atoms, entry = built[name], catalogue[name]
    ids = atoms.arrays["layer_ids"]
    bond = entry.parameters["a"].value_angstrom / np.sqrt(3.0)
    measured = (_bond_angle_deg(atoms, ids == 1, bond) - _bond_angle_deg(atoms, ids == 0, bond)) % 60.0
    exact = commensurate_twist(m, r).theta_deg
    assert measured == pytest.approx(exact, abs=1e-6)
    assert measured == pytest.approx(entry.parameters["twist_angle_deg"], abs=0.01)


def test_graphene_hbn_strain_per_layer_equals_the_measured_bond_strain(catalogue, built):
    entry, atoms = catalogue["graphene-hbn"], built["graphene-hbn"]
    a_c = entry.parameters["bottom"]["a"].value_angstrom
    a_bn = entry.parameters["top"]["a"].value_angstrom
    assert 100 * (a_bn / a_c - 1) == pytest.approx(1.789, abs=1e-3)  # the lattice mismatch, %
    # graphene is not strained; hBN is compressed onto the 1x1 graphene cell (2 + 2 atoms)
    assert entry.strain[0] == 0.0
    assert entry.strain[1] == pytest.approx(100 * (a_c / a_bn - 1), abs=1e-9)
    assert entry.strain[1] == pytest.approx(-1.7572, abs=1e-4)
    assert all(abs(s) < 2.0 for s in entry.strain)
    # the same number measured from the structure: the B–N bond against its natural a/√3
    sym, pos = np.array(atoms.get_chemical_symbols()), atoms.positions
    d = _mic_xy(atoms, pos[sym == "N", :2] - pos[sym == "B", :2])
    assert 100 * (np.linalg.norm(d) / (a_bn / np.sqrt(3.0)) - 1) == pytest.approx(entry.strain[1], abs=1e-9)


def test_mos2_ws2_strain_and_unstrained_homobilayers(catalogue, built):
    entry = catalogue["mos2-ws2-heterobilayer"]
    a_mo = entry.parameters["bottom"]["a"].value_angstrom
    a_w = entry.parameters["top"]["a"].value_angstrom
    assert entry.strain[0] == 0.0
    assert entry.strain[1] == pytest.approx(100 * (a_mo / a_w - 1), abs=1e-9)  # +0.2157 %
    # the common cell is MoS2's 1x1 cell: the W–W distance is a(MoS2)
    assert np.linalg.norm(built["mos2-ws2-heterobilayer"].cell[:2], axis=1) == pytest.approx([a_mo] * 2, abs=1e-12)
    for name in ("ab-bilayer-graphene", "aa-prime-bilayer-hbn", "2h-bilayer-mos2",
                 "twisted-bilayer-graphene-21.79"):
        assert np.abs(catalogue[name].strain).max() < 1e-10, name


@pytest.mark.parametrize("name, upper, lower", [("aa-prime-bilayer-hbn", "B", "N"),
                                                ("aa-prime-bilayer-hbn", "N", "B"),
                                                ("2h-bilayer-mos2", "Mo", "S"),
                                                ("mos2-ws2-heterobilayer", "W", "S")])
def test_aa_prime_and_2h_registry_cation_above_anion(built, name, upper, lower):
    atoms = built[name]
    ids, sym = atoms.arrays["layer_ids"], np.array(atoms.get_chemical_symbols())
    top = atoms.positions[(ids == 1) & (sym == upper), :2]
    bottom = atoms.positions[(ids == 0) & (sym == lower), :2]
    assert len(top) and len(bottom)
    for xy in top:
        assert np.linalg.norm(_mic_xy(atoms, bottom - xy), axis=1).min() < 1e-9


def test_band_edge_k_point_K_is_the_valley_of_the_observables_module(catalogue, built):
    entry = catalogue["2h-bilayer-mos2"]
    assert entry.observable.name == "band_edges" and "K" in entry.observable.kpoints
    cell = built["2h-bilayer-mos2"].cell.array
    b = 2 * np.pi * np.linalg.inv(cell).T
    k = np.array([*entry.observable.kpoints_frac["K"], 0.0]) @ b
    ref = valley_points(cell)
    assert np.linalg.norm(k) == pytest.approx(4 * np.pi / (3 * entry.parameters["bottom"]["a"].value_angstrom))
    # K equals the module's K or K' up to a reciprocal lattice vector
    assert min(np.abs(((k - v) @ cell.T / (2 * np.pi)) - np.rint((k - v) @ cell.T / (2 * np.pi))).max()
               for v in ref.values()) < 1e-12
    assert catalogue["ab-bilayer-graphene"].observable.spectral_model == "ab-bilayer"
    assert {e.engine for e in catalogue.values() if e.elements == ("C",)} == {"reference"}
    assert {e.engine for e in catalogue.values() if e.elements != ("C",)} == {"gpaw"}


def _write(tmp_path, materials: dict, name: str = "user.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"materials": materials}), encoding="utf-8")
    return path


def _shipped_raw(name: str) -> dict:
    return yaml.safe_load(SHIPPED_CATALOGUE.read_text(encoding="utf-8"))["materials"][name]


def test_user_yaml_overrides_one_entry_and_adds_one_from_a_structure_file(tmp_path):
    override = _shipped_raw("ab-bilayer-graphene")
    override["parameters"]["interlayer_distance"] = {"value": 3.40, "source": "my PBE+D3 relaxation"}
    write(tmp_path / "abc.extxyz", graphene_bilayer("AB", interlayer_distance=3.30))  # layer ids travel
    added = {"builder": "file", "parameters": {"path": "abc.extxyz"},
             "layers": [{"label": "graphene", "elements": ["C"]}] * 2,
             "observable": {"name": "fermi_velocity", "spectral_model": "ab-bilayer"},
             "supercells": [[3, 3]], "engine": "reference"}
    cat = load_catalogue(_write(tmp_path, {"ab-bilayer-graphene": override, "my-bilayer": added}))
    assert len(cat) == len(EXPECTED_SIZES) + 1
    assert cat["ab-bilayer-graphene"].interlayer_distance == 3.40
    atoms = cat["ab-bilayer-graphene"].build()
    z, ids = atoms.positions[:, 2], atoms.arrays["layer_ids"]
    assert z[ids == 1].min() - z[ids == 0].max() == pytest.approx(3.40, abs=1e-9)
    mine = cat["my-bilayer"].build()
    assert len(mine) == 4 and mine.arrays["layer_ids"].tolist() == [0, 0, 1, 1]
    assert np.ptp(mine.positions[:, 2]) == pytest.approx(3.30, abs=1e-9)
    assert cat["my-bilayer"].supercells == ((3, 3),)
    assert load_catalogue()["ab-bilayer-graphene"].interlayer_distance == 3.35  # shipped unchanged


def _bad(**changes) -> dict:
    entry = _shipped_raw("graphene-hbn")
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = entry
        for key in path:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return entry


@pytest.mark.parametrize("changes, field", [
    ({"builder": "magic_builder"}, "builder"),
    ({"engine": KeyError}, "engine"),
    ({"parameters__interlayer_distance": KeyError}, "parameters.interlayer_distance"),
    ({"parameters__interlayer_distance": "3.3 Å"}, "parameters.interlayer_distance"),
    ({"parameters__interlayer_distance": 3.3}, "parameters.interlayer_distance"),  # no source
    ({"parameters__max_atoms": 2.5}, "parameters.max_atoms"),
    ({"parameters__top__monolayer": "unobtainium"}, "parameters.top.monolayer"),
    ({"parameters__top__a__value": -2.5}, "parameters.top.a"),
    ({"parameters__stacking": "AB"}, "parameters.stacking"),
    ({"supercells": [[6, 0]]}, "supercells[0]"),
    ({"observable__spectral_model": "ab-bilayer-ish"}, "observable.spectral_model"),
    ({"observable__name": "band_edges", "observable__spectral_model": "band-edges"}, "observable.kpoints"),
    ({"engine": "reference"}, "engine"),  # hBN is not carbon
    ({"layers": "graphene, hBN"}, "layers"),
])
def test_bad_entries_raise_catalogue_error_naming_entry_and_field(tmp_path, changes, field):
    with pytest.raises(CatalogueError) as info:
        load_catalogue(_write(tmp_path, {"broken-heterostructure": _bad(**changes)}))
    message = str(info.value)
    assert "'broken-heterostructure'" in message and f"'{field}'" in message, message


def test_bad_entries_found_at_build_and_bad_files(tmp_path):
    wrong_layers = _bad(layers=[{"label": "graphene", "elements": ["C"]},
                                {"label": "hBN", "elements": ["B"]}])
    tbg = _shipped_raw("twisted-bilayer-graphene-21.79")
    tbg["parameters"]["twist_angle_deg"] = 20.0
    missing = dict(_shipped_raw("ab-bilayer-graphene"), builder="file", parameters={"path": "nope.xyz"})
    cat = load_catalogue(_write(tmp_path, {"wrong-layers": wrong_layers, "missing-file": missing}))
    with pytest.raises(CatalogueError, match=r"'wrong-layers' field 'layers\[1\]'.*\['B', 'N'\]"):
        cat["wrong-layers"].build()
    with pytest.raises(CatalogueError, match=r"'missing-file' field 'parameters.path'.*does not exist"):
        cat["missing-file"].build()
    with pytest.raises(CatalogueError, match=r"'bad-angle' field 'parameters.twist_angle_deg'.*21.7868"):
        load_catalogue(_write(tmp_path, {"bad-angle": tbg}))
    no_match = _bad(parameters__max_strain=0.001, parameters__max_atoms=20)
    with pytest.raises(CatalogueError, match="'too-strict' field 'parameters'.*stack_layers"):
        load_catalogue(_write(tmp_path, {"too-strict": no_match}))["too-strict"].build()
    (tmp_path / "broken.yaml").write_text(textwrap.dedent("materials: [a, b"), encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(tmp_path / "broken.yaml")
    with pytest.raises(CatalogueError, match="does not exist"):
        load_catalogue(tmp_path / "absent.yaml")


# ----------------------------------------------------------- cross-check with pymatgen's ZSL


def _zsl_lowest(film_a: float, substrate_a: float, max_length_tol: float, max_area: float):
    zsl = pytest.importorskip("pymatgen.analysis.interfaces.zsl",
                              reason="pymatgen is absent (pip install aiida-mlepi[screening])")
    hexv = lambda a: hexagonal_cell(a, 1.0)[:2]  # noqa: E731
    match = next(iter(zsl.ZSLGenerator(max_length_tol=max_length_tol, max_area=max_area)(
        hexv(film_a), hexv(substrate_a), lowest=True)))
    film, sub = match.film_sl_vectors[:, :2], match.substrate_sl_vectors[:, :2]
    area = lambda a: np.sqrt(3.0) / 2 * a * a  # noqa: E731
    n_film = abs(np.linalg.det(film)) / area(film_a)
    n_sub = abs(np.linalg.det(sub)) / area(substrate_a)
    strain = np.linalg.norm(sub, axis=1) / np.linalg.norm(film, axis=1) - 1
    twist = np.degrees(np.arctan2(sub[0, 1], sub[0, 0]) - np.arctan2(film[0, 1], film[0, 0])) % 360
    return round(n_sub), round(n_film), strain, twist


@pytest.mark.parametrize("name", ["graphene-hbn", "mos2-ws2-heterobilayer"])
def test_catalogue_matches_agree_with_pymatgen_zsl(catalogue, name):
    entry = catalogue[name]
    a_bottom = entry.parameters["bottom"]["a"].value_angstrom
    a_top = entry.parameters["top"]["a"].value_angstrom
    max_strain = entry.parameters.get("max_strain", 0.02)
    n_sub, n_film, strain, _ = _zsl_lowest(a_top, a_bottom, max_strain, 100.0)
    ours = find_supercell_match(hexagonal_cell(a_bottom, 1)[:2, :2], hexagonal_cell(a_top, 1)[:2, :2],
                                max_strain=max_strain)
    assert (ours.n_bottom_cells, ours.n_top_cells) == (n_sub, n_film) == (1, 1)
    # ZSL's length mismatch (substrate/film − 1) is the strain our match puts on the top layer
    assert np.allclose(100 * strain, entry.strain[1], atol=1e-9)


def test_rotated_low_strain_graphene_hbn_match_agrees_with_pymatgen_zsl():
    """At 0.5 % tolerance ZSL's smallest match is rotated: 28 graphene / 27 hBN cells at 130.89°
    (≡ 10.89° mod 60°), 0.0456 % strain; ours at the same twist finds the same cell and strain."""
    n_sub, n_film, strain, twist = _zsl_lowest(2.504, 2.46, 0.005, 200.0)
    assert (n_sub, n_film) == (28, 27)
    ours = find_supercell_match(hexagonal_cell(2.46, 1)[:2, :2], hexagonal_cell(2.504, 1)[:2, :2],
                                max_strain=0.005, twist_deg=twist, max_rotation_deg=0.1)
    assert (ours.n_bottom_cells, ours.n_top_cells) == (28, 27)
    assert ours.max_strain == pytest.approx(abs(strain).max(), abs=1e-9)
    assert ours.max_strain == pytest.approx(4.558e-4, abs=1e-7)
    assert abs(ours.rotation_deg) < 1e-6
