"""The wheel installs into a clean venv and works from any directory; the example project's lab tests pass with it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.lab


def sh(*args: str | Path, cwd: Path, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_wheel_installs_anywhere_and_runs_the_example_project(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT, cwd=tmp_path)
    wheel = next(dist.glob("dnet_swarm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("dnet/files/example.yml", "dnet/files/vagrant/Vagrantfile", "dnet/files/runbooks/drain-node.yml",
                   "dnet/lab/files/node-init", "dnet/files/probe-fetch", "dnet/py.typed"):
        assert needed in names, needed
    assert any(n.endswith("LICENSE") for n in names)
    assert "pytest11" in zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    py, dnet = venv / "bin" / "python", venv / "bin" / "dnet"
    sh(py, "-m", "pip", "install", "-q", f"{wheel}", cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    # Without the docker SDK: the CLI works, labs say what is missing.
    assert sh(dnet, "--version", cwd=work).startswith("dnet, version")
    assert '"$schema"' in sh(dnet, "schema", cwd=work)
    sh(dnet, "run", "--help", cwd=work)
    r = subprocess.run([dnet, "lab", "status"], capture_output=True, text=True, cwd=work)
    assert r.returncode == 1 and "pip install 'dnet-swarm[lab]'" in r.stderr and "internal error" not in r.stderr
    # With it, and pytest: the example project (its own tests, the plugin from the wheel, a real lab).
    sh(py, "-m", "pip", "install", "-q", f"{wheel}[lab]", "pytest", "pyyaml", cwd=tmp_path)
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "integration", project)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    out = sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, env=env)
    assert "1 passed" in out
