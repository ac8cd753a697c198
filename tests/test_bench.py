"""The benchmark scripts keep working: each run once at smoke size (their figures are not checked: benchmarks
print, tests assert)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.lab


def test_scale_bench_runs_plan_and_a_runbook_on_sshd_hosts(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    r = subprocess.run([sys.executable, "bench/scale.py", "--sizes", "3", "--forks", "2", "--runs", "1",
                        "--transports", "direct,held,openssh", "--out", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())["results"]
    modes = ("direct", "held", "again", "openssh", "openssh-again")
    assert [(x["hosts"], x["command"], x["transport"], x["exit"]) for x in rows] == [
        (3, cmd, mode, 0) for cmd in ("plan", "run") for mode in modes], rows
    # what keeps connections between runs opened one per host on a first run, none on the next
    assert [x["keeper_handshakes"] for x in rows[:5]] == [0, 3, 0, 3, 0], rows
    assert all(x["keeper_cpu_s"] == 0 for x in rows if x["transport"] == "direct"), rows


def test_soak_runs_a_round_and_reports_no_failure() -> None:
    r = subprocess.run([sys.executable, "bench/soak.py", "--rounds", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: ok (1 rounds" in r.stdout and "FAILED" not in r.stdout, r.stdout


def test_compare_bench_runs_dnet_and_the_floor_on_one_lab(tmp_path: Path) -> None:
    """The side-by-side at smoke size: dnet and the multiplexed-SSH floor (pyinfra and Ansible need the package
    index and a derived node image, so they run only when the benchmark is run by hand)."""
    out = tmp_path / "compare.json"
    r = subprocess.run([sys.executable, "bench/compare.py", "--runs", "1", "--tools", "dnet,floor", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(out.read_text())
    assert set(got["runs"]) == {"dnet", "floor"}
    assert got["runs"]["dnet"][0]["second_run_changes"] == 0  # dnet's no-op run changed nothing
    assert "vs floor" in r.stdout
