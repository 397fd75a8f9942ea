"""Fixtures for the AiiDA-layer tests: small layered structures stored as nodes."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def relaxed_ab_bilayer(aiida_profile):
    """Relaxed AB bilayer graphene (reference engine, 12×12 k-mesh ≡ a 3×3 supercell with 4×4 k), stored once per test session."""
    from aiida import orm

    from aiida_mlepi.calculations.engine import relax_bilayer_graphene

    return relax_bilayer_graphene(orm.Str("AB"), orm.Dict({}), orm.List([12, 12, 1]))
