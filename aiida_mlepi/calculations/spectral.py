"""Calcfunctions of the spectral observable: unfolded spectrum per configuration, averaged A(k, E) and the
band parameters fitted clear of the disorder gap (:mod:`aiida_mlepi.core.spectral_estimators`).

Nodes (all queryable by their attributes):

* ``UnfoldedSpectrum`` per configuration — an ``ArrayData`` with arrays ``energies`` (n_dir, n_q, n_states,
  eV), ``weights`` and, for the heat map, ``line_energies``/``line_weights``; attributes ``observable =
  'unfolded_spectrum'``, ``material``, ``temperature_k``, ``sample_index``, ``sampler``, ``seed``,
  ``supercell_cells`` (primitive cells in the supercell), ``num_atoms``, ``estimator``, ``fermi_level_ev``,
  ``folded_gap_ev``, ``folded_splitting_ev``; the static lattice has ``static_lattice = True``;
* the average — an ``ArrayData`` with the configuration-averaged A(k, E) (``spectral_function`` on the
  ``energy_grid_ev``, ``line_spectral_function`` on the heat-map line ``line_q``), the fitted ``peaks_ev``
  and ``static_peaks_ev``; attributes ``observable = 'spectral_function_average'`` and the same labels;
* the estimate — a ``Dict`` with ``observable = 'band_renormalisation'``, the fitted parameters, their
  standard errors (``*_stderr``), the static-lattice values (``static_*``), the relative changes
  (``*_relative``), the k window, the folded-gap statistics and the running estimate vs sample count.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlepi.core.spectral_estimators import (ConfigurationSpectrum, SpectralSettings, SpectralEstimate,
                                                  averaged_line_spectral_function, averaged_spectral_function,
                                                  configuration_spectrum, energy_grid, line_distances,
                                                  running_estimates, static_band_energies)
from aiida_mlepi.core.unfolding import PrimitiveCell
from aiida_mlepi.data.array_reading import read_arrays
from aiida_mlepi.data.hamiltonian import HamiltonianData
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.model import TrainedModelData

from .observables import finite_or_none

LABEL_KEYS = ("material", "temperature_k", "sample_index", "seed", "sampler")
#: the fitted quantity of each model whose thermal change is the headline number, and the others
HEADLINE = {"monolayer": ("velocity_m_per_s",), "ab-bilayer": ("velocity_m_per_s", "gamma1_ev"),
            "band-edges": ("gap_ev", "vbm_ev", "cbm_ev")}


def spectral_inputs(settings: orm.Dict, num_atoms: int) -> tuple[SpectralSettings, PrimitiveCell | np.ndarray, int]:
    """(estimator settings, primitive cell, electron count) from the observable settings Dict.

    Keys: ``primitive_cell`` (3×3 Å), optional ``primitive_positions`` (Å) and ``primitive_numbers`` (the
    sites; without them the sites are found by clustering the supercell), ``electrons_per_atom`` and
    ``spectral`` (overrides of :class:`~aiida_mlepi.core.spectral_estimators.SpectralSettings`).
    """
    values = settings.get_dict()
    electrons = float(values.get("electrons_per_atom", 4.0)) * num_atoms
    if abs(electrons - round(electrons)) > 1e-9:
        raise ValueError(f"electrons_per_atom × atoms = {electrons} is not an integer")
    cell = np.asarray(values["primitive_cell"], dtype=float)
    if "primitive_positions" in values and "primitive_numbers" in values:
        primitive = PrimitiveCell(cell, np.asarray(values["primitive_positions"], dtype=float),
                                  np.asarray(values["primitive_numbers"], dtype=int))
    else:
        primitive = cell
    return SpectralSettings.from_dict(values.get("spectral")), primitive, int(round(electrons))


def spectrum_from_node(node: orm.ArrayData, arrays: dict | None = None) -> ConfigurationSpectrum:
    """The :class:`ConfigurationSpectrum` of an ``UnfoldedSpectrum`` node (``arrays``: its arrays, if read)."""
    attrs = node.base.attributes
    arrays = {name: node.get_array(name) for name in node.get_arraynames()} if arrays is None else arrays
    return ConfigurationSpectrum.from_arrays(arrays, attrs.get("fermi_level_ev"), attrs.get("folded_gap_ev"),
                                             attrs.get("folded_splitting_ev"))


def spectra_from_nodes(nodes: list[orm.ArrayData]) -> list[ConfigurationSpectrum]:
    """:func:`spectrum_from_node` of many nodes, their arrays read in one pass (:func:`read_arrays`)."""
    return [spectrum_from_node(node, arrays) for node, arrays in zip(nodes, read_arrays(nodes))]


def spectrum_node(spectrum: ConfigurationSpectrum, labels: dict, settings: orm.Dict, spectral: SpectralSettings,
                  cell: np.ndarray, num_atoms: int, static_lattice: bool) -> orm.ArrayData:
    """The ``UnfoldedSpectrum`` ArrayData of one configuration (arrays and queryable attributes, module doc)."""
    node = orm.ArrayData()
    for name, array in spectrum.as_arrays().items():
        node.set_array(name, np.asarray(array))
    node.base.attributes.set_many({
        "observable": "unfolded_spectrum",
        **{key: labels.get(key) for key in LABEL_KEYS if labels.get(key, None) is not None},
        "static_lattice": static_lattice,
        "estimator": f"spectral:{spectral.model}",
        "supercell_cells": int(round(abs(np.linalg.det(np.asarray(cell)[:2, :2]) / np.linalg.det(
            np.asarray(settings["primitive_cell"], dtype=float)[:2, :2])))),
        "num_atoms": int(num_atoms),
        "fermi_level_ev": spectrum.fermi_level_ev,
        "folded_gap_ev": spectrum.folded_gap_ev,
        "folded_splitting_ev": spectrum.folded_splitting_ev,
        "energy_unit": "eV",
    })
    return node


@calcfunction
def compute_unfolded_spectrum(hamiltonian: HamiltonianData, settings: orm.Dict,
                              fermi_reference_ev: orm.Float | None = None) -> orm.ArrayData:
    """Unfold one configuration's states at the estimator's k-points (and the heat-map line).

    ``fermi_reference_ev`` (the static lattice's E_F) centres the energy window; without it (the static
    lattice itself) the configuration's own E_F is used and the node gets ``static_lattice = True``.
    """
    h = hamiltonian.get_hamiltonian()
    spectral, primitive, n_electrons = spectral_inputs(settings, len(h))
    reference = None if fermi_reference_ev is None else float(fermi_reference_ev.value)
    spectrum = configuration_spectrum(h, primitive, n_electrons, spectral, reference)
    return spectrum_node(spectrum, dict(hamiltonian.base.attributes.all), settings, spectral, h.cell, len(h),
                         fermi_reference_ev is None)


@calcfunction
def compute_predicted_spectra(model: TrainedModelData, settings: orm.Dict, fermi_reference_ev: orm.Float,
                              workers: orm.Int, **structures: LayeredStructureData) -> dict:
    """The unfolded spectrum of every configuration in ``structures``, H(R) predicted by ``model`` in one batch.

    Same numbers as ``predict_hedgenet_hamiltonian`` → ``compute_unfolded_spectrum`` per configuration (float32
    forward pass, mixed-precision window solves), without the per-configuration H(R) node: H(R) is a
    deterministic function of the two inputs (model, structure) linked here, recomputable at any time. One
    output ``UnfoldedSpectrum`` per input label (the same attributes as ``compute_unfolded_spectrum``'s, plus
    ``structure_uuid``), and ``timings`` (s per step, :class:`~aiida_mlepi.core.spectral_batch.BatchTimings`).
    ``workers``: processes (:func:`~aiida_mlepi.core.spectral_batch.predicted_spectra`).
    """
    from aiida_mlepi.core.spectral_batch import predicted_spectra

    from .electron import electron_model_problem

    problem = electron_model_problem(model)
    if problem:
        raise ValueError(problem)
    labels = sorted(structures)
    atoms = [structures[label].get_ase() for label in labels]
    spectral, primitive, n_electrons = spectral_inputs(settings, len(atoms[0]))
    with model.open(mode="rb") as handle:
        content = handle.read()
    spectra, timings = predicted_spectra(content, atoms, primitive, n_electrons, spectral,
                                         float(fermi_reference_ev.value), workers=int(workers.value))
    outputs = {}
    for label, structure, spectrum in zip(labels, atoms, spectra):
        node_labels = {**structures[label].base.attributes.all, "structure_uuid": structures[label].uuid}
        node = spectrum_node(spectrum, node_labels, settings, spectral, structure.cell[:], len(structure), False)
        node.base.attributes.set_many({"structure_uuid": structures[label].uuid, "model_uuid": model.uuid})
        outputs[label] = node
    outputs["timings"] = orm.Dict(timings.as_dict())
    return outputs


def sample_counts(n: int, pairs: bool) -> list[int]:
    """Configuration counts of the running estimate: powers of two (pairs: of pairs) up to n, and n."""
    group = 2 if pairs else 1
    counts, m = [], 2 * group
    while m < n:
        counts.append(m)
        m *= 2
    return counts + [n] if n >= group else [n]


def estimate_to_dict(result: SpectralEstimate, static: SpectralEstimate) -> dict:
    """The flat, JSON-safe parameters of an estimate with their errors and changes vs the static lattice."""
    out = {}
    for key, value in result.values.items():
        out[key] = float(value)
        out[f"{key}_stderr"] = finite_or_none(result.stderr[key]) if result.stderr[key] is not None else None
        ref = static.values.get(key)
        if ref is None:
            continue
        out[f"static_{key}"] = float(ref)
        if key in ("velocity_m_per_s", "velocity_ev_angstrom", "gamma1_ev", "gap_ev"):
            out[f"{key}_relative"] = float(value / ref - 1.0)
            err = out[f"{key}_stderr"]
            out[f"{key}_relative_stderr"] = None if err is None else float(err / abs(ref))
        out[f"{key}_shift"] = float(value - ref)
    return out


@calcfunction
def average_unfolded_spectra(static: orm.ArrayData, settings: orm.Dict, temperature_k: orm.Float,
                             antithetic: orm.Bool, **per_sample: orm.ArrayData) -> dict:
    """Configuration-averaged A(k, E), its peaks, the fitted band parameters (jackknife errors) and their
    change from the static lattice (the same estimator on ``static``); running estimate vs sample count."""
    spectral = SpectralSettings.from_dict(settings.get_dict().get("spectral"))
    static_spectrum = spectrum_from_node(static)
    keys = sorted(per_sample)
    spectra = spectra_from_nodes([per_sample[key] for key in keys])
    pairs = bool(antithetic.value)
    bands = static_band_energies(static_spectrum, spectral)
    static_estimate = running_estimates(static_spectrum, [static_spectrum], spectral, False, [1], bands)[0]
    counts = sample_counts(len(spectra), pairs)
    running = running_estimates(static_spectrum, spectra, spectral, pairs, counts, bands)
    result = running[-1]
    first = per_sample[keys[0]].base.attributes
    labels = {key: first.get(key) for key in ("material", "sampler") if first.get(key, None) is not None}
    headline = HEADLINE[spectral.model][0]
    estimate = {
        "observable": "band_renormalisation",
        "estimator": f"spectral:{spectral.model}",
        **labels,
        "temperature_k": float(temperature_k.value),
        "supercell_cells": first.get("supercell_cells"),
        "num_atoms": first.get("num_atoms"),
        "n_samples": len(spectra),
        "n_independent": result.n_independent,
        "antithetic": pairs,
        **estimate_to_dict(result, static_estimate),
        "residual_rms_ev": result.residual_rms_ev,
        "static_residual_rms_ev": static_estimate.residual_rms_ev,
        "k_window_inv_angstrom": list(result.k_window_inv_angstrom),
        "folded_gap_ev": result.folded_gap_ev,
        "folded_splitting_ev": result.folded_splitting_ev,
        "folded_gap_per_sample_ev": [s.folded_gap_ev for s in spectra],
        "headline": headline,
        "running_n": counts,
        f"running_{headline}": [float(r.values[headline]) for r in running],
        f"running_{headline}_stderr": [finite_or_none(r.stderr[headline]) if r.stderr[headline] is not None
                                       else None for r in running],
        "broadening_ev": spectral.broadening_ev,
        "settings": spectral.as_dict(),
    }
    average = orm.ArrayData()
    grid = energy_grid(static_spectrum.fermi_level_ev, spectral)
    average.set_array("energy_grid_ev", grid)
    average.set_array("q_inv_angstrom", result.q_inv_angstrom)
    average.set_array("spectral_function", averaged_spectral_function(spectra, grid, spectral))
    average.set_array("peaks_ev", result.peaks_ev)
    average.set_array("static_peaks_ev", static_estimate.peaks_ev)
    if spectral.line_points and all(s.line_energies is not None for s in spectra):
        average.set_array("line_q", line_distances(spectral))
        average.set_array("line_spectral_function", averaged_line_spectral_function(spectra, grid, spectral))
        average.set_array("static_line_spectral_function",
                          averaged_line_spectral_function([static_spectrum], grid, spectral))
    average.base.attributes.set_many({
        "observable": "spectral_function_average", "estimator": f"spectral:{spectral.model}", **labels,
        "temperature_k": float(temperature_k.value), "supercell_cells": first.get("supercell_cells"),
        "n_samples": len(spectra), "broadening_ev": spectral.broadening_ev,
        "fermi_level_static_ev": static_spectrum.fermi_level_ev,
    })
    return {"estimate": orm.Dict(estimate), "spectral_function": average}


@calcfunction
def estimate_static_lattice(static: orm.ArrayData, settings: orm.Dict) -> orm.Dict:
    """The band parameters of the undisplaced supercell through the same estimator (no error bars)."""
    spectral = SpectralSettings.from_dict(settings.get_dict().get("spectral"))
    spectrum = spectrum_from_node(static)
    result = running_estimates(spectrum, [spectrum], spectral, False, [1])[0]
    attrs = static.base.attributes
    return orm.Dict({
        "observable": "band_parameters_static_lattice",
        "estimator": f"spectral:{spectral.model}",
        "material": attrs.get("material", ""),
        "supercell_cells": attrs.get("supercell_cells"),
        **{key: float(value) for key, value in result.values.items()},
        "residual_rms_ev": result.residual_rms_ev,
        "k_window_inv_angstrom": list(result.k_window_inv_angstrom),
        "folded_gap_ev": spectrum.folded_gap_ev,
    })
