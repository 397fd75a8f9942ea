"""Labelling engines: the codes that give a configuration its energy, forces (and H(R)).

* :mod:`aiida_mlepi.engines.base` — the engine abstraction of the dataset WorkChain
  (:class:`~aiida_mlepi.engines.base.DatasetEngine`, entry-point group ``aiida_mlepi.dataset_engines``);
  one module per engine next to it (``reference``, ``gpaw``, ``vasp``, …).
* :mod:`aiida_mlepi.engines.vasp` — VASP through aiida-vasp's ``VaspWorkChain`` (optional extra
  ``vasp``): builder helper, ``misc`` → (energy, forces) conversion, failure classification and the
  dataset engine ``'vasp'``.
* :mod:`aiida_mlepi.engines.mock_vasp` — a mock VASP executable (``mlepi-mock-vasp``) that replays
  real recorded VASP outputs, for tests and demos without a VASP licence.

Importing this package imports no engine (and no optional dependency such as aiida-vasp).
"""
