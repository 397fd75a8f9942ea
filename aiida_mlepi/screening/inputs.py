"""The process and inputs of one screening run, from the run description stored on its structure node.

``workflow: loop`` → :class:`~aiida_mlepi.workchains.epi_loop.EpiLoopWorkChain` (the engine computes forces and
H(R) directly: in process for the reference engine, through the engine's own CalcJobs for GPAW, with the
per-material GPAW settings of the ``screening`` dataset protocol) with the ``production`` values of the pipeline
protocol; ``workflow: pipeline`` →
:class:`~aiida_mlepi.workchains.pipeline.MlepiWorkChain` from ``get_builder_from_protocol``. In both, the
spectral model (and band-edge k-points) of the catalogue entry's ``observable`` set the observable settings.
Override keys: those of ``protocols/pipeline.yaml``, plus ``observable_settings`` (merged over the entry's
observable) and ``loop`` (further EpiLoopWorkChain inputs: ``seed``, ``antithetic``, ``displacement_angstrom``, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.engine import ProcessBuilder

from aiida_mlepi.core.catalogue import HEXAGONAL_KPOINTS
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.workchains.dataset import protocol_inputs, recursive_merge
from aiida_mlepi.workchains.epi_loop import EpiLoopWorkChain
from aiida_mlepi.workchains.pipeline import PROTOCOL_FILE, MlepiWorkChain

#: engines whose dataset CalcJobs run the local Python code (``engine_inputs.code``)
ENGINES_WITH_CODE = ("gpaw",)


def process_label(group_label: str, key: str) -> str:
    """The label of the process of run ``key`` in screening ``group_label`` (set when the node is created)."""
    return f"{group_label}|{key}"


def observable_settings(run: Mapping[str, Any]) -> dict:
    """EpiLoopWorkChain ``observable_settings`` of ``run``: the entry's spectral model (and band-edge k-points,
    fractional), then the run's ``overrides.observable_settings``."""
    observable = run["observable"]
    spectral: dict[str, Any] = {"model": observable["spectral_model"]}
    if observable.get("kpoints"):
        spectral["band_edge_k_frac"] = [[*HEXAGONAL_KPOINTS[k], 0.0] for k in observable["kpoints"]]
    return recursive_merge({"spectral": spectral}, dict(run["overrides"].get("observable_settings") or {}))


def _loop_inputs(target, values: Mapping[str, Any]) -> None:
    """Set further EpiLoopWorkChain inputs (``overrides.loop``) on ``target`` as nodes of their ports' types."""
    ports = EpiLoopWorkChain.spec().inputs
    for name, value in values.items():
        if name not in ports:
            raise ValueError(f"overrides.loop: {name!r} is not an EpiLoopWorkChain input")
        valid_type = ports[name].valid_type
        if isinstance(valid_type, tuple):  # a port that takes several types: build the first
            valid_type = valid_type[0]
        target[name] = value if isinstance(value, orm.Data) else valid_type(value)


def build_process(run: Mapping[str, Any], structure: LayeredStructureData, group_label: str,
                  code: orm.AbstractCode | None = None) -> ProcessBuilder:
    """The builder of ``run`` (the dict of :meth:`aiida_mlepi.core.screening.ScreeningRun.as_dict`).

    ``code``: the Python code of the training and GPAW CalcJobs (``workflow: pipeline``; default: this
    interpreter on 'localhost', see :func:`aiida_mlepi.codes.ensure_local_python_code`). The process's label
    is :func:`process_label` (screening and run key), so that a process submitted just before a crash is still
    found by the controller.
    """
    overrides = dict(run["overrides"])
    overrides.pop("observable_settings", None)
    loop_overrides = overrides.pop("loop", None) or {}
    if code is None and (run["workflow"] == "pipeline" or run["engine"] in ENGINES_WITH_CODE):
        from aiida_mlepi.codes import ensure_local_python_code

        code = ensure_local_python_code()
    if run["workflow"] == "loop":
        values = protocol_inputs(run["protocol"], overrides, PROTOCOL_FILE)
        production = values["production"]
        builder = EpiLoopWorkChain.get_builder()
        builder.structure = structure
        builder.supercell_matrix = orm.List([int(n) for n in production["supercell"]])
        builder.temperatures_k = orm.List([float(t) for t in production["temperatures_k"]])
        builder.n_samples = orm.Int(production["n_samples"])
        builder.sampler = orm.Str(production["sampler"])
        builder.engine_parameters = orm.Dict(values["engine_parameters"])
        if run["engine"] != "reference":
            # the engine-only loop of another engine: its own processes give the phonon forces and every H(R),
            # with the per-material settings of the `screening` dataset protocol (overrides.loop replaces them)
            builder.force_provider = builder.hamiltonian_provider = orm.Str("engine")
            builder.engine = orm.Str(run["engine"])
            builder.subtract_residual_forces = orm.Bool(True)  # the catalogue geometry is not relaxed with it
            dataset = protocol_inputs("screening", None, material=run["material"])
            builder.engine_parameters = orm.Dict(dataset["engines"].get(run["engine"], {}).get("parameters", {}))
            if run["engine"] in ENGINES_WITH_CODE:
                builder.engine_inputs = {"code": code}
        loop = builder
    else:
        builder = MlepiWorkChain.get_builder_from_protocol(structure, engine=run["engine"], protocol=run["protocol"],
                                                           code=code, overrides=overrides)
        if run["engine"] in ENGINES_WITH_CODE:
            for which in ("phonon_data", "electron_data"):
                if "num_configurations" in builder[which]:
                    builder[which].engine_inputs = {"code": code}
        loop = builder.loop
    loop.observable_settings = orm.Dict(observable_settings(run))
    _loop_inputs(loop, loop_overrides)
    builder.metadata.label = process_label(group_label, run["key"])
    builder.metadata.description = f"aiida-mlepi screening {group_label!r}: {run['name']} ({run['material']})"
    return builder
