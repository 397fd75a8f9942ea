"""Database-free physics core of aiida-mlepi (never imports :mod:`aiida`).

Data model: :class:`ase.Atoms` with a per-atom integer array ``layer_ids`` (see
:mod:`aiida_mlepi.core.layers`); lengths in Å, energies in eV, masses in amu, frequencies in THz
unless a name says otherwise.
"""
