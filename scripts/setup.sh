#!/usr/bin/env bash
# Install cytoviz and everything it needs into ./.venv (idempotent).
#   - Python 3.11 virtual environment in the repository (.venv)
#   - exact versions from requirements/constraints.txt (torch 2.13.0, CPU build)
#   - Debian's chromium (figure export with kaleido, browser tests) via apt-get when missing
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: no python3.11 found; install Python 3.11 first" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi

FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)

stamp=.venv/.cytoviz-installed
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing cytoviz[dev] with pinned versions (requirements/constraints.txt)"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${FIND_LINKS[@]}" \
    -c requirements/constraints.txt -e ".[dev]"
  # Guard: the CPU build of torch only, never CUDA wheels.
  .venv/bin/python - <<'PY'
import importlib.metadata as md, sys
import torch
bad = [d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia-")]
if torch.version.cuda is not None or bad:
    sys.exit(f"setup: a CUDA build of torch was installed ({torch.__version__}, {bad}); "
             "install torch==2.13.0 (CPU) first and re-run")
print(f"setup: torch {torch.__version__} (CPU build)")
PY
  echo "$want" > "$stamp"
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian chromium (for figure export and browser tests)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
echo "setup: done (.venv ready)"
