"""``python -m aiida_mlepi.cli`` is the same as the ``aiida-mlepi`` command."""

from . import cmd_root

if __name__ == "__main__":
    cmd_root()
