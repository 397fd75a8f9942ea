"""Values of the DatasetWorkChain protocols (protocols/dataset.yaml) that the physics relies on."""

from __future__ import annotations


def test_balanced_protocol_has_a_harmonic_family():
    """`balanced` mixes random stackings with near-equilibrium cells (issue 9.4); `fast` does not."""
    from aiida_mlepi.core.perturbations import PerturbationSettings
    from aiida_mlepi.workchains.dataset import protocol_inputs

    balanced = PerturbationSettings.from_dict(protocol_inputs("balanced")["perturbations"])
    assert balanced.harmonic_fraction == 0.5 and balanced.harmonic_displacement_std_angstrom == 0.02
    assert balanced.supercell == (4, 4) and balanced.displacement_std_angstrom == 0.05  # merged with defaults
    assert PerturbationSettings.from_dict(protocol_inputs("fast")["perturbations"]).harmonic_fraction == 0.0
