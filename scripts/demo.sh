#!/usr/bin/env bash
# Set up a virtual environment (.venv) with the package and its ML extra, then run the MLEPI pipeline
# (`aiida-mlepi run --protocol fast`) on AB bilayer graphene with the reference engine: training datasets →
# HedgeNet-Phonon and HedgeNet-Electron → EPI loop with both networks → ground-truth check against the engine.
# The AiiDA profile 'mlepi' (SQLite, built-in ZeroMQ broker, no services) is created if none exists.
# Extra arguments go to `aiida-mlepi run` (see `aiida-mlepi run --help`); the engine-only loop is `aiida-mlepi demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
mlepi_venv "ml"
exec aiida-mlepi run --protocol fast "$@"
