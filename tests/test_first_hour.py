"""An operator's first hour, from a machine with only the built wheel: no docker and no busybox on PATH. apply
assembles the probe on the hosts, verify passes with an https egress check against the lab's TLS server, an
untrusted certificate is a TLS failure with its hint, --no-operator probes from the hosts, --baseline fails only on
new failures, and `dnet exec` runs ad-hoc commands on the hosts."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import jsondoc
from tests.conftest import ROOT

pytestmark = pytest.mark.lab

SUBNET = "192.168.82.0/24"
WORKLOADS = """
networks:
  front: {driver: bridge, subnet: 172.31.82.0/24}
containers:
  web:
    host: node1
    image: dnet/probe:latest
    networks: [front]
    ports: ["8088:80/tcp"]
"""
UNTRUSTED = """
checks:
  - {from: web, to: "https://upstream.lab:8443/", expect: reachable}
"""


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The wheel's dnet in a fresh venv, and an environment whose PATH holds that venv's bin only."""
    tmp = tmp_path_factory.mktemp("laptop")
    r = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", ROOT)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp / "dist").glob("*.whl"))
    assert run(sys.executable, "-m", "venv", tmp / "venv").returncode == 0
    r = run(tmp / "venv" / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert r.returncode == 0, r.stderr
    path = str(tmp / "venv" / "bin")
    assert shutil.which("docker", path=path) is None and shutil.which("busybox", path=path) is None
    yield tmp / "venv" / "bin" / "dnet", {"PATH": path, "HOME": str(Path.home()), "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    name = f"f{uuid.uuid4().hex[:6]}"
    inv = tmp_path_factory.mktemp("firsthour") / "lab.yml"
    r = run(sys.executable, "-m", "dnet", "lab", "up", "--name", name, "--nodes", "3", "--subnet", SUBNET, "-o", inv)
    assert r.returncode == 0, r.stderr
    try:
        inv.write_text(inv.read_text() + WORKLOADS)  # the documented way: the lab's SSH settings stay as written
        yield inv
    finally:
        run(sys.executable, "-m", "dnet", "lab", "down", "--name", name)


def verify(dnet: Path, env: dict[str, str], inv: Path, *args: str) -> tuple[int, dict[str, Any]]:
    r = run(dnet, "verify", "-i", inv, "--json", *args, env=env)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"exit {r.returncode}: {r.stdout[-2000:]}\n{r.stderr[-2000:]}") from None


def test_apply_and_verify_need_neither_docker_nor_busybox_here(laptop: tuple[Path, dict[str, str]], lab: Path) -> None:
    dnet, env = laptop
    r = run(dnet, "exec", "-i", lab, "-q", "--", "docker rmi -f dnet/probe:latest >/dev/null", env=env)
    assert r.returncode == 0, r.stdout + r.stderr  # as on hosts dnet never saw: no probe image anywhere
    r = run(dnet, "apply", "-i", lab, "--yes", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"node1 +image +dnet/probe:latest +pull +ok +assembled", r.stdout), r.stdout  # made on node1
    code, data = verify(dnet, env, lab)
    assert code == 0 and data["summary"]["failed"] == 0, [c for c in data["checks"] if not c["ok"]]
    https = [c for c in data["checks"] if c["to"] == "https://upstream.lab/" and c["check"].startswith("http")]
    assert len(https) == 2 and all(c["ok"] and c["detail"].startswith("HTTP/1.0 200") for c in https), https
    by_ip = [c for c in https if c.get("egress") == "ip"]
    assert by_ip and "via 192.168.82.2" in by_ip[0]["check"]


def test_an_untrusted_certificate_fails_as_tls_with_its_hint(laptop: tuple[Path, dict[str, str]], lab: Path) -> None:
    dnet, env = laptop
    inv = lab.with_name("untrusted.yml")
    inv.write_text(lab.read_text() + UNTRUSTED)
    code, data = verify(dnet, env, inv, "--scope", "5")
    [c] = data["checks"]
    assert code == 1 and c["result"] == "tls" and c["detail"].startswith("certificate not trusted:"), c
    assert c["hint"].startswith("tls: certificate not trusted: the server's certificate is not signed by a CA")


def test_no_operator_probes_published_ports_from_the_hosts(laptop: tuple[Path, dict[str, str]], lab: Path) -> None:
    dnet, env = laptop
    code, data = verify(dnet, env, lab, "--scope", "3")
    from_here = [c for c in data["checks"] if c["on"] == "operator"]
    assert code == 0 and from_here and all(c["to"] == "node1:8088" for c in from_here), from_here
    code, data = verify(dnet, env, lab, "--scope", "3", "--no-operator")
    moved = [c for c in data["checks"] if c.get("via") == "host"]
    assert code == 0 and not [c for c in data["checks"] if c["on"] == "operator"], data["checks"]
    assert len(moved) == len(from_here) and all(c["on"] == c["from"] == "node2" and c["ok"] for c in moved), moved


def test_baseline_fails_only_on_what_broke_since(laptop: tuple[Path, dict[str, str]], lab: Path) -> None:
    dnet, env = laptop
    inv = lab.with_name("untrusted.yml")
    inv.write_text(lab.read_text() + UNTRUSTED)
    base = lab.with_name("base.json")
    code, data = verify(dnet, env, lab, "--scope", "4,5")
    base.write_text(json.dumps(data))
    code, data = verify(dnet, env, inv, "--scope", "4,5", "--baseline", str(base))
    assert code == 1 and data["baseline"]["new_failures"] == 1, data["baseline"]
    base.write_text(json.dumps(data))
    code, data = verify(dnet, env, inv, "--scope", "4,5", "--baseline", str(base))
    assert code == 0 and data["baseline"] == {"new_failures": 0, "known_failures": 1, "fixed": 0,
                                              "not_in_baseline": 0}, data["baseline"]


def test_exec_runs_ad_hoc_commands_on_the_hosts(laptop: tuple[Path, dict[str, str]], lab: Path) -> None:
    dnet, env = laptop
    r = run(dnet, "exec", "-i", lab, "-q", "--", "echo hi; hostname", env=env)
    assert r.returncode == 0 and r.stdout.splitlines()[:2] == ["node1 | hi", "node1 | node1"], r.stdout + r.stderr
    assert "node2 | node2" in r.stdout and r.stdout.splitlines()[-1] == "3 ok, 0 failed, 0 unreachable"
    r = run(dnet, "exec", "-i", lab, "--json", "--limit", "all:!node1", "--", "sh", "-c", "echo no >&2; exit 3",
            env=env)
    data = json.loads(r.stdout)
    jsondoc.check("exec", data, opaque=("hosts",))
    assert r.returncode == 1 and list(data["hosts"]) == ["node2", "node3"]
    assert data["hosts"]["node2"] == {"rc": 3, "stdout": "", "stderr": "no\n"}
    r = run(dnet, "exec", "-i", lab, "-q", "--limit", "node2", "--", "echo", "$(hostname) `id` ; x", env=env)
    assert r.stdout.splitlines()[0] == "node2 | $(hostname) `id` ; x"  # several words: each quoted, nothing runs


def test_the_shipped_example_project_runs_on_given_hosts_faults_skipped(laptop: tuple[Path, dict[str, str]],
                                                                         lab: Path, tmp_path: Path) -> None:
    """examples/integration with --dnet-inventory: apply, verify and the helpers on real hosts; the partition,
    which needs a lab, skips with its reason instead of failing."""
    dnet, env = laptop
    py = dnet.parent / "python"
    assert run(py, "-m", "pip", "install", "-q", "pytest", "pyyaml").returncode == 0
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "integration", project)
    r = run(py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--dnet-inventory", lab, env=env, cwd=project)
    assert "1 skipped" in r.stdout and "faults act inside lab nodes only" in r.stdout, r.stdout[-3000:]
