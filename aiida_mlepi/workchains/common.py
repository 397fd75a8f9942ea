"""Checks and small helpers shared by the WorkChains."""

from __future__ import annotations

from aiida_mlepi.core.engine import SUPPORTED_ELEMENTS
from aiida_mlepi.data.layered_structure import LayeredStructureData

#: force providers the phonon stage accepts (``force_provider`` input)
FORCE_PROVIDERS = ("reference", "hedgenet")
#: Hamiltonian providers the observable stage accepts (``hamiltonian_provider`` input)
HAMILTONIAN_PROVIDERS = ("reference", "hedgenet")


def unsupported_elements(structure: LayeredStructureData) -> list[str]:
    """Elements of ``structure`` the reference engine has no parameters for (sorted)."""
    return sorted(set(structure.get_kind_names()) - set(SUPPORTED_ELEMENTS))


def progress_message(stage: str, done: int, total: int, detail: str = "") -> str:
    """A report line that the command line turns into a progress bar: ``[progress] stage i/n detail``."""
    return f"[progress] {stage} {done}/{total}" + (f" {detail}" if detail else "")
