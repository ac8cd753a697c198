#!/usr/bin/env bash
# The main job: bring up a 3-node lab, apply inventories/example.yml to it, verify, print the matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash playbooks/setup.sh
dnet=.venv/bin/dnet
if $dnet lab status --name demo --json | grep -q '"node"'; then
  echo "demo: lab 'demo' is already up; reusing it (dnet lab down --name demo for a fresh one)"
else
  $dnet lab up --name demo --with-example -o inventories/demo.yml
fi
$dnet validate -i inventories/demo.yml
$dnet apply -i inventories/demo.yml --yes
$dnet verify -i inventories/demo.yml
