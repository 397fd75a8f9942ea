"""ASE calculator wrapping :class:`~aiida_mlepi.core.engine.reference.ReferenceEngine`."""

from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes

from .parameters import EngineParameters
from .reference import ReferenceEngine


class ReferenceCalculator(Calculator):
    """ASE calculator: ``energy`` = ``free_energy`` = Mermin free energy (eV), ``forces`` (eV/Å).

    Keyword arguments: ``parameters`` (an :class:`EngineParameters`, default the published set)
    and ``kpts`` (Γ-centred mesh, default (1, 1, 1)).
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, parameters: EngineParameters | None = None,
                 kpts: tuple[int, int, int] = (1, 1, 1), **kwargs) -> None:
        super().__init__(**kwargs)
        self.engine = ReferenceEngine(parameters)
        self.kpts = tuple(int(k) for k in kpts)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        res = self.engine.compute(self.atoms, kpts=self.kpts)
        self.results = {"energy": res.energy, "free_energy": res.energy, "forces": res.forces}
