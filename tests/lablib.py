"""Helpers for tests on real labs: run dnet, run plain commands on lab nodes over SSH."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dnet.lab.state import LabState, host_spec
from dnet.transport.ssh import SSHTransport
from tests.conftest import ROOT


def dnet(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def dnet_json(*args: str) -> tuple[int, dict[str, Any]]:
    r = dnet(*args, "--json")
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None


def node_sh(lab: str, node: str, command: str, check: bool = True) -> str:
    """Run a plain shell command on a lab node over SSH (not through dnet's converge code)."""
    state = LabState.load(lab)
    n = next(x for x in [*state.nodes, *([state.upstream] if state.upstream else [])] if x.name == node)
    t = SSHTransport(host_spec(state, n))
    try:
        return t.run(command, check=check).stdout
    finally:
        t.close()


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@contextmanager
def example_lab(prefix: str, net: str, where: Path) -> Iterator[tuple[str, Path]]:
    """A 3-node lab on NET.0/24 running nothing yet, its inventory the example's (`where`/lab.yml); down after."""
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    inv = where / "lab.yml"
    r = dnet("lab", "up", "--name", name, "--subnet", f"{net}.0/24", "--with-example", "-o", str(inv))
    assert r.returncode == 0, r.stderr
    try:
        yield name, inv
    finally:
        dnet("lab", "down", "--name", name)
