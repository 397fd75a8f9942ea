"""Calcfunctions of the observable stage: Fermi velocity per sample and its thermal average."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.observables import fermi_velocity
from aiida_mlepi.core.statistics import running_average, thermal_average
from aiida_mlepi.data.hamiltonian import HamiltonianData

LABEL_KEYS = ("material", "temperature_k", "sample_index", "seed")


def finite_or_none(value: float) -> float | None:
    """``float(value)``, or None where it is undefined (NaN/inf: e.g. the standard error of one sample)."""
    value = float(value)
    return value if np.isfinite(value) else None


def observable_settings(settings: orm.Dict, num_atoms: int) -> dict:
    """Keyword arguments of :func:`aiida_mlepi.core.observables.fermi_velocity` from a settings Dict.

    ``electrons_per_atom`` (4 for the sp³ basis of carbon) times ``num_atoms`` gives the filling.
    """
    values = settings.get_dict()
    electrons = float(values.get("electrons_per_atom", 4.0)) * num_atoms
    if abs(electrons - round(electrons)) > 1e-9:
        raise ValueError(f"electrons_per_atom × atoms = {electrons} is not an integer")
    return {
        "primitive_cell": np.asarray(values["primitive_cell"], dtype=float),
        "n_electrons": int(round(electrons)),
        "k_radius": float(values.get("k_radius_inv_angstrom", 0.05)),
        "n_directions": int(values.get("n_directions", 6)),
    }


@calcfunction
def compute_fermi_velocity(hamiltonian: HamiltonianData, settings: orm.Dict) -> orm.Dict:
    """Fermi velocity (m/s) of one configuration from its H(R) (see :mod:`aiida_mlepi.core.observables`).

    The output Dict carries ``observable = 'fermi_velocity'`` and the labels of the configuration
    (``material``, ``temperature_k``, ``sample_index``) so it can be queried directly.
    """
    h = hamiltonian.get_hamiltonian()
    result = fermi_velocity(h, **observable_settings(settings, len(h)))
    attrs = hamiltonian.base.attributes
    labels = {key: attrs.get(key) for key in LABEL_KEYS if attrs.get(key, None) is not None}
    return orm.Dict({
        "observable": "fermi_velocity",
        **labels,
        "fermi_velocity_m_per_s": float(result.value_m_per_s),
        "fermi_velocity_ev_angstrom": float(result.value_ev_angstrom),
        "fermi_level_ev": float(result.fermi_level_ev),
        "k_radius_inv_angstrom": float(result.k_radius),
        "method": str(result.method),
    })


@calcfunction
def average_fermi_velocity(material: orm.Str, temperature_k: orm.Float, antithetic: orm.Bool,
                           **per_sample: orm.Dict) -> orm.Dict:
    """Thermal average ⟨vF⟩(T) (Eq. 1) with its standard error and running convergence.

    With antithetic ± pairs, consecutive samples (0, 1), (2, 3), … are averaged first and each pair
    counts as one independent sample for the standard error.
    """
    ordered = [per_sample[key]["fermi_velocity_m_per_s"] for key in sorted(per_sample)]
    values = np.asarray(ordered, dtype=float)
    pairs = bool(antithetic.value)
    avg = thermal_average(values, pairs=pairs)
    n, mean_n, stderr_n = running_average(values, pairs=pairs)
    return orm.Dict({
        "observable": "fermi_velocity_thermal_average",
        "material": material.value,
        "temperature_k": float(temperature_k.value),
        "n_samples": int(values.size),
        "mean_m_per_s": float(avg.mean),
        "stderr_m_per_s": finite_or_none(avg.stderr),
        "std_m_per_s": finite_or_none(avg.std),
        "antithetic": pairs,
        "values_m_per_s": [float(x) for x in values],
        # running values after n configurations (with ± pairs: after every complete pair)
        "running_n": [int(x) * (2 if pairs else 1) for x in n],
        "running_mean_m_per_s": [float(x) for x in mean_n],
        "running_stderr_m_per_s": [finite_or_none(x) for x in stderr_n],
    })
