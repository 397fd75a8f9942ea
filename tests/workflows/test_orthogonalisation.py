"""The pipeline's orthogonalisation step: LCAO H(R), S(R) nodes → Löwdin-orthogonal H(R) nodes the electron network
trains on, with the report in the provenance; and the electron network's species and shells taken from the data."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.test_orthogonalisation import _analytic_bands, _pi_model, _random_k, _sp3_bilayer_with_overlap


def test_calcfunction_orthogonalises_every_member_and_reports(aiida_profile):
    """Two members (a π model with overlap and an sp³ bilayer with overlap): each output is orthogonal, keeps its
    label and the queryable attributes of its input, gives the analytic bands, and the report's maximum is the
    worst member's."""
    from aiida import orm

    from aiida_mlepi.calculations.orthogonalisation import REPORT_LABEL, orthogonalise_hamiltonians
    from aiida_mlepi.core.orthogonalisation import lowdin_orthogonalise
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    pi, sp3 = _pi_model(), _sp3_bilayer_with_overlap()
    inputs = {"pi": HamiltonianData.from_hamiltonian(pi, material="pi-model", sample_index=3),
              "sp3": HamiltonianData.from_hamiltonian(sp3, material="sp3-model")}
    settings = orm.Dict({"cutoff_intra_angstrom": 6.0, "cutoff_inter_angstrom": 7.0})
    outputs, node = orthogonalise_hamiltonians.run_get_node(settings, **inputs)
    assert node.is_finished_ok
    assert set(outputs) == {"pi", "sp3", REPORT_LABEL}
    for label, source in inputs.items():
        out = outputs[label]
        assert out.base.attributes.get("orthogonal") and not source.base.attributes.get("orthogonal")
        assert out.base.attributes.get("material") == source.base.attributes.get("material")
    assert outputs["pi"].base.attributes.get("sample_index") == 3
    h_tilde = outputs["pi"].get_hamiltonian()
    err = max(np.abs(np.linalg.eigvalsh(h_tilde.hk_dense(k)) - _analytic_bands(pi, k)).max() for k in _random_k(pi))
    assert err < 0.02  # 6 Å: measured 3.3 meV
    report = outputs[REPORT_LABEL].get_dict()
    direct = [1e3 * lowdin_orthogonalise(h, 6.0, 7.0)[1].band_error_max_ev for h in (pi, sp3)]
    assert report["band_error_max_mev"] == pytest.approx(max(direct))
    assert report["per_structure"]["pi"]["band_error_max_mev"] == pytest.approx(direct[0])
    assert report["method"] == "lowdin" and report["cutoff_inter_angstrom"] == 7.0


def test_singular_overlap_is_a_clear_error(aiida_profile):
    from aiida import orm

    from aiida_mlepi.calculations.orthogonalisation import orthogonalise_hamiltonians
    from aiida_mlepi.core.orthogonalisation import OrthogonalisationError
    from aiida_mlepi.data.hamiltonian import HamiltonianData

    with pytest.raises(OrthogonalisationError, match="linearly dependent"):
        orthogonalise_hamiltonians(orm.Dict({"cutoff_intra_angstrom": 2.6, "cutoff_inter_angstrom": 6.0}),
                                   bad=HamiltonianData.from_hamiltonian(_pi_model(s=1.0 / 3.0)))


def test_electron_network_takes_species_and_shells_from_the_data(aiida_profile):
    """A protocol serves any material: without atomic_numbers/basis the electron model gets those of the H(R)
    (here B and N with s + p shells), and the model config accepts them; given ones are kept."""
    from aiida_mlepi.core.hamiltonian import HamiltonianR
    from aiida_mlepi.core.ml.hedgenet_electron import HedgeNetElectronConfig
    from aiida_mlepi.data.hamiltonian import HamiltonianData
    from aiida_mlepi.workchains.pipeline import electron_parameters_for_data

    h = HamiltonianR(cell=np.eye(3) * 5, positions=[[0, 0, 0], [1.4, 0, 0]], numbers=[5, 7],
                     basis={5: (0, 1), 7: (0, 1)}, edges=[(0, 0, 0, 0, 0), (0, 0, 0, 1, 1)],
                     h_values=np.zeros(32))
    data = {"a": HamiltonianData.from_hamiltonian(h)}
    parameters = {"model": {"num_layers": 1}, "training": {"max_epochs": 1}}
    filled = electron_parameters_for_data(parameters, data)
    assert filled["model"]["atomic_numbers"] == [5, 7]
    assert filled["model"]["basis"] == {"5": [0, 1], "7": [0, 1]}
    assert parameters["model"] == {"num_layers": 1}  # the input is not changed
    config = HedgeNetElectronConfig.from_dict(filled["model"])
    assert config.basis == {5: (0, 1), 7: (0, 1)}
    given = {"model": {"atomic_numbers": [6], "basis": {"6": [0, 1]}}}
    assert electron_parameters_for_data(given, data) == given
