"""The benchmark scripts keep working: each run once at smoke size (their figures are not checked: benchmarks
print, tests assert)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lablib import ROOT

pytestmark = pytest.mark.lab


def test_scale_bench_runs_plan_and_a_runbook_on_sshd_hosts(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    r = subprocess.run([sys.executable, "bench/scale.py", "--sizes", "3", "--forks", "2", "--runs", "1",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())["results"]
    assert [(x["hosts"], x["command"], x["exit"]) for x in rows] == [(3, "plan", 0), (3, "run", 0)], rows


def test_soak_runs_a_round_and_reports_no_failure() -> None:
    r = subprocess.run([sys.executable, "bench/soak.py", "--rounds", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: ok (1 rounds" in r.stdout and "FAILED" not in r.stdout, r.stdout
