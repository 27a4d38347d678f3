#!/usr/bin/env bash
# Build (or refresh) the project's virtual environment on Python 3.10. Idempotent: a stamp
# file records the hash of the dependency files, so a second run with nothing changed
# returns at once.
#
#   VENV=.venv            where to build it
#   PYTHON=python3.10     which interpreter to use (default: python3.10 on PATH, then pyenv)
#   VENV_ARGS=            extra `python -m venv` flags, e.g. --system-site-packages to see a
#                         detectron2 built from source outside the venv
#   SETUP_DRY_RUN=1       print the decisions (torch: keep or install; detectron2: keep or
#                         install) and stop before installing anything
#
# torch: a torch that is already importable in the environment and was not installed by this
# script (a CUDA build the user chose, perhaps with a source-built detectron2 compiled against
# it) is kept, and torch / torchvision are then not touched at all. Otherwise the pinned
# stack below is installed; the script records that in $VENV/.panext_torch.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# torch 2.10.0 is the newest release on PyPI built on CUDA 12.8, whose wheel has kernels for
# sm_70 (V100) ... sm_120; 2.11 onwards are CUDA 13 builds without sm_70. It runs on CPU too.
TORCH_PINS="torch==2.10.0 torchvision==0.25.0"
D2_PIN="sal-detectron2==0.7.2"

is_py310() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; }

find_python() {
  local candidate
  for candidate in ${PYTHON:-} "$(command -v python3.10 || true)" \
      $( command -v pyenv >/dev/null 2>&1 && ls -d "$(pyenv root)"/versions/3.10.*/bin/python3.10 2>/dev/null ); do
    if is_py310 "$candidate"; then echo "$candidate"; return; fi
    [ -n "${PYTHON:-}" ] && return  # an explicit PYTHON that is not 3.10 is an error, not a hint
  done
}

PY=$(find_python)
if [ -z "$PY" ]; then
  echo "error: Python 3.10 is required (detectron2's wheel sal-detectron2 is built for cp310)," >&2
  echo "       but none was found (PYTHON='${PYTHON:-}', python3.10 not on PATH, no pyenv 3.10.x)." >&2
  echo "       Install it, e.g. 'pyenv install 3.10.13', or set PYTHON=/path/to/python3.10." >&2
  exit 1
fi

stamp="$VENV/.panext_setup"
torch_marker="$VENV/.panext_torch"
want=$(cat requirements.txt setup.py tools/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv ${VENV_ARGS:-} "$VENV"
if ! is_py310 "$VENV/bin/python"; then
  echo "error: $VENV exists but is not a Python 3.10 environment; remove it and run again." >&2
  exit 1
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
dry_run=${SETUP_DRY_RUN:-}

# The user's own torch: importable, and not recorded as ours.
if [ ! -f "$torch_marker" ] && torch_info=$("$VENV/bin/python" -c \
    'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null); then
  echo "setup: keeping the installed torch $torch_info (torch and torchvision are not touched)"
else
  echo "setup: installing $TORCH_PINS (a large download on a fresh machine)"
  if [ -z "$dry_run" ]; then
    $PIP install -q $TORCH_PINS
    echo "$TORCH_PINS" > "$torch_marker"
  fi
fi

# Keep a detectron2 that is already importable (built from source in this venv, or visible
# through --system-site-packages); otherwise install the cp310 wheel of upstream detectron2.
if d2=$("$VENV/bin/python" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))' 2>/dev/null); then
  echo "setup: keeping the detectron2 found at $d2"
else
  echo "setup: installing $D2_PIN"
  if [ -z "$dry_run" ]; then $PIP install -q "$D2_PIN"; fi
fi
if [ -n "$dry_run" ]; then
  echo "setup: dry run, nothing installed"
  exit 0
fi

$PIP install -q -r requirements.txt
$PIP install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c 'import panext_d2' >/dev/null
echo "$want" > "$stamp"
echo "setup: done ($VENV)"
