"""`LayeredStructureData`: a `StructureData` whose atoms carry layer ids (stored and queryable).

Attributes beyond those of `StructureData` (all queryable with the QueryBuilder, e.g.
``filters={'attributes.material': 'AB-bilayer-graphene', 'attributes.temperature_k': 300.0}``):

* ``layer_ids`` — list of int, one per site (0 = bottom layer);
* ``num_layers`` — int;
* ``material`` — str, a label of the material (e.g. ``AB-bilayer-graphene``);
* for thermal samples also ``temperature_k`` (float, K), ``sample_index`` (int), ``sampler`` (str: ``'mc'``
  Monte Carlo or ``'zg'`` special displacements) and, for Monte Carlo, ``seed`` (int).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from ase import Atoms

from aiida_mlepi.core.layers import LAYER_ARRAY, get_layer_ids, set_layer_ids

SAMPLE_ATTRIBUTES = ("temperature_k", "sample_index", "seed", "sampler")


class LayeredStructureData(orm.StructureData):
    """A periodic structure of stacked 2D layers; the layer id of each site is stored with it."""

    @classmethod
    def from_ase(cls, atoms: Atoms, material: str | None = None, **sample_attributes) -> "LayeredStructureData":
        """Build from :class:`ase.Atoms`; layer ids from ``atoms.arrays['layer_ids']`` or z-gaps."""
        node = cls(ase=atoms)
        node.set_layer_ids(get_layer_ids(atoms))
        if material is not None:
            node.base.attributes.set("material", str(material))
        for key, value in sample_attributes.items():
            if key not in SAMPLE_ATTRIBUTES:
                raise ValueError(f"unknown sample attribute {key!r}; allowed: {SAMPLE_ATTRIBUTES}")
            node.base.attributes.set(key, value)
        return node

    def set_layer_ids(self, layer_ids) -> None:
        ids = [int(i) for i in np.asarray(layer_ids).tolist()]
        if len(ids) != len(self.sites):
            raise ValueError(f"{len(ids)} layer ids for {len(self.sites)} sites")
        self.base.attributes.set("layer_ids", ids)
        self.base.attributes.set("num_layers", len(set(ids)))

    @property
    def layer_ids(self) -> list[int]:
        return list(self.base.attributes.get("layer_ids"))

    @property
    def num_layers(self) -> int:
        return int(self.base.attributes.get("num_layers"))

    @property
    def material(self) -> str | None:
        return self.base.attributes.get("material", None)

    def get_ase(self) -> Atoms:
        """The structure as :class:`ase.Atoms` with the ``layer_ids`` array attached."""
        atoms = super().get_ase()
        if LAYER_ARRAY in atoms.arrays:
            del atoms.arrays[LAYER_ARRAY]
        return set_layer_ids(atoms, self.layer_ids)
