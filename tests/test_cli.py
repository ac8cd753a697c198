"""CLI behaviour: exit codes, clean errors, JSON output, completion."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLE, ROOT


def dnet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_version() -> None:
    r = dnet("--version")
    assert r.returncode == 0 and r.stdout.startswith("dnet, version ")


def test_validate_ok_and_env_var() -> None:
    assert dnet("validate", "-i", str(EXAMPLE)).returncode == 0
    r = dnet("validate", env={"DNET_INVENTORY": str(EXAMPLE)})
    assert r.returncode == 0, r.stderr


def test_validate_bad_prints_only_problem_lines() -> None:
    bad = ROOT / "tests" / "bad" / "unknown_refs.yml"
    r = dnet("validate", "-i", str(bad))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith(f"{bad}:") for ln in lines)
    assert "Traceback" not in r.stderr + r.stdout


def test_validate_directory_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.yml").write_bytes(b"\xff\xfe\x00garbage")
    for target in (str(tmp_path / "x.yml"), str(tmp_path / "missing.yml")):
        r = dnet("validate", "-i", target)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"{target}:1:1: ")


def test_usage_error_exits_2() -> None:  # click's convention (it was 1 before the CLI conventions issue)
    r = dnet("validate")
    assert r.returncode == 2 and "inventory" in r.stderr.lower()
    r = dnet("plan", "-i", str(EXAMPLE), "--no-such-flag")
    assert r.returncode == 2 and "no such option" in r.stderr.lower()


def test_show_json_has_effective_hosts() -> None:
    r = dnet("show", "-i", str(EXAMPLE), "--json")
    data = json.loads(r.stdout)
    assert data["hosts"]["node3"]["hostname"] == "192.168.77.13"
    assert data["hosts"]["node3"]["engine"]["mtu"] == 1450
    assert data["networks"]["appnet"]["subnet"] == "10.77.0.0/24"


def test_show_table() -> None:
    r = dnet("show", "-i", str(EXAMPLE))
    assert r.returncode == 0 and "root@192.168.77.11:22" in r.stdout and "10.77.0.0/24" in r.stdout


def test_shell_completion() -> None:
    r = dnet(env={"_DNET_COMPLETE": "bash_source"})
    assert r.returncode == 0 and "_dnet_completion" in r.stdout
