"""Fixtures for the AiiDA-layer tests: small layered structures stored as nodes."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def relaxed_ab_bilayer_uuid(aiida_profile) -> str:
    """UUID of the relaxed AB bilayer graphene (reference engine, 12×12 k-mesh ≡ a 3×3 supercell with 4×4 k),
    relaxed and stored once per test session."""
    from aiida import orm

    from aiida_mlepi.calculations.engine import relax_bilayer_graphene

    return relax_bilayer_graphene(orm.Str("AB"), orm.Dict({}), orm.List([12, 12, 1])).uuid


@pytest.fixture(scope="module")
def relaxed_ab_bilayer(relaxed_ab_bilayer_uuid):
    """The relaxed AB bilayer, loaded afresh for each test module.

    The daemon tests switch to a PostgreSQL profile and back, and after the screening test the session's storage
    is reopened: a node object of the closed storage can no longer be linked to new nodes ("source and target
    nodes must be stored in the same backend"), so each module loads the node from the storage that is open."""
    from aiida import orm

    return orm.load_node(relaxed_ab_bilayer_uuid)
