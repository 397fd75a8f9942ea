#!/usr/bin/env bash
# Set up a virtual environment (.venv) with the package, then run the EPI loop on AB bilayer graphene
# (6x6 supercell, reference engine) on an AiiDA profile that is created if none exists.
# Extra arguments go to `aiida-mlepi demo` (see `aiida-mlepi demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
mlepi_venv ""
exec aiida-mlepi demo "$@"
