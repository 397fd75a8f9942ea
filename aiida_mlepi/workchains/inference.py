"""The ``inference`` inputs of the stages that run HedgeNet models: in the daemon, or as a CalcJob elsewhere.

``inference`` namespace (shared by :class:`~.observable.ObservableWorkChain` (H(R) of the samples),
:class:`~.phonons.PhononWorkChain` (forces of the displaced supercells) and :class:`~.epi_loop.EpiLoopWorkChain`,
which passes it on; the pipeline exposes it as ``loop.inference``):

* ``mode`` (Str): ``'calcfunction'`` (default: in the daemon worker, one calcfunction per sample/batch) or
  ``'calcjob'`` (all samples of a stage in one batched CalcJob, ``mlepi.predict_hamiltonians`` /
  ``mlepi.predict_forces``, on the computer of ``code``, e.g. a GPU node);
* ``code`` (AbstractCode): a Python interpreter with ``aiida-mlepi[ml]`` (``calcjob`` only);
* ``parameters`` (Dict): :class:`~aiida_mlepi.core.ml.run_inference.InferenceSettings` (``device`` 'cpu' |
  'cuda', ``dtype``, ``batch_size``, …) (``calcjob`` only);
* ``options`` (Dict): the job's ``metadata.options`` (resources, max_wallclock_seconds, queue_name,
  custom_scheduler_commands, environment_variables, …).

The job is submitted with :func:`~.resume.resumable_submit`: an interrupted stage awaits the job it had
already submitted instead of submitting a second one.
"""

from __future__ import annotations

from typing import Any

from aiida import orm

INFERENCE_MODES = ("calcfunction", "calcjob")
NAMESPACE = "inference"


def define_inference_inputs(spec) -> None:
    """Declare the optional ``inference`` namespace (absent: in-process calcfunctions, as before)."""
    spec.input_namespace(NAMESPACE, required=False,
                         help="Where HedgeNet inference runs: mode 'calcfunction' (default, in the daemon) or "
                              "'calcjob' (one batched CalcJob per stage with `code`, `parameters`, `options`).")
    spec.input(f"{NAMESPACE}.mode", valid_type=orm.Str, required=False,
               help=f"One of {INFERENCE_MODES} (default 'calcfunction').")
    spec.input(f"{NAMESPACE}.code", valid_type=orm.AbstractCode, required=False,
               help="Python with aiida-mlepi[ml] that runs the inference jobs (mode 'calcjob').")
    spec.input(f"{NAMESPACE}.parameters", valid_type=orm.Dict, required=False,
               help="Inference settings: device ('cpu' | 'cuda'), dtype, batch_size, skin, reuse_topology.")
    spec.input(f"{NAMESPACE}.options", valid_type=orm.Dict, required=False,
               help="metadata.options of the inference jobs (resources, max_wallclock_seconds, queue_name, …).")


def inference_inputs(process) -> dict:
    """The ``inference`` inputs given to ``process`` (a plain dict, to pass to a child stage)."""
    return {key: value for key, value in dict(process.inputs.get(NAMESPACE, None) or {}).items()
            if value is not None}


def inference_mode(process) -> str:
    mode = inference_inputs(process).get("mode")
    return mode.value if mode is not None else "calcfunction"


def inference_problem(process, calc_class) -> str | None:
    """Why the ``inference`` inputs cannot run ``calc_class`` jobs (unknown mode, no code, bad settings), or None."""
    given = inference_inputs(process)
    mode = inference_mode(process)
    if mode not in INFERENCE_MODES:
        return f"inference.mode {mode!r} is not one of {INFERENCE_MODES}"
    if mode == "calcfunction":
        extra = sorted(set(given) - {"mode"})
        return (f"inference.{', inference.'.join(extra)} only apply to inference.mode 'calcjob'" if extra else None)
    if "code" not in given:
        return "inference.mode 'calcjob' needs inference.code (a Python with aiida-mlepi[ml])"
    if "parameters" in given:
        problem = calc_class.validate_parameters(given["parameters"].get_dict())
        if problem:
            return f"inference.parameters: {problem}"
    if "options" in given:
        port = calc_class.spec().inputs["metadata"]["options"]
        values = {name: (p.default() if callable(p.default) else p.default)
                  for name, p in port.items() if p.has_default()}
        error = port.validate({**values, **given["options"].get_dict()})
        if error is not None:
            return f"inference.options: {error.message}"
    return None


def inference_job_inputs(process, model: orm.Data, structures: dict) -> dict[str, Any]:
    """Inputs of the inference CalcJob of ``process``'s ``inference`` settings for ``structures``."""
    given = inference_inputs(process)
    inputs: dict[str, Any] = {"code": given["code"], "model": model, "structures": structures}
    if "parameters" in given:
        inputs["parameters"] = given["parameters"]
    if "options" in given:
        inputs["metadata"] = {"options": given["options"].get_dict()}
    return inputs
