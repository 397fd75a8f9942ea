"""Machine-learned models (database-free): HedgeNet-Phonon, its graphs and calculators."""

from .graph import AtomicGraph, build_graph, collate
from .hedgenet_phonon import HedgeNetPhonon, HedgeNetPhononConfig, ModelFileError, load_model, save_model
from .calculator import HedgeNetCalculator, predict

__all__ = ["AtomicGraph", "build_graph", "collate", "HedgeNetPhonon", "HedgeNetPhononConfig",
           "ModelFileError", "load_model", "save_model", "HedgeNetCalculator", "predict"]
