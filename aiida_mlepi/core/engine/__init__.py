"""Reference tight-binding engine (a "DFT stand-in") for carbon multilayers; see :mod:`.reference`."""

from .parameters import EngineParameterError, EngineParameters
from .reference import (SUPPORTED_ELEMENTS, EngineResult, KPointError, ReferenceEngine, UnsupportedElementError,
                        analytic_fermi_velocity, monkhorst_pack_gamma)
from .ase_calculator import ReferenceCalculator

__all__ = [
    "EngineParameterError",
    "EngineParameters",
    "EngineResult",
    "KPointError",
    "ReferenceCalculator",
    "ReferenceEngine",
    "SUPPORTED_ELEMENTS",
    "UnsupportedElementError",
    "analytic_fermi_velocity",
    "monkhorst_pack_gamma",
]
