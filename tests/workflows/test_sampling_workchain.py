"""`ThermalSamplingWorkChain` with both samplers ('mc', 'zg') on a 3×3 graphene spring-model supercell (18 atoms)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlepi.core.phonons import compute_supercell_modes
from aiida_mlepi.core.sampling import analytic_mean_square_displacement
from aiida_mlepi.core.special_displacements import special_displacements
from aiida_mlepi.core.structures import graphene_monolayer
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.phonon_modes import PhononModesData
from aiida_mlepi.workchains.sampling import ThermalSamplingWorkChain
from tests.core.test_phonons import GrapheneSprings

MATERIAL = "graphene-springs"


@pytest.fixture(scope="module")
def core_modes():
    graphene = graphene_monolayer()
    return compute_supercell_modes(graphene, (3, 3, 1), GrapheneSprings(graphene))


@pytest.fixture
def modes_node(aiida_profile, core_modes):
    return PhononModesData.from_modes(core_modes, material=MATERIAL).store()


def _run(modes_node, **inputs):
    _, node = run_get_node(ThermalSamplingWorkChain, modes=modes_node, temperature_k=orm.Float(300.0), **inputs)
    return node


def _displacement(sample: LayeredStructureData, core_modes) -> np.ndarray:
    return sample.get_ase().positions - core_modes.supercell.positions


def test_zg_gives_the_special_configuration_and_its_antipode(modes_node, core_modes):
    # n_samples = 3 with antithetic would be an error for Monte Carlo; ZG ignores n_samples
    node = _run(modes_node, sampler=orm.Str("zg"), antithetic=orm.Bool(True), n_samples=orm.Int(3))
    assert node.is_finished_ok, node.exit_message
    samples = node.outputs.samples
    assert sorted(samples) == ["sample_0000", "sample_0001"]
    u0, u1 = (_displacement(samples[label], core_modes) for label in ("sample_0000", "sample_0001"))
    np.testing.assert_allclose(u1, -u0, atol=1e-12)
    np.testing.assert_allclose(u0, special_displacements(core_modes, 300.0)[0], atol=1e-12)
    # equal masses: the supercell-summed MSD of the ZG configuration is exactly the thermal one
    assert (u0**2).sum() == pytest.approx(analytic_mean_square_displacement(core_modes, 300.0).sum(), rel=1e-9)
    assert 1e-3 < (u0**2).sum(axis=1).mean() < 1e-1  # Å², a real thermal displacement
    for index, label in enumerate(("sample_0000", "sample_0001")):
        attrs = samples[label].base.attributes.all
        assert attrs["sampler"] == "zg" and attrs["sample_index"] == index
        assert attrs["temperature_k"] == 300.0 and attrs["material"] == MATERIAL
        assert "seed" not in attrs
        assert samples[label].layer_ids == [0] * 18


def test_zg_without_antipode_is_one_configuration(modes_node, core_modes):
    node = _run(modes_node, sampler=orm.Str("zg"), n_samples=orm.Int(8))
    assert node.is_finished_ok, node.exit_message
    assert list(node.outputs.samples) == ["sample_0000"]
    np.testing.assert_allclose(_displacement(node.outputs.samples["sample_0000"], core_modes),
                               special_displacements(core_modes, 300.0, antipode=False)[0], atol=1e-12)


def test_samples_are_queryable_by_sampler(modes_node):
    mc = _run(modes_node, n_samples=orm.Int(2), seed=orm.Int(3))
    zg = _run(modes_node, sampler=orm.Str("zg"), antithetic=orm.Bool(True))
    assert mc.is_finished_ok and zg.is_finished_ok
    assert {mc.outputs.samples[k].base.attributes.get("sampler") for k in mc.outputs.samples} == {"mc"}
    for sampler, node in (("mc", mc), ("zg", zg)):
        qb = orm.QueryBuilder()
        qb.append(PhononModesData, filters={"id": modes_node.pk}, tag="modes")
        qb.append(orm.CalcFunctionNode, with_incoming="modes", tag="calc")
        qb.append(LayeredStructureData, with_incoming="calc",
                  filters={"attributes.sampler": sampler, "attributes.temperature_k": 300.0}, project="id")
        expected = {node.outputs.samples[k].pk for k in node.outputs.samples}
        assert set(qb.all(flat=True)) == expected and len(expected) == 2


def test_unknown_sampler_is_a_clear_exit_code(modes_node):
    node = _run(modes_node, sampler=orm.Str("ZG-typo"))
    assert node.exit_status == ThermalSamplingWorkChain.exit_codes.ERROR_INVALID_SAMPLER.status == 305
    assert "ZG-typo" in node.exit_message and "mc, zg" in node.exit_message
    assert "samples" not in node.outputs
