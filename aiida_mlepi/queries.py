"""QueryBuilder recipes: find configurations and observables by material, temperature and sample index.

These are the README's example queries; each is a plain QueryBuilder call on queryable attributes.
"""

from __future__ import annotations

from aiida import orm

from aiida_mlepi.data.layered_structure import LayeredStructureData


def sampled_configurations(material: str, temperature_k: float) -> list[LayeredStructureData]:
    """All Monte-Carlo configurations of ``material`` sampled at ``temperature_k`` (ordered by sample index)."""
    qb = orm.QueryBuilder().append(
        LayeredStructureData,
        filters={"attributes.material": material, "attributes.temperature_k": float(temperature_k)},
        project="*",
    )
    return sorted((row[0] for row in qb.all()), key=lambda node: node.base.attributes.get("sample_index"))


def _per_sample_observable(structure_filters: dict, output_class, observable: str) -> list[tuple]:
    """(observable node, configuration) pairs: configuration → H(R) calcfunction → H(R) → calcfunction → output."""
    qb = orm.QueryBuilder()
    qb.append(LayeredStructureData, tag="structure", project="*", filters=structure_filters)
    qb.append(orm.CalcFunctionNode, with_incoming="structure", tag="h_calc")
    qb.append(orm.Data, with_incoming="h_calc", tag="hamiltonian")
    qb.append(orm.CalcFunctionNode, with_incoming="hamiltonian", tag="o_calc")
    qb.append(output_class, with_incoming="o_calc", project="*", filters={"attributes.observable": observable})
    return [(node, structure) for structure, node in qb.all()]


def _sample_filters(material: str, temperature_k: float, sample_index: int, sampler: str | None = None) -> dict:
    filters = {"attributes.material": material, "attributes.temperature_k": float(temperature_k),
               "attributes.sample_index": int(sample_index)}
    if sampler is not None:
        filters["attributes.sampler"] = sampler
    return filters


def sample_fermi_velocity(material: str, temperature_k: float, sample_index: int) -> list[tuple[orm.Dict, LayeredStructureData]]:
    """(vF Dict, configuration) of one sample, joined through the provenance graph (legacy chord estimator).

    configuration → compute_engine_hamiltonian → H(R) → compute_fermi_velocity → vF.
    """
    return _per_sample_observable(_sample_filters(material, temperature_k, sample_index), orm.Dict, "fermi_velocity")


def fermi_velocity_vs_temperature(material: str) -> list[tuple[float, float, float, int]]:
    """(T in K, ⟨vF⟩ m/s, standard error m/s, samples) of every stored thermal average of ``material``."""
    qb = orm.QueryBuilder().append(
        orm.Dict,
        filters={"attributes.observable": "fermi_velocity_thermal_average", "attributes.material": material},
        project=["attributes.temperature_k", "attributes.mean_m_per_s", "attributes.stderr_m_per_s",
                 "attributes.n_samples"],
    )
    return sorted(tuple(row) for row in qb.all())


def _summaries(observables: list[str], material: str | None, limit: int | None) -> list[orm.Dict]:
    filters = {"attributes.observable": {"in": observables}}
    if material is not None:
        filters["attributes.material"] = material
    qb = orm.QueryBuilder().append(orm.Dict, filters=filters, project="*")
    qb.order_by({orm.Dict: {"ctime": "desc"}})
    if limit is not None:
        qb.limit(limit)
    return [row[0] for row in qb.all()]


def loop_summaries(material: str | None = None, limit: int | None = None) -> list[orm.Dict]:
    """The summary tables of EPI loops (band renormalisation or legacy ⟨vF⟩(T)), newest first."""
    return _summaries(["band_renormalisation_summary", "fermi_velocity_summary"], material, limit)


def pipeline_summaries(material: str | None = None, limit: int | None = None) -> list[orm.Dict]:
    """The summaries of MLEPI pipeline runs (``mlepi.pipeline``: ML results and the ground-truth check), newest first."""
    from aiida_mlepi.calculations.pipeline import SUMMARY_OBSERVABLE

    return _summaries([SUMMARY_OBSERVABLE], material, limit)


def sample_unfolded_spectrum(material: str, temperature_k: float, sample_index: int,
                             sampler: str | None = None) -> list[tuple[orm.ArrayData, LayeredStructureData]]:
    """(unfolded spectrum, configuration) of one sample, joined through the provenance graph.

    configuration → H(R) calcfunction → HamiltonianData → compute_unfolded_spectrum → ArrayData with
    ``observable = 'unfolded_spectrum'`` (arrays ``energies``, ``weights``: see :mod:`aiida_mlepi.calculations.spectral`).
    """
    return _per_sample_observable(_sample_filters(material, temperature_k, sample_index, sampler), orm.ArrayData,
                                  "unfolded_spectrum")


def band_renormalisation_vs_temperature(material: str, sampler: str | None = None,
                                        supercell_cells: int | None = None) -> list[tuple]:
    """(T K, v0 m/s, s.e., relative change, s.e. of it, configurations, supercell cells, sampler) of every stored
    spectral thermal average of ``material`` (optionally one sampler / supercell size), sorted."""
    filters = {"attributes.observable": "band_renormalisation", "attributes.material": material}
    if sampler is not None:
        filters["attributes.sampler"] = sampler
    if supercell_cells is not None:
        filters["attributes.supercell_cells"] = int(supercell_cells)
    qb = orm.QueryBuilder().append(
        orm.Dict, filters=filters,
        project=["attributes.temperature_k", "attributes.velocity_m_per_s", "attributes.velocity_m_per_s_stderr",
                 "attributes.velocity_m_per_s_relative", "attributes.velocity_m_per_s_relative_stderr",
                 "attributes.n_samples", "attributes.supercell_cells", "attributes.sampler"])
    return sorted((tuple(row) for row in qb.all()), key=lambda row: (row[0], row[6] or 0, row[7] or ""))


def spectral_function_averages(material: str, temperature_k: float | None = None) -> list[orm.ArrayData]:
    """The configuration-averaged A(k, E) nodes of ``material`` (optionally at one temperature), oldest first."""
    filters = {"attributes.observable": "spectral_function_average", "attributes.material": material}
    if temperature_k is not None:
        filters["attributes.temperature_k"] = float(temperature_k)
    qb = orm.QueryBuilder().append(orm.ArrayData, filters=filters, project="*")
    qb.order_by({orm.ArrayData: {"ctime": "asc"}})
    return [row[0] for row in qb.all()]
