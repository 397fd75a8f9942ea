#!/usr/bin/env bash
# Set up a virtual environment (.venv) with the package and its test/ML extras, then run the tests.
# Usage: bash scripts/run-tests.sh [pytest args...]     (default: the CI selection, -m "not slow")
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 is pinned: on machines with the local CPU wheel pip takes it, elsewhere PyPI's.
.venv/bin/python -m pip install -q -e ".[ml,tests]"
export PATH="$PWD/.venv/bin:$PATH"   # the AiiDA daemon needs `verdi` on PATH
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest "$@"
