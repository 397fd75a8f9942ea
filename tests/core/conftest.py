"""Fixtures shared by the core tests."""

from __future__ import annotations

import pytest

from aiida_mlepi.core.phonons import SupercellModes, compute_supercell_modes


@pytest.fixture(scope="session")
def engine_bilayer_modes() -> SupercellModes:
    """Reference engine at its relaxed AB bilayer (12×12 k) with modes of the 6×6 supercell from forces on a
    2×2 k-mesh (the same Brillouin-zone sampling as the relaxation; ~16 s). Session-scoped: computed once for
    the phonon and the special-displacement tests."""
    reference = pytest.importorskip("aiida_mlepi.core.engine.reference")
    relax = pytest.importorskip("aiida_mlepi.core.engine.relax")
    engine = reference.ReferenceEngine(reference.EngineParameters())
    bilayer = relax.relaxed_bilayer_graphene(engine, stacking="AB", kpts=(12, 12, 1))
    return compute_supercell_modes(bilayer, (6, 6, 1), lambda atoms: engine.forces(atoms, kpts=(2, 2, 1)))
