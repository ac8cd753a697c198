#!/usr/bin/env bash
# The main job: bring up a 3-node lab, apply inventories/example.yml to it, verify, print the matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash playbooks/setup.sh
dnet=.venv/bin/dnet
$dnet lab up --name demo --with-example -o inventories/demo.yml
$dnet validate -i inventories/demo.yml
if $dnet --help | grep -q '^  apply'; then
  $dnet apply -i inventories/demo.yml --yes
fi
if $dnet --help | grep -q '^  verify'; then
  $dnet verify -i inventories/demo.yml
else
  $dnet lab status --name demo
fi
