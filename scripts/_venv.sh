# Sourced by scripts/demo.sh and scripts/run-tests.sh (from the repository root):
# `mlepi_venv EXTRAS` creates .venv if needed, installs the package (editable) with the given extras
# (comma-separated, may be empty) and puts .venv/bin on PATH (the AiiDA daemon needs `verdi` there).
mlepi_venv() {
  local extras="${1:-}"
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  # torch==2.13.0 (extra "ml") is pinned: where a local CPU wheel is configured pip takes it.
  .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
  export PATH="$PWD/.venv/bin:$PATH"
}
