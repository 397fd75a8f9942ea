"""Committee uncertainty and one round of active learning: the steps :class:`MlepiWorkChain` mixes in.

Committee. Each network is trained ``committee.<network>`` times in parallel; member k uses the protocol's
training seed + k and split seed + k (other initial weights, batch order and train/validation/test split).
Member 0 (exactly the protocol's seeds) drives the EPI loop, so the production numbers do not depend on the
committee size. The other members are evaluated on the loop's own thermal samples:

* forces: every phonon member's forces of every sample (``compute_model_forces``, member 0 included);
* H(R) and the observable: for every electron member k ≥ 1 the undisplaced supercell (its own static lattice)
  and an :class:`ObservableWorkChain` over the loop's samples with ``hamiltonian_model`` = member k — the very
  per-sample steps of the loop (model → H → unfolded spectrum → configuration average → band parameters);
  member 0's nodes are the loop's;
* ``committee_spread`` per temperature (forces and H spread per sample, flagged samples, member std of each
  band parameter and of its change vs each member's static lattice) and ``summarize_committee``.

The observable spread is the electron committee's: the samples are those of phonon member 0; the phonon
members' disagreement enters through the per-sample forces spread (a full loop per phonon member would be
needed to propagate it to the observable).

Active learning (``active_learning = True``, one round): the flagged samples (any temperature) are labelled
by the engine (forces and H(R), reference engine), appended to the training sets
(``extend_configuration_set``, and the H(R) namespace), every member of both committees is retrained, the loop
and the committee evaluation are run again with the new members; the summary keeps the round-0 numbers. Nothing
flagged: no second round (recorded).

Context keys of round 1 carry the prefix ``round1_``; an interrupted daemon run resumes at the last
checkpointed step, and every calcfunction goes through ``resumable_call`` with a label naming member,
temperature and round.
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.engine import ToContext

from aiida_mlepi.calculations.committee import (committee_spread, extend_configuration_set, plot_committee,
                                                summarize_committee)
from aiida_mlepi.calculations.engine import compute_engine_forces, compute_engine_hamiltonian
from aiida_mlepi.calculations.model_forces import DEFAULT_BATCH_SIZE, compute_model_forces
from aiida_mlepi.calculations.spectral import compute_unfolded_spectrum
from aiida_mlepi.core.committee import CommitteeError, CommitteeThreshold
from aiida_mlepi.data.model import TrainedModelData

from .common import child_failure
from .epi_loop import temperature_key
from .observable import ObservableWorkChain, hamiltonian_of
from .phonons import PhononWorkChain
from .resume import calcfunction_outputs, labelled_calls, resumable_call

NETWORKS = ("phonon", "electron")
#: the largest committee: trainings run in parallel, evaluations one per member
MAX_COMMITTEE = 16


def member_parameters(parameters: dict, index: int) -> dict:
    """Training parameters of committee member ``index``: training and split seeds shifted by ``index``
    (member 0 keeps the given seeds; a missing seed counts as 0)."""
    out = copy.deepcopy(parameters)
    if index == 0:
        return out
    for section in ("training", "split"):
        values = out.setdefault(section, {})
        values["seed"] = int(values.get("seed", 0)) + index
    return out


def round_key(name: str, round_index: int) -> str:
    """Context key of ``name`` in active-learning round ``round_index`` (round 0: ``name`` itself)."""
    return name if round_index == 0 else f"round{round_index}_{name}"


def sample_hamiltonians(observable: orm.WorkChainNode) -> dict[str, orm.Data]:
    """The H(R) node of every configuration of an :class:`ObservableWorkChain` (its ``hamiltonian_<label>`` calls)."""
    out = {}
    for label in observable.inputs.structures:
        calls = [node for node in labelled_calls(observable, f"hamiltonian_{label}") if node.is_finished_ok]
        out[label] = calcfunction_outputs(calls[-1])
    return out


class CommitteeSteps:
    """Outline steps and helpers of the committee and of the active-learning round (see the module docstring).

    Expects the host WorkChain to define the inputs ``committee``, ``committee_threshold``, ``active_learning``,
    ``phonon_committee`` / ``hamiltonian_committee`` and the context ``phonon_source`` / ``electron_source``.
    """

    # ------------------------------------------------------------------ sizes, members
    @property
    def round_index(self) -> int:
        return int(self.ctx.get("round", 0))

    def key(self, name: str) -> str:
        return round_key(name, self.round_index)

    def committee_size(self, which: str) -> int:
        """Members of network ``which``: the trained count, or 1 + the extra given members for a given model."""
        source = self.ctx[f"{which}_source"]
        if source == "model":
            namespace = "phonon_committee" if which == "phonon" else "hamiltonian_committee"
            return 1 + len(self.inputs.get(namespace, {}))
        return int(self.inputs.committee.get_dict().get(which, 1))

    def members(self, which: str) -> list[TrainedModelData]:
        """The committee of network ``which`` in the current round, member 0 first."""
        if self.ctx[f"{which}_source"] == "model":
            given = self.inputs.phonon_model if which == "phonon" else self.inputs.hamiltonian_model
            namespace = self.inputs.get("phonon_committee" if which == "phonon" else "hamiltonian_committee", {})
            return [given] + [namespace[label] for label in sorted(namespace)]
        return [self.ctx[self.key(f"{which}_training_{k}")].outputs.model for k in range(self.committee_size(which))]

    def has_committee(self) -> bool:
        return max(self.committee_size(which) for which in NETWORKS) > 1

    def committee_problem(self, engine: str, estimator: str) -> str | None:
        """Why the committee / active-learning inputs cannot work, or None."""
        sizes = self.inputs.committee.get_dict()
        unknown = set(sizes) - set(NETWORKS)
        if unknown:
            return f"committee: unknown networks {sorted(unknown)}; known: {list(NETWORKS)}"
        for which, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COMMITTEE:
                return f"committee.{which} must be an integer between 1 and {MAX_COMMITTEE}, got {value!r}"
        try:
            CommitteeThreshold.from_dict(self.inputs.committee_threshold.get_dict())
        except CommitteeError as exc:
            return str(exc)
        if estimator != "spectral" and int(sizes.get("electron", 1)) > 1:
            return (f"the committee spread of the observable needs the spectral estimator, got {estimator!r}; "
                    "set committee.electron = 1")
        if not self.inputs.active_learning.value:
            return None
        if engine != "reference":
            return (f"active learning labels the flagged samples with the reference engine; with engine {engine!r} "
                    "set active_learning = False")
        if "phonon_model" in self.inputs or "hamiltonian_model" in self.inputs:
            return "active learning retrains the networks: give training data, not phonon_model / hamiltonian_model"
        if max(int(sizes.get(which, 1)) for which in NETWORKS) < 2:
            return "active learning needs a committee (committee.phonon or committee.electron ≥ 2) to flag samples"
        return None

    # ------------------------------------------------------------------ committee evaluation
    def _loop_observables(self, loop: orm.WorkChainNode) -> dict[float, orm.WorkChainNode]:
        return {node.inputs.temperature_k.value: node for node in loop.called
                if node.process_class is ObservableWorkChain}

    def _committee_samples(self, loop) -> dict[float, dict[str, orm.Data]]:
        return {t: {label: node.inputs.structures[label] for label in node.inputs.structures}
                for t, node in self._loop_observables(loop).items()}

    def _member_forces(self, loop) -> dict[str, dict[str, orm.Data]]:
        """Forces of every sample from every phonon member: per temperature key, ``forces_m<k>_<sample>`` → node."""
        out: dict[str, dict[str, orm.Data]] = {}
        members = self.members("phonon")
        if len(members) < 2:
            return out
        for t, samples in self._committee_samples(loop).items():
            tkey = temperature_key(t)
            out[tkey] = {}
            for k, model in enumerate(members):
                result, _ = resumable_call(self, compute_model_forces, self.key(f"committee_forces_m{k}_{tkey}"),
                                           model, orm.Int(DEFAULT_BATCH_SIZE), **samples)
                out[tkey].update({f"forces_m{k}_{label}": node for label, node in result["forces"].items()})
        return out

    def run_committee(self):
        loop = self.ctx[self.key("loop")]
        electrons = self.members("electron")
        futures = {}
        if len(electrons) > 1:
            observables = self._loop_observables(loop)
            first = next(iter(observables.values()))
            settings, engine_parameters = first.inputs.settings, first.inputs.engine_parameters
            supercell = next(n for n in loop.called if n.process_class is PhononWorkChain).outputs.supercell
            for k, model in enumerate(electrons[1:], start=1):
                hamiltonian = hamiltonian_of(self, self.key(f"committee_static_hamiltonian_m{k}"), supercell,
                                             "hedgenet", model, engine_parameters)
                static, _ = resumable_call(self, compute_unfolded_spectrum,
                                           self.key(f"committee_static_spectrum_m{k}"), hamiltonian, settings)
                for t, node in observables.items():
                    name = self.key(f"committee_observable_m{k}_{temperature_key(t)}")
                    futures[name] = self.submit(
                        ObservableWorkChain, structures=dict(node.inputs.structures),
                        temperature_k=node.inputs.temperature_k, settings=settings, engine_parameters=engine_parameters, antithetic=node.inputs.antithetic,
                        hamiltonian_provider=orm.Str("hedgenet"), hamiltonian_model=model, static_spectrum=static,
                        metadata={"call_link_label": name})
        self.report(f"committee of {len(self.members('phonon'))} phonon and {len(electrons)} electron members: "
                    f"{len(futures)} ObservableWorkChains")
        # while the observables run (daemon workers); synchronous calcfunctions
        self.ctx[self.key("committee_forces")] = self._member_forces(loop)
        return ToContext(**futures)

    def inspect_committee(self):
        loop = self.ctx[self.key("loop")]
        electrons = self.members("electron")
        observables = self._loop_observables(loop)
        for k in range(1, len(electrons)):
            for t in observables:
                node = self.ctx[self.key(f"committee_observable_m{k}_{temperature_key(t)}")]
                if not node.is_finished_ok:
                    return self.exit_codes.ERROR_COMMITTEE_FAILED.format(member=k, temperature=t,
                                                                         message=child_failure(node))
        forces = self.ctx[self.key("committee_forces")]
        threshold = self.inputs.committee_threshold
        spreads = {}
        for t, node in observables.items():
            tkey = temperature_key(t)
            nodes = dict(forces.get(tkey, {}))
            if len(electrons) > 1:
                member_nodes = [node] + [self.ctx[self.key(f"committee_observable_m{k}_{tkey}")]
                                         for k in range(1, len(electrons))]
                for k, member in enumerate(member_nodes):
                    nodes.update({f"hamiltonian_m{k}_{label}": h for label, h in sample_hamiltonians(member).items()})
                    nodes[f"average_m{k}"] = member.outputs.average
            spreads[tkey], _ = resumable_call(self, committee_spread, self.key(f"committee_spread_{tkey}"),
                                              node.inputs.temperature_k, threshold, **nodes)
        summary, _ = resumable_call(self, summarize_committee, self.key("committee_summary"), loop.outputs.summary,
                                    **spreads)
        self.ctx[self.key("committee_spreads")] = spreads
        self.ctx[self.key("committee_summary")] = summary
        self.ctx[self.key("committee_plot")], _ = resumable_call(self, plot_committee, self.key("committee_plot"),
                                                                 summary, **spreads)
        flagged = summary["num_flagged"]
        self.report(f"committee (round {self.round_index}): {flagged} sample(s) above the threshold")
        return None

    # ------------------------------------------------------------------ active learning
    def does_active_learning(self) -> bool:
        if not self.inputs.active_learning.value or self.round_index > 0:
            return False
        if self.ctx.get("committee_summary") is None or self.ctx.committee_summary["num_flagged"] == 0:
            self.report("active learning: no sample above the committee threshold, no second round")
            return False
        return True

    def run_labelling(self):
        """The engine's forces and H(R) of every flagged sample, appended to the training sets; round := 1."""
        loop = self.ctx.loop
        samples = self._committee_samples(loop)
        phonons = next(n for n in loop.called if n.process_class is PhononWorkChain)
        engine_parameters, mesh = phonons.inputs.engine_parameters, phonons.inputs.kpoints_mesh
        dataset, hamiltonians = self._training_data()
        extra_forces, extra_h, labels = {}, {}, []
        for t_text, flagged in sorted(self.ctx.committee_summary["flagged"].items(), key=lambda kv: float(kv[0])):
            tkey = temperature_key(float(t_text))
            for label in flagged:
                name = f"{tkey}_{label}"
                structure = samples[float(t_text)][label]
                forces, _ = resumable_call(self, compute_engine_forces, f"al_forces_{name}", structure,
                                           engine_parameters, mesh)
                h, _ = resumable_call(self, compute_engine_hamiltonian, f"al_hamiltonian_{name}", structure,
                                      engine_parameters)
                extra_forces.update({f"structure_{name}": structure, f"forces_{name}": forces["forces"]})
                extra_h[f"al_{name}"] = h
                labels.append(name)
        if dataset is not None:
            self.ctx.round1_phonon_dataset, _ = resumable_call(self, extend_configuration_set, "al_phonon_dataset",
                                                               dataset, **extra_forces)
        if hamiltonians is not None:
            self.ctx.round1_hamiltonians = {**hamiltonians, **extra_h}
        self.ctx.al_labelled = labels
        self.ctx.round = 1
        self.report(f"active learning: {len(labels)} flagged sample(s) labelled by the engine; retraining "
                    f"{self.committee_size('phonon')} + {self.committee_size('electron')} members")
