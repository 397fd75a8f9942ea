"""The command line shared by the job scripts (``python -m aiida_mlepi.core.ml.<script> input.json``)."""

from __future__ import annotations

import sys
from collections.abc import Callable

#: exit status of a script called without exactly one input file (the CalcJobs' 'invalid input' status)
EXIT_USAGE = 2


def script_main(run: Callable[[str], int], module: str, argv: list[str] | None = None) -> int:
    """``run(input.json)`` with the single command-line argument, or the usage line and :data:`EXIT_USAGE`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} input.json", file=sys.stderr)
        return EXIT_USAGE
    return run(argv[0])
