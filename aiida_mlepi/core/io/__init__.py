"""File-format readers and writers of the physics core (no AiiDA)."""

from aiida_mlepi.core.io.deeph import (
    DeepHFormatError,
    read_deeph_legacy,
    read_deeph_updated,
    write_deeph_legacy,
    write_deeph_updated,
)

__all__ = [
    "DeepHFormatError",
    "read_deeph_legacy",
    "read_deeph_updated",
    "write_deeph_legacy",
    "write_deeph_updated",
]
