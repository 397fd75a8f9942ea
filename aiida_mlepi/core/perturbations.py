"""Perturbed supercells of a layered material: the training configurations of paper Sec. III.1.

Each configuration is the n1×n2 supercell of a relaxed unit cell with
* random in-layer displacements of every atom (Gaussian, standard deviation per Cartesian
  component ``displacement_std_angstrom``), and
* for every layer above the bottom one, a rigid in-plane shift (uniform over a fraction
  ``shift_fraction`` of the *unit* cell, so that ``1.0`` covers every stacking) and a rigid change of
  its separation from the layer below (uniform in ``separation_delta_angstrom``).

A fraction ``harmonic_fraction`` of the configurations (the last ones) instead keeps the stacking and
interlayer separation of the relaxed cell and takes only small in-layer displacements (standard deviation
``harmonic_displacement_std_angstrom``): the harmonic regime that the finite-displacement phonons
(0.01 Å, phonopy's default) probe. The paper trains on *minor* random distortions; mixing the two
families keeps the stacking/separation landscape the electron–phonon sampling visits while giving the
network the force constants at equilibrium (issue 9.4: the 6×6 phonons of a 4×4-trained network).
Lengths in Å. Seeded: the same settings and seed give the same configurations (with
``harmonic_fraction = 0`` the same as before the option existed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms

from .layers import LAYER_ARRAY, get_layer_ids, set_layer_ids
from .structures import in_plane_supercell


class PerturbationError(ValueError):
    """Settings that cannot produce sensible configurations."""


@dataclass(frozen=True)
class PerturbationSettings:
    """How strongly to perturb (Å); defaults suit bilayer graphene at a few hundred K."""

    supercell: tuple[int, int] = (4, 4)
    displacement_std_angstrom: float = 0.05
    shift_fraction: float = 1.0
    separation_delta_angstrom: tuple[float, float] = (-0.25, 0.35)
    harmonic_fraction: float = 0.0  #: share of near-equilibrium configurations (no rigid layer moves)
    harmonic_displacement_std_angstrom: float = 0.02  #: their in-layer displacement std (Å)

    def __post_init__(self) -> None:
        if len(self.supercell) != 2 or min(self.supercell) < 1:
            raise PerturbationError(f"supercell must be two positive integers, got {self.supercell}")
        if not 0 <= self.displacement_std_angstrom < 0.5:
            raise PerturbationError("displacement_std_angstrom must be in [0, 0.5) Å")
        if not 0 <= self.shift_fraction <= 1:
            raise PerturbationError("shift_fraction must be in [0, 1]")
        if not 0 <= self.harmonic_fraction <= 1:
            raise PerturbationError(f"harmonic_fraction must be in [0, 1], got {self.harmonic_fraction}")
        if not 0 <= self.harmonic_displacement_std_angstrom < 0.5:
            raise PerturbationError("harmonic_displacement_std_angstrom must be in [0, 0.5) Å")
        lo, hi = self.separation_delta_angstrom
        if lo > hi or lo <= -1.5:
            raise PerturbationError(f"separation_delta_angstrom must be an interval above -1.5 Å, got {(lo, hi)}")

    @classmethod
    def from_dict(cls, values: dict) -> "PerturbationSettings":
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise PerturbationError(f"unknown perturbation settings {sorted(unknown)}; known: {sorted(known)}")
        values = dict(values)
        for key in ("supercell", "separation_delta_angstrom"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def as_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def perturbed_configurations(unit_cell: Atoms, n_configurations: int,
                             settings: PerturbationSettings = PerturbationSettings(), seed: int = 0) -> list[Atoms]:
    """``n_configurations`` perturbed supercells of ``unit_cell`` (which must carry ≥ 1 layer).

    The last ``round(harmonic_fraction · n_configurations)`` are the near-equilibrium ones.
    """
    if n_configurations < 1:
        raise PerturbationError(f"n_configurations must be ≥ 1, got {n_configurations}")
    layer_ids = get_layer_ids(unit_cell)
    base = in_plane_supercell(set_layer_ids(unit_cell.copy(), layer_ids), *settings.supercell)
    ids = base.arrays[LAYER_ARRAY]
    layers = np.unique(ids)
    unit_in_plane = np.asarray(unit_cell.cell)[:2, :2]
    rng = np.random.default_rng(seed)
    n_harmonic = int(round(settings.harmonic_fraction * n_configurations))
    configurations = []
    for _ in range(n_configurations - n_harmonic):
        atoms = base.copy()
        positions = atoms.positions.copy()
        positions += rng.normal(0.0, settings.displacement_std_angstrom, size=positions.shape)
        for layer in layers[1:]:
            shift_xy = (settings.shift_fraction * rng.random(2)) @ unit_in_plane
            positions[ids == layer, :2] += shift_xy  # stacking of this layer relative to the bottom one
            # the layers above move with it: only the separation from the layer below changes
            positions[ids >= layer, 2] += rng.uniform(*settings.separation_delta_angstrom)
        atoms.positions = positions
        atoms.wrap(pbc=[True, True, False])
        configurations.append(atoms)
    for _ in range(n_harmonic):
        atoms = base.copy()
        atoms.positions = atoms.positions + rng.normal(0.0, settings.harmonic_displacement_std_angstrom,
                                                       size=atoms.positions.shape)
        atoms.wrap(pbc=[True, True, False])
        configurations.append(atoms)
    return configurations
