#!/usr/bin/env bash
# Create (or complete) the Kit-kernel virtual environment used by tests/test_kit_headless.py.
#
# The Kit kernel installs from PyPI only for Python 3.12 (isaacsim-kernel 6.x wheels), so this venv is separate
# from the project's .venv. Idempotent: a finished venv is detected by a stamp file and left alone; an interrupted
# one is completed by re-running pip (pip skips what is already installed).
#
# Usage: scripts/kit_env.sh [VENV_DIR]      (default: .venv-kit in the repository root)
# Env:   KIT_PYTHON  the Python 3.12 interpreter (default: pyenv's 3.12.1, else python3.12 on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-kit}"
# Bump the suffix when the package list below changes, so that an existing venv is completed.
STAMP="$VENV/.simgap-kit-installed-v6"
KERNEL_VERSION="6.2.0.0"

if [[ -f "$STAMP" ]]; then
    echo "kit_env: $VENV is ready ($(cat "$STAMP"))"
    exit 0
fi

PY="${KIT_PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x /root/.pyenv/versions/3.12.1/bin/python3.12 ]]; then
        PY=/root/.pyenv/versions/3.12.1/bin/python3.12
    elif command -v python3.12 >/dev/null 2>&1; then
        PY="$(command -v python3.12)"
    else
        echo "kit_env: Python 3.12 not found (set KIT_PYTHON); the Kit kernel wheels exist only for 3.12" >&2
        exit 1
    fi
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' || {
    echo "kit_env: $PY is not Python 3.12" >&2
    exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

# The kernel pins numpy (2.3.1 for 6.2.0.0); everything after it is installed against that pin via a
# constraints file so that no later package silently upgrades numpy under Kit.
"${PIP[@]}" "isaacsim-kernel==$KERNEL_VERSION"
# isaacsim-core only for the omni.kit.loop-isaac run-loop extension; its own deps pin a CUDA torch: --no-deps.
"${PIP[@]}" --no-deps "isaacsim-core==$KERNEL_VERSION"

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
"$VENV/bin/python" -c 'import numpy; print(f"numpy=={numpy.__version__}")' >"$CONSTRAINTS"
# SimGap's runtime dependencies (pyproject.toml) minus torch, which the Kit path never needs; pytest so that
# `make test` also runs the suite on this Python 3.12 + Kit-pinned numpy (the Isaac Sim 6.x interpreter).
"${PIP[@]}" -c "$CONSTRAINTS" \
    "warp-lang>=1.5" "scipy>=1.11" "pykdtree>=1.3" "numba>=0.60" "rich>=13" "tqdm>=4.66" "pyyaml>=6" "plyfile>=1.0" "pypcd4>=1.1" \
    "laspy>=2.5" "lazrs>=0.6" "matplotlib>=3.8" "jsonschema>=4.20" "cma>=3.3" "small_gicp>=1.0" "pytest>=8"

"$VENV/bin/python" - <<'EOF'
import importlib.util, sys
missing = [m for m in ("isaacsim", "numpy", "warp", "scipy", "yaml", "jsonschema", "pytest") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"kit_env: missing after install: {missing}")
EOF
[[ -x "$VENV/bin/isaacsim" ]] || { echo "kit_env: no isaacsim launcher in $VENV/bin" >&2; exit 1; }

"$VENV/bin/python" -c 'import numpy, warp; print(f"isaacsim-kernel=='"$KERNEL_VERSION"' numpy=={numpy.__version__} warp=={warp.__version__}")' >"$STAMP"
echo "kit_env: $VENV ready ($(cat "$STAMP"))"
