"""`HamiltonianData`: a real-space Hamiltonian H(R) and overlap S(R) as an AiiDA node.

Arrays (in the node's repository): ``cell`` (3, 3) Å, ``positions`` (N, 3) Å, ``numbers`` (N,),
``edges`` (E, 5) int (Rx, Ry, Rz, i, j; 0-based), ``h_values`` (eV, flattened blocks), and
``s_values`` unless the basis is orthogonal. Queryable attributes: ``species`` (sorted element
symbols), ``num_atoms``, ``num_edges``, ``num_orbitals``, ``basis`` ({symbol: [l, ...]}),
``orbital_order`` ('openmx'), ``energy_unit`` ('eV'), ``length_unit`` ('Angstrom'),
``orthogonal`` (bool), and — copied from the structure it was computed for — ``material``,
``temperature_k``, ``sample_index`` where present. See :mod:`aiida_mlepi.core.hamiltonian`.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from ase.data import atomic_numbers, chemical_symbols

from aiida_mlepi.core.hamiltonian import ENERGY_UNIT, LENGTH_UNIT, HamiltonianR

_ARRAYS = ("cell", "positions", "numbers", "edges", "h_values")


class HamiltonianData(orm.ArrayData):
    """H(R), S(R) blocks of a periodic structure (eV, Å), with basis and units stored."""

    @classmethod
    def from_hamiltonian(cls, h: HamiltonianR, **attributes) -> "HamiltonianData":
        node = cls()
        node.set_array("cell", h.cell)
        node.set_array("positions", h.positions)
        node.set_array("numbers", h.numbers)
        node.set_array("edges", h.edges)
        node.set_array("h_values", h.h_values)
        if h.s_values is not None:
            node.set_array("s_values", h.s_values)
        attrs = node.base.attributes
        attrs.set("species", sorted({chemical_symbols[z] for z in h.numbers.tolist()}))
        attrs.set("num_atoms", len(h))
        attrs.set("num_edges", int(len(h.edges)))
        attrs.set("num_orbitals", h.num_orbitals)
        attrs.set("basis", {chemical_symbols[z]: list(ls) for z, ls in h.basis.items()})
        attrs.set("orbital_order", "openmx")
        attrs.set("energy_unit", ENERGY_UNIT)
        attrs.set("length_unit", LENGTH_UNIT)
        attrs.set("orthogonal", h.s_values is None)
        attrs.set("pbc", [bool(p) for p in h.pbc])
        attrs.set("metadata", dict(h.metadata))
        for key, value in attributes.items():
            attrs.set(key, value)
        return node

    def get_hamiltonian(self) -> HamiltonianR:
        """The stored H(R)/S(R) as a :class:`~aiida_mlepi.core.hamiltonian.HamiltonianR`."""
        names = set(self.get_arraynames())
        basis = {atomic_numbers[s]: tuple(ls) for s, ls in self.base.attributes.get("basis").items()}
        return HamiltonianR(
            cell=self.get_array("cell"),
            positions=self.get_array("positions"),
            numbers=self.get_array("numbers"),
            basis=basis,
            edges=self.get_array("edges"),
            h_values=self.get_array("h_values"),
            s_values=self.get_array("s_values") if "s_values" in names else None,
            pbc=tuple(self.base.attributes.get("pbc", [True, True, True])),
            metadata=dict(self.base.attributes.get("metadata", {})),
        )
