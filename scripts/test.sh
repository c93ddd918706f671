#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, format check, types, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Two processes, one test file each at a time (a module's fixtures stay in one process): most scenarios wait
# on blocks, sockets and child processes, so two of them share the two cores well (14 min -> 10 min).
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
