"""Checks and small helpers shared by the WorkChains."""

from __future__ import annotations

import math

from aiida_mlepi.core.engine import SUPPORTED_ELEMENTS
from aiida_mlepi.data.layered_structure import LayeredStructureData

#: force providers the phonon stage accepts (``force_provider`` input)
FORCE_PROVIDERS = ("reference", "hedgenet")
#: Hamiltonian providers the observable stage accepts (``hamiltonian_provider`` input)
HAMILTONIAN_PROVIDERS = ("reference", "hedgenet")


def structure_elements(structure: LayeredStructureData) -> set[str]:
    """Chemical symbols of ``structure``'s sites, from its kinds' symbols (not the kind names: kinds
    named ``C1`` and ``C2`` are both carbon)."""
    return set(structure.get_symbols_set())


def unsupported_elements(structure: LayeredStructureData) -> list[str]:
    """Elements (chemical symbols) of ``structure`` the reference engine has no parameters for (sorted)."""
    return sorted(structure_elements(structure) - set(SUPPORTED_ELEMENTS))


def temperatures_problem(values: list) -> str | None:
    """Why ``values`` is not a usable list of temperatures (K) for the ``temperatures_k`` input, or None.

    Every entry must be a finite int or float (a string such as ``'300'`` or a bool is rejected, naming
    it); the list must not be empty. Negative values are left to the caller's own exit code."""
    if not values:
        return "temperatures_k is empty: at least one temperature (K) is needed"
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"temperatures_k must be finite numbers (K), got {value!r} in {list(values)!r}"
    return None


def child_failure(node) -> str:
    """Why the child process ``node`` did not finish ok, for the parent's exit message: its label and pk,
    exit status and exit message (or, for an excepted/killed child, its state and exception's last line)."""
    head = f"{node.process_label}<{node.pk}>"
    if node.is_finished:
        return f"{head} exit status {node.exit_status}: {node.exit_message or 'no exit message, see its report'}"
    exception = (node.exception or "").strip().splitlines()
    detail = f": {exception[-1]}" if exception else ""
    state = node.process_state.value if node.process_state is not None else "unknown state"
    return f"{head} {state}{detail} (see `verdi process report {node.pk}`)"


def progress_message(stage: str, done: int, total: int, detail: str = "") -> str:
    """A report line that the command line turns into a progress bar: ``[progress] stage i/n detail``."""
    return f"[progress] {stage} {done}/{total}" + (f" {detail}" if detail else "")


def define_structure_exit_codes(spec) -> None:
    """The input exit codes shared by the workflows that take a layered unit cell: 300 single layer,
    301 element without engine parameters, 302 invalid input."""
    spec.exit_code(300, "ERROR_SINGLE_LAYER",
                   message="The structure has {count} layer(s); the EPI loop of a vdW stack needs ≥ 2.")
    spec.exit_code(301, "ERROR_UNSUPPORTED_ELEMENT",
                   message="The reference engine has no parameters for the element(s) {elements}.")
    spec.exit_code(302, "ERROR_INVALID_INPUT", message="Invalid input: {reason}")
