"""Labelled configurations (energies eV, forces eV/Å, positions Å) for training the phonon network.

One data model, the ASE one: a :class:`ConfigurationSet` is a list of :class:`ase.Atoms`, each with
its ``layer_ids`` array and a single-point result (energy, forces). It reads and writes extended XYZ,
the format MACE users already have (keys ``REF_energy`` / ``REF_forces`` by default, as in MACE's
own examples; ``layer_ids`` is a per-atom column), and it packs into flat arrays for storage
(:meth:`ConfigurationSet.to_arrays`), which is how the AiiDA node keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .layers import LAYER_ARRAY, get_layer_ids, set_layer_ids

#: train / validation / test fractions of the paper (Sec. III.1)
PAPER_SPLIT = (0.81, 0.09, 0.10)
DEFAULT_ENERGY_KEY = "REF_energy"
DEFAULT_FORCES_KEY = "REF_forces"


class DatasetError(ValueError):
    """Inconsistent or unreadable training data."""


@dataclass
class ConfigurationSet:
    """Configurations with reference energies (eV) and forces (eV/Å).

    ``structures[m].arrays['layer_ids']`` holds the layer of each atom (0 = bottom).
    ``energies[m]`` is the total energy of configuration m; ``forces[m]`` an (N_m, 3) array.
    """

    structures: list[Atoms]
    energies: np.ndarray
    forces: list[np.ndarray]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.structures = [set_layer_ids(atoms.copy(), get_layer_ids(atoms)) for atoms in self.structures]
        self.energies = np.asarray(self.energies, dtype=float).reshape(-1)
        self.forces = [np.asarray(f, dtype=float) for f in self.forces]
        if not (len(self.structures) == len(self.energies) == len(self.forces)):
            raise DatasetError(f"{len(self.structures)} structures, {len(self.energies)} energies and "
                               f"{len(self.forces)} force arrays: they must match")
        for m, (atoms, forces) in enumerate(zip(self.structures, self.forces)):
            if forces.shape != (len(atoms), 3):
                raise DatasetError(f"configuration {m}: forces of shape {forces.shape} for {len(atoms)} atoms")
        if not (np.all(np.isfinite(self.energies)) and all(np.all(np.isfinite(f)) for f in self.forces)):
            raise DatasetError("energies and forces must be finite")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.structures)

    def __iter__(self) -> Iterator[Atoms]:
        return iter(self.to_atoms())

    @property
    def num_atoms(self) -> np.ndarray:
        """(M,) atoms per configuration."""
        return np.array([len(atoms) for atoms in self.structures], dtype=int)

    @property
    def elements(self) -> list[str]:
        """Sorted chemical symbols present."""
        return sorted({s for atoms in self.structures for s in atoms.get_chemical_symbols()})

    def subset(self, indices: Sequence[int]) -> "ConfigurationSet":
        indices = [int(i) for i in indices]
        return ConfigurationSet([self.structures[i] for i in indices], self.energies[indices],
                                [self.forces[i] for i in indices], dict(self.metadata))

    def __add__(self, other: "ConfigurationSet") -> "ConfigurationSet":
        return ConfigurationSet(self.structures + other.structures, np.concatenate([self.energies, other.energies]),
                                self.forces + other.forces, {**self.metadata, **other.metadata})

    # ------------------------------------------------------------------ ASE
    @classmethod
    def from_atoms(cls, images: Sequence[Atoms], metadata: dict | None = None) -> "ConfigurationSet":
        """From Atoms carrying a calculator result (energy, forces), e.g. read from any ASE format."""
        energies, forces = [], []
        for m, atoms in enumerate(images):
            try:
                energies.append(atoms.get_potential_energy())
                forces.append(atoms.get_forces())
            except Exception as exception:  # ASE raises several types for a missing result
                raise DatasetError(f"configuration {m} has no energy/forces: {exception}") from None
        return cls(list(images), np.array(energies), forces, dict(metadata or {}))

    def to_atoms(self) -> list[Atoms]:
        """Copies of the structures with a :class:`SinglePointCalculator` holding energy and forces."""
        images = []
        for atoms, energy, forces in zip(self.structures, self.energies, self.forces):
            image = atoms.copy()
            image.calc = SinglePointCalculator(image, energy=float(energy), forces=forces.copy())
            images.append(image)
        return images

    # ------------------------------------------------------------------ extxyz
    def write_extxyz(self, path: str | Path, energy_key: str = DEFAULT_ENERGY_KEY,
                     forces_key: str = DEFAULT_FORCES_KEY) -> Path:
        """Write extended XYZ with the energy in ``info[energy_key]`` and forces in ``arrays[forces_key]``."""
        from ase.io import write

        images = []
        for atoms, energy, forces in zip(self.structures, self.energies, self.forces):
            image = atoms.copy()
            image.info[energy_key] = float(energy)
            image.arrays[forces_key] = forces.copy()
            images.append(image)
        path = Path(path)
        write(path, images, format="extxyz")
        return path

    @classmethod
    def read_extxyz(cls, path: str | Path, energy_key: str = DEFAULT_ENERGY_KEY,
                    forces_key: str = DEFAULT_FORCES_KEY) -> "ConfigurationSet":
        """Read extended XYZ written by :meth:`write_extxyz` or by MACE tooling.

        Layer ids come from a ``layer_ids`` column if present, otherwise from the z-gaps.
        """
        from ase.io import read

        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"no such file: {path}")
        try:
            images = read(path, index=":", format="extxyz")
        except Exception as exception:
            raise DatasetError(f"{path} is not readable as extended XYZ: {exception}") from None
        structures, energies, forces = [], [], []
        for m, image in enumerate(images):
            energy = image.info.get(energy_key)
            force = image.arrays.get(forces_key)
            if energy is None and image.calc is not None and energy_key in ("energy", DEFAULT_ENERGY_KEY):
                energy = image.calc.results.get("energy")
            if force is None and image.calc is not None and forces_key in ("forces", DEFAULT_FORCES_KEY):
                force = image.calc.results.get("forces")
            if energy is None or force is None:
                raise DatasetError(f"{path}: frame {m} lacks '{energy_key}' or '{forces_key}'")
            atoms = Atoms(image.numbers, positions=image.positions, cell=image.cell, pbc=image.pbc)
            if LAYER_ARRAY in image.arrays:
                set_layer_ids(atoms, image.arrays[LAYER_ARRAY])
            structures.append(atoms)
            energies.append(float(energy))
            forces.append(np.asarray(force, dtype=float))
        return cls(structures, np.array(energies), forces, {"source": str(path)})

    # ------------------------------------------------------------------ flat arrays
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays: per configuration ``cells`` (M,3,3) Å, ``pbc`` (M,3), ``num_atoms`` (M,),
        ``energies`` (M,) eV; per atom (all configurations concatenated) ``numbers``, ``positions`` Å,
        ``forces`` eV/Å, ``layer_ids``."""
        return {
            "cells": np.array([np.asarray(a.cell) for a in self.structures], dtype=float).reshape(-1, 3, 3),
            "pbc": np.array([a.pbc for a in self.structures], dtype=bool).reshape(-1, 3),
            "num_atoms": self.num_atoms,
            "energies": self.energies.copy(),
            "numbers": np.concatenate([a.numbers for a in self.structures]).astype(int),
            "positions": np.concatenate([a.positions for a in self.structures]).reshape(-1, 3),
            "forces": np.concatenate(self.forces).reshape(-1, 3),
            "layer_ids": np.concatenate([a.arrays[LAYER_ARRAY] for a in self.structures]).astype(int),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], metadata: dict | None = None) -> "ConfigurationSet":
        counts = np.asarray(arrays["num_atoms"], dtype=int)
        ends = np.cumsum(counts)
        starts = ends - counts
        if ends.size and ends[-1] != len(arrays["numbers"]):
            raise DatasetError("num_atoms does not add up to the number of atoms stored")
        structures, forces = [], []
        for m, (s, e) in enumerate(zip(starts, ends)):
            atoms = Atoms(arrays["numbers"][s:e], positions=arrays["positions"][s:e], cell=arrays["cells"][m],
                          pbc=arrays["pbc"][m])
            structures.append(set_layer_ids(atoms, arrays["layer_ids"][s:e]))
            forces.append(np.asarray(arrays["forces"][s:e]))
        return cls(structures, np.asarray(arrays["energies"]), forces, dict(metadata or {}))


def split_indices(n: int, fractions: Sequence[float] = PAPER_SPLIT, seed: int = 0) -> dict[str, np.ndarray]:
    """Random disjoint ``train`` / ``validation`` / ``test`` index sets covering ``range(n)``.

    Sizes are ``round(f · n)`` for validation and test (at least one each when n ≥ 3); train takes the rest.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise DatasetError(f"fractions must be three non-negative numbers adding up to 1, got {fractions}")
    if n < 3:
        raise DatasetError(f"need at least 3 configurations to split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fractions[1] * n))) if fractions[1] > 0 else 0
    n_test = max(1, int(round(fractions[2] * n))) if fractions[2] > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DatasetError(f"no training configurations left from {n} with fractions {fractions}")
    return {
        "train": np.sort(order[:n_train]),
        "validation": np.sort(order[n_train:n_train + n_val]),
        "test": np.sort(order[n_train + n_val:]),
    }
