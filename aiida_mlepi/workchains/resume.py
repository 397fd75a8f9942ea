"""Calcfunction calls of a WorkChain step that survive an interrupted worker (``verdi daemon stop``, a crash).

AiiDA checkpoints a WorkChain only *between* outline steps. A worker that stops in the middle of a step
leaves (a) the calcfunctions this step already finished, linked to the WorkChain, and (b) the one it was
running, stuck in ``Created``/``Running`` forever (``verdi process list`` shows it as active). The next
worker reruns the step from its start and, without help, computes (a) again.

Two measures, used together by the WorkChains of this package:

* loops over many samples/supercells are one outline step per item (``while_``), so at most one item is
  ever redone;
* every calcfunction call of a step goes through :func:`resumable_call` with a ``call_link_label`` that
  names the item. Before calling, it looks at the CALL links of this WorkChain carrying that label: a call
  that *finished ok* is reused (its very output nodes, no new node); a call that never terminated is marked
  ``killed``, sealed, with a process status saying why, so no node is left active. An unterminated child
  found when a step (re)starts always belongs to a dead attempt: a process runs in one worker at a time and
  its calcfunctions run inside that worker, synchronously.

Why not AiiDA caching (``enable_caching``)? A cache hit still creates a *new* process node and clones its
outputs, so the Hamiltonians would still be doubled in the database (and a query through provenance would
find two vF Dicts per sample); it depends on a profile setting the user has to switch on; and it does
nothing for the orphan node (an unfinished node is never a cache source, nor is it cleaned up).
"""

from __future__ import annotations

from typing import Any, Callable

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import Process, ProcessState
from aiida.engine.processes.ports import PORT_NAMESPACE_SEPARATOR

#: output link label of a calcfunction that returns one node (AiiDA's ``SINGLE_OUTPUT_LINKNAME``)
SINGLE_OUTPUT = "result"


def labelled_calls(parent: orm.ProcessNode, call_link_label: str,
                   node_class: type = orm.CalcFunctionNode) -> list[orm.ProcessNode]:
    """The calculations (calcfunctions, or ``node_class``) ``parent`` called with exactly ``call_link_label``
    (oldest first)."""
    # exact match in Python: the SQL LIKE of `link_label_filter` treats '_' as a wildcard
    triples = parent.base.links.get_outgoing(node_class=node_class, link_type=LinkType.CALL_CALC).all()
    return sorted((t.node for t in triples if t.link_label == call_link_label), key=lambda node: node.pk)


def retire_interrupted(node: orm.ProcessNode, reason: str) -> None:
    """Mark a process node that will never terminate by itself as killed (sealed, ``reason`` as its status)."""
    node.set_process_state(ProcessState.KILLED)
    node.set_process_status(reason)
    node.seal()


def settle_previous_calls(parent: orm.ProcessNode,
                          call_link_label: str) -> tuple[orm.CalcFunctionNode | None, list[orm.CalcFunctionNode]]:
    """Handle what an interrupted attempt of a step left under ``call_link_label``.

    Returns ``(finished, retired)``: the newest call that finished ok (None if there is none), and the calls
    that had not terminated and are now marked killed. Terminated but unsealed calls are sealed.
    """
    finished, retired = None, []
    for node in labelled_calls(parent, call_link_label):
        if not node.is_terminated:
            retire_interrupted(node, f"interrupted: the worker running {parent.process_label}<{parent.pk}> "
                                     f"stopped before this call terminated; the step was rerun")
            retired.append(node)
            continue
        if not node.is_sealed:
            node.seal()
        if node.is_finished_ok:
            finished = node
    return finished, retired


def calcfunction_outputs(node: orm.CalcFunctionNode) -> orm.Data | dict[str, Any]:
    """The outputs of a finished calcfunction as calling it returned them (one node, or nested dict)."""
    outputs: dict[str, Any] = {}
    for triple in node.base.links.get_outgoing(link_type=LinkType.CREATE).all():
        *namespaces, name = triple.link_label.split(PORT_NAMESPACE_SEPARATOR)
        target = outputs
        for namespace in namespaces:
            target = target.setdefault(namespace, {})
        target[name] = triple.node
    if set(outputs) == {SINGLE_OUTPUT}:
        return outputs[SINGLE_OUTPUT]
    return outputs


def resumable_call(process: Process, function: Callable, call_link_label: str,
                   *args: Any, **kwargs: Any) -> tuple[Any, orm.CalcFunctionNode]:
    """Call the calcfunction ``function`` from a step of ``process``, once per ``call_link_label``.

    Like ``function.run_get_node(*args, **kwargs)`` (returns ``(result, node)``), with the call linked
    under ``call_link_label``; if an earlier, interrupted attempt of the step already finished this call,
    its result and node are returned instead, and calls it left unterminated are retired (killed).
    """
    finished, retired = settle_previous_calls(process.node, call_link_label)
    for node in retired:
        process.report(f"{call_link_label}: {node.process_label}<{node.pk}> of an interrupted attempt marked killed")
    if finished is not None:
        process.report(f"{call_link_label}: reusing {finished.process_label}<{finished.pk}> of an interrupted attempt")
        return calcfunction_outputs(finished), finished
    metadata = {**kwargs.pop("metadata", {}), "call_link_label": call_link_label}
    return function.run_get_node(*args, metadata=metadata, **kwargs)


def resumable_submit(process: Process, process_class, call_link_label: str, **inputs: Any) -> orm.ProcessNode:
    """Submit the CalcJob ``process_class`` from a step of ``process``, once per ``call_link_label``.

    A CalcJob, unlike a calcfunction, runs on without the worker that submitted it; so a job of an
    interrupted attempt of the step that is still active, or that finished ok, is *returned* (to be awaited
    with ``ToContext``), not submitted again. Only a failed earlier job is followed by a new one.
    """
    for node in reversed(labelled_calls(process.node, call_link_label, orm.CalcJobNode)):
        if not node.is_terminated or node.is_finished_ok:
            process.report(f"{call_link_label}: reusing {node.process_label}<{node.pk}> of an interrupted attempt")
            return node
    metadata = {**inputs.pop("metadata", {}), "call_link_label": call_link_label}
    return process.submit(process_class, **inputs, metadata=metadata)
