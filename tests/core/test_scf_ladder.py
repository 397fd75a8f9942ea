"""The SCF restart ladder (aiida_mlepi.core.engine.scf_ladder): rungs from the original settings."""

from __future__ import annotations

import pytest

from aiida_mlepi.core.engine.gpaw_lcao import GpawLcaoSettings
from aiida_mlepi.core.engine.scf_ladder import ladder_size, scf_rung


def test_rungs_from_gpaw_defaults_periodic():
    original = GpawLcaoSettings(max_scf_iterations=100, smearing_width_ev=0.02)
    rungs = [scf_rung(original, n, periodic=True) for n in range(1, 5)]
    assert rungs[3] is None and ladder_size(False) == 3
    settings = [r[0] for r in rungs[:3]]
    assert [s.max_scf_iterations for s in settings] == [200, 300, 400]
    # GPAW's periodic default β = 0.05, history 5: halved / quartered, history lengthened
    assert [s.mixer_beta for s in settings] == [None, 0.025, 0.0125]
    assert [s.mixer_history for s in settings] == [None, 8, 10]
    assert all(s.smearing_width_ev == 0.02 for s in settings)  # physics unchanged on rungs 1–3
    assert all(s.basis == original.basis and s.grid_spacing_angstrom == original.grid_spacing_angstrom
               for s in settings)


def test_smearing_rung_only_when_allowed_and_user_mixer_respected():
    original = GpawLcaoSettings(max_scf_iterations=50, mixer_beta=0.1, mixer_history=12, smearing_width_ev=0.02)
    assert scf_rung(original, 4, periodic=True) is None
    settings, description = scf_rung(original, 4, periodic=True, allow_smearing_increase=True)
    assert settings.smearing_width_ev == pytest.approx(0.05)  # max(2 × 0.02, 0.05)
    assert settings.mixer_beta == pytest.approx(0.025) and settings.mixer_history == 12  # user's history ≥ 10 kept
    assert settings.max_scf_iterations == 200 and "changes the free energy" in description
    assert scf_rung(original, 5, periodic=True, allow_smearing_increase=True) is None
    # a molecule starts from GPAW's non-periodic default β = 0.25
    assert scf_rung(GpawLcaoSettings(), 2, periodic=False)[0].mixer_beta == pytest.approx(0.125)
    with pytest.raises(ValueError):
        scf_rung(original, 0, periodic=True)


def test_settings_reject_bad_mixer_and_dispersion():
    for bad in ({"mixer_beta": 0.0}, {"mixer_history": 0}, {"mixer_weight": 0.5}, {"dispersion": "d2"}):
        with pytest.raises(ValueError):
            GpawLcaoSettings.from_dict(bad)
    assert GpawLcaoSettings(mixer_beta=0.02).mixer == {"beta": 0.02}
    assert GpawLcaoSettings().mixer == {}
