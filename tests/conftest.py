"""Shared test fixtures. AiiDA's own fixtures give each session a temporary sqlite profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["aiida.tools.pytest_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT / ".." / "shared"

# keep the numeric libraries from fighting over the 2 cores of CI
os.environ.setdefault("OMP_NUM_THREADS", "1")


def shared_fixture(*parts: str) -> Path:
    """Path of a fixture in ``../shared/fixtures``; skips (with the reason) where it is absent."""
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent (a user clone has no ../shared; CI has it)")
    return path
