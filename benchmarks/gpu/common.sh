# Sourced by the GPU check scripts. Sets REPO (the repository root), makes the package importable
# without installing it (the GPU machine runs the checkout as it is), and picks the interpreter PY:
# $PYTHON, else the project's .venv, else python3 (the GPU machine has no .venv).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then
  PY="$REPO/.venv/bin/python"
else
  PY=python3
fi
