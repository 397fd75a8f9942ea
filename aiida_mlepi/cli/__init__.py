"""The ``aiida-mlepi`` command line (``verdi`` style: ``aiida-mlepi -p PROFILE COMMAND``)."""

from .root import cmd_root
from . import demo, results, run, screen  # noqa: F401  (register the commands)

__all__ = ["cmd_root"]
