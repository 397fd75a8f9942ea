"""`PhononModesData`: force constants and all phonon modes of a supercell as an AiiDA node.

Arrays are those of :meth:`aiida_mlepi.core.phonons.SupercellModes.to_arrays` (frequencies in THz,
real mass-weighted eigenvectors, masses in amu, force constants in eV/Å², the supercell). Queryable
attributes: ``num_atoms``, ``num_modes``, ``frequency_min_cm1``, ``frequency_max_cm1``,
``num_imaginary`` (below −1 cm⁻¹), ``material``.
"""

from __future__ import annotations

from aiida import orm

from aiida_mlepi.core.phonons import SupercellModes
from aiida_mlepi.core.units import THZ_TO_CM1

IMAGINARY_TOLERANCE_CM1 = 1.0


class PhononModesData(orm.ArrayData):
    """Phonon eigenmodes (ω in THz, ε) of a supercell, with its force constants."""

    @classmethod
    def from_modes(cls, modes: SupercellModes, material: str | None = None) -> "PhononModesData":
        node = cls()
        for name, array in modes.to_arrays().items():
            node.set_array(name, array)
        freqs_cm1 = modes.frequencies_thz * THZ_TO_CM1
        attrs = node.base.attributes
        attrs.set("num_atoms", len(modes.supercell))
        attrs.set("num_modes", int(freqs_cm1.size))
        attrs.set("frequency_min_cm1", float(freqs_cm1.min()))
        attrs.set("frequency_max_cm1", float(freqs_cm1.max()))
        attrs.set("num_imaginary", int((freqs_cm1 < -IMAGINARY_TOLERANCE_CM1).sum()))
        if material is not None:
            attrs.set("material", material)
        return node

    @property
    def material(self) -> str | None:
        return self.base.attributes.get("material", None)

    def get_modes(self) -> SupercellModes:
        return SupercellModes.from_arrays({name: self.get_array(name) for name in self.get_arraynames()})
