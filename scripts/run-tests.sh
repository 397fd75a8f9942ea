#!/usr/bin/env bash
# Set up a virtual environment (.venv) with the package and its test/ML extras, then run the tests.
# Usage: bash scripts/run-tests.sh [pytest args...]     (default: the CI selection, -m "not slow")
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
mlepi_venv "ml,tests,screening"   # screening: pymatgen (lattice-matching oracle of the catalogue tests), aiida-submission-controller
# GPAW (free DFT engine, extra "gpaw") compiles against the system's libxc + BLAS (Debian:
# apt-get install libxc-dev libopenblas-dev; .ci/run does this). Without them: a warning, and the
# GPAW tests skip with the reason (under MLEPI_REQUIRE_SERVICES=1 they fail instead).
if ! .venv/bin/python -c "import gpaw, dftd3" >/dev/null 2>&1; then  # dftd3: DFT-D3 of the gpaw extra
  if ! .venv/bin/python -m pip install -q -e ".[gpaw]"; then
    echo "warning: GPAW could not be built (needs libxc-dev and a BLAS, e.g. libopenblas-dev); GPAW tests will skip" >&2
  fi
fi
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest "$@"
