#!/usr/bin/env bash
# Set up (playbooks/setup.sh) and run every test, the real-engine lab tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash playbooks/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
