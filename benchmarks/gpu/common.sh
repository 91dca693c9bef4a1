# Sourced by the GPU check scripts. Sets REPO (the repository root) and picks the interpreter PY:
# $PYTHON, else the project's .venv, else python3.
#
# The suite must be installed for PY: its configs are the packages cifar_resnets.conf and
# cifar_resnets.experiments, which only an install maps onto conf/ and experiments/ (PYTHONPATH alone
# finds the code but not them). `require_suite` checks it; on a GPU machine, whose python3 has torch
# and Lightning but neither Hydra nor the suite, run_all.sh calls `install_suite` first.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then
  PY="$REPO/.venv/bin/python"
else
  PY=python3
fi

require_suite() {  # stop with one line unless PY imports the installed suite and its configs
  if ! "$PY" -c "import cifar_resnets.conf, cifar_resnets.experiments" 2>/dev/null; then
    echo "$(basename "$0"): the suite is not installed for $PY; install it with" \
      "'$PY -m pip install -e $REPO' (benchmarks/gpu/run_all.sh does it on a GPU machine)" >&2
    exit 2
  fi
}

install_suite() {  # install_suite WHEEL_DIR VENV: a venv layered on PY's packages, holding the wheels
  # of WHEEL_DIR (hydra-core, omegaconf, ...) and the suite (editable); PY and PYTHON become its python.
  # A venv, not PY's own site-packages: that one may be read-only or managed by the system (PEP 668).
  local wheels="$1" venv="$2" site
  "$PY" -m venv --without-pip "$venv" || return 1
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
  # PY's site folders, .pth files included (pip comes from there too).
  "$PY" -c 'import site; print("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in
    site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])))' \
    > "$site/zz_base_packages.pth" || return 1
  { "$venv/bin/python" -m pip install --no-index --no-deps --no-compile --ignore-installed "$wheels"/*.whl &&
    "$venv/bin/python" -m pip install --no-index --no-deps --no-build-isolation --ignore-installed -e "$REPO"; } \
    > "$venv/pip.log" 2>&1 || { tail -20 "$venv/pip.log" >&2; return 1; }
  PY="$venv/bin/python"
  export PYTHON="$PY"
}
