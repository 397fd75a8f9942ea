#!/usr/bin/env bash
# Set up a virtual environment (.venv) with the package, then run the EPI loop on AB bilayer graphene
# (6x6 supercell, reference engine) on an AiiDA profile that is created if none exists.
# Extra arguments go to `aiida-mlepi demo` (see `aiida-mlepi demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
export PATH="$PWD/.venv/bin:$PATH"
exec aiida-mlepi demo "$@"
