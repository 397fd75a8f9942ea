# Sourced by scripts/demo.sh and scripts/run-tests.sh (from the repository root):
# `mlepi_venv EXTRAS` creates .venv if needed, installs the package (editable) with the given extras
# (comma-separated, may be empty) and puts .venv/bin on PATH (the AiiDA daemon needs `verdi` there).
# The editable install follows source changes by itself, so pip runs only when pyproject.toml or the
# extras changed: a stamp file per set of extras (.venv/.mlepi-install-EXTRAS) holds the sha256 of
# pyproject.toml and the extras of the last successful install.
mlepi_install_hash() {
  .venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read() + b"\0" + sys.argv[1].encode()).hexdigest())' "$1"
}

mlepi_venv() {
  local extras="${1:-}"
  local stamp=".venv/.mlepi-install-${extras:-none}"
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  local wanted
  wanted="$(mlepi_install_hash "$extras")"
  if [ -x .venv/bin/aiida-mlepi ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    export PATH="$PWD/.venv/bin:$PATH"
    return 0
  fi
  .venv/bin/python -m pip install -q --upgrade pip || return 1
  # torch==2.13.0 (extra "ml") is pinned: where a local CPU wheel is configured pip takes it.
  .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}" || return 1
  echo "$wanted" > "$stamp"  # only after a successful install
  export PATH="$PWD/.venv/bin:$PATH"
}
