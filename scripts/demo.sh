#!/usr/bin/env bash
# The main job: bring up a fresh 3-node lab, apply inventories/example.yml to it, verify, print the matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dnet=.venv/bin/dnet
$dnet lab down --name demo >/dev/null 2>&1 || true   # a fresh lab every time
$dnet lab up --name demo --with-example -o inventories/demo.yml
$dnet validate -i inventories/demo.yml
$dnet apply -i inventories/demo.yml --yes
$dnet apply -i inventories/demo.yml --yes            # the second apply changes nothing
$dnet verify -i inventories/demo.yml
