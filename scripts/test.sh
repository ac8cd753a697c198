#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test, the real-engine lab tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
DNET_SETUP_TESTS=1 bash scripts/setup.sh
echo "lint: ruff check, mypy --strict on dnet, tests and bench (settings in pyproject.toml and setup.cfg)"
.venv/bin/ruff check dnet tests bench
.venv/bin/mypy dnet tests bench
exec .venv/bin/python -m pytest -ra "$@"
