"""`ConfigurationSetData`: a training set of labelled configurations (arrays in the repository).

Arrays: see :meth:`aiida_mlepi.core.dataset.ConfigurationSet.to_arrays` (energies eV, forces eV/Å,
positions Å). Queryable attributes: ``num_configurations``, ``num_atoms_total``, ``elements``,
``material``, ``source`` (the engine or file that labelled it), ``energy_unit``, ``force_unit``, and
``failed_members`` (labels of configurations whose calculation failed and were excluded).
"""

from __future__ import annotations

from pathlib import Path

from aiida import orm

from aiida_mlepi.core.dataset import ConfigurationSet


class ConfigurationSetData(orm.ArrayData):
    """Energies and forces of many configurations of a layered material."""

    @classmethod
    def from_configuration_set(cls, configurations: ConfigurationSet, *, material: str | None = None,
                               source: str | None = None, failed_members: list[str] | None = None,
                               ) -> "ConfigurationSetData":
        node = cls()
        for name, array in configurations.to_arrays().items():
            node.set_array(name, array)
        attributes = node.base.attributes
        attributes.set("num_configurations", len(configurations))
        attributes.set("num_atoms_total", int(configurations.num_atoms.sum()))
        attributes.set("elements", configurations.elements)
        attributes.set("energy_unit", "eV")
        attributes.set("force_unit", "eV/Angstrom")
        attributes.set("failed_members", list(failed_members or []))
        if material is not None:
            attributes.set("material", str(material))
        if source is not None:
            attributes.set("source", str(source))
        return node

    @classmethod
    def from_extxyz(cls, path: str | Path, **kwargs) -> "ConfigurationSetData":
        """From an extended-XYZ file (``REF_energy`` / ``REF_forces`` keys by default)."""
        read_keys = {k: kwargs.pop(k) for k in ("energy_key", "forces_key") if k in kwargs}
        return cls.from_configuration_set(ConfigurationSet.read_extxyz(path, **read_keys), **kwargs)

    def get_configuration_set(self) -> ConfigurationSet:
        arrays = {name: self.get_array(name) for name in self.get_arraynames()}
        return ConfigurationSet.from_arrays(arrays, metadata={"uuid": self.uuid})

    @property
    def num_configurations(self) -> int:
        return int(self.base.attributes.get("num_configurations"))

    @property
    def material(self) -> str | None:
        return self.base.attributes.get("material", None)
