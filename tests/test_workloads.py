"""Workload keys on a real 3-node lab, checked with plain docker commands on the nodes: env (with a ${VAR} from this
machine), volumes that outlive a task, constraints, a global service, a secret, a daemon.json key, a rolling update
that never leaves the service unanswered, and destroy keeping volumes unless --volumes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dnet.lab.state import LabState
from tests.conftest import ROOT
from tests.lablib import example_lab, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.86"
TOKEN = "tok-4f9 'q' $x"  # reaches the task, never dnet's output
SERVE = "echo \"$GREETING\" > /www/greeting; exec httpd -f -p 80 -h /www"


def inventory(base: dict[str, Any], greeting: str) -> dict[str, Any]:
    inv: dict[str, Any] = json.loads(json.dumps(base))
    inv["defaults"]["docker"]["daemon"] = {"log-driver": "local"}
    inv["services"]["api"] = {
        "image": "dnet/probe:latest", "command": ["sh", "-c", SERVE], "replicas": 2, "networks": ["appnet"],
        "endpoint_mode": "dnsrr", "ports": [{"published": 8088, "target": 80, "mode": "host"}],
        "env": {"GREETING": greeting, "TOKEN": "${DNET_TEST_TOKEN}"},
        "mounts": [{"type": "volume", "source": "apidata", "target": "/data"}, {"type": "tmpfs", "target": "/scratch"}],
        "placement": {"constraints": ["node.labels.zone == b"]},
        "update": {"parallelism": 1, "delay": "2s", "order": "stop-first"},
        "resources": {"limits": {"memory": "64M", "cpus": 0.5}},
        "secrets": {"token": {"file": "token.txt"}}}
    inv["services"]["agent"] = {"image": "dnet/probe:latest", "command": ["sleep", "3600"], "mode": "global",
                                "endpoint_mode": "dnsrr", "labels": {"team": "ops"}}
    inv["containers"]["cache"] = {
        "host": "node3", "image": "dnet/probe:latest", "command": ["sleep", "3600"], "env": {"ROLE": "cache"},
        "mounts": [{"type": "volume", "source": "cachedata", "target": "/data"}], "restart": "always",
        "workdir": "/data", "healthcheck": {"test": "true", "interval": "2s"},
        "resources": {"limits": {"memory": "32M"}}}
    return inv


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    where = tmp_path_factory.mktemp("workloads")
    with example_lab("w", NET, where) as (name, inv):
        (where / "token.txt").write_text("file-secret\n")
        base = yaml.safe_load(inv.read_text())
        yield name, where, base


def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DNET_TEST_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def write(where: Path, inv: dict[str, Any]) -> str:
    path = where / "work.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return str(path)


def task_on(lab: str, node: str, service: str) -> str:
    out = node_sh(lab, node, f"docker ps -q --filter label=com.docker.swarm.service.name={service}")
    return out.split()[0] if out.split() else ""


def test_every_key_arrives_and_a_second_apply_changes_nothing(lab: tuple[str, Path, dict[str, Any]]) -> None:
    name, where, base = lab
    path = write(where, inventory(base, "hello"))
    r = run("apply", "-i", path, "--yes", "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert TOKEN not in r.stdout + r.stderr and "file-secret" not in r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["services"]["api"] == "2/2" and out["services"]["agent"] == "3/3", out["services"]
    # the daemon.json key, as the engine reports it
    for node in ("node1", "node2", "node3"):
        assert node_sh(name, node, "docker info --format '{{.LoggingDriver}}'").strip() == "local"
    # placement: zone b is node2 and node3; the global service runs once on each node
    mgr = "docker service ps {} --filter desired-state=running --format '{{{{.Node}}}}'"
    assert sorted(node_sh(name, "node1", mgr.format("api")).split()) == ["node2", "node3"]
    assert sorted(node_sh(name, "node1", mgr.format("agent")).split()) == ["node1", "node2", "node3"]
    # env (with the ${VAR} from this machine), the secret's file, limits, labels, as Docker has them
    task = task_on(name, "node2", "api")
    got = node_sh(name, "node2", f"docker exec {task} sh -c 'echo \"$GREETING|$TOKEN\"; cat /run/secrets/token'")
    assert got == f"hello|{TOKEN}\nfile-secret\n"
    mem = node_sh(name, "node2", f"docker inspect {task} --format '{{{{.HostConfig.Memory}}}} {{{{json .Mounts}}}}'")
    assert mem.startswith("67108864 ") and '"Name":"apidata"' in mem and '"Destination":"/scratch"' in mem
    assert "team" in node_sh(name, "node1", "docker service inspect agent --format '{{json .Spec.Labels}}'")
    cache = node_sh(name, "node3", "docker inspect cache --format "
                    "'{{.HostConfig.RestartPolicy.Name}} {{.Config.WorkingDir}} {{.HostConfig.Memory}} "
                    "{{json .Config.Healthcheck.Test}}'")
    assert cache.strip() == 'always /data 33554432 ["CMD-SHELL","true"]'
    assert node_sh(name, "node3", "docker exec cache sh -c 'echo $ROLE'") == "cache\n"
    vols = node_sh(name, "node3", "docker volume inspect cachedata --format '{{json .Labels}}'")
    assert '"dnet.managed":"true"' in vols
    # a file in a named volume outlives its task
    node_sh(name, "node2", f"docker exec {task} sh -c 'echo kept > /data/f'")
    node_sh(name, "node2", f"docker rm -f {task} >/dev/null")
    deadline = time.monotonic() + 60
    while (new := task_on(name, "node2", "api")) in ("", task) and time.monotonic() < deadline:
        time.sleep(1)
    assert new not in ("", task)
    assert node_sh(name, "node2", f"docker exec {new} cat /data/f") == "kept\n"
    # idempotent: nothing left to do, and the plan never shows the token
    r = run("plan", "-i", path, "--detailed-exitcode", "--json")
    assert r.returncode == 0, r.stdout[-3000:]
    assert TOKEN not in r.stdout


def _sample(urls: list[str], samples: list[tuple[float, list[str]]], stop: threading.Event) -> None:
    while not stop.is_set():
        got = []
        for u in urls:
            try:
                with urllib.request.urlopen(u, timeout=0.5) as resp:
                    got.append(resp.read().decode().strip())
            except (urllib.error.URLError, OSError):
                got.append("")
        samples.append((time.monotonic(), got))
        time.sleep(0.05)


def test_env_change_is_a_rolling_update_that_always_answers(lab: tuple[str, Path, dict[str, Any]]) -> None:
    name, where, base = lab
    path = write(where, inventory(base, "bye"))
    plan = json.loads(run("plan", "-i", path, "--json").stdout)
    [c] = [c for c in plan["changes"] if c["name"] == "api"]
    assert c["action"] == "update" and c["detail"] == "rolling update: env GREETING hello -> bye"
    assert c["before"] == {"env": {"GREETING": "hello", "TOKEN": c["before"]["env"]["TOKEN"]}}
    assert c["before"]["env"]["TOKEN"].startswith("${DNET_TEST_TOKEN}#")
    state = LabState.load(name)
    urls = [f"http://{n.address}:8088/greeting" for n in state.nodes if n.name in ("node2", "node3")]
    samples: list[tuple[float, list[str]]] = []
    stop = threading.Event()
    poller = threading.Thread(target=_sample, args=(urls, samples, stop))
    poller.start()
    try:
        r = run("apply", "-i", path, "--yes", "--json")
        time.sleep(1)
    finally:
        stop.set()
        poller.join()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert TOKEN not in r.stdout + r.stderr
    assert len(samples) > 20
    silent = [t for t, got in samples if not any(got)]
    assert not silent, f"{len(silent)} of {len(samples)} samples found no replica answering"
    seen = {g for _, got in samples for g in got if g}
    assert seen == {"hello", "bye"}, seen  # both replicas changed, one at a time
    assert samples[-1][1] == ["bye", "bye"]


def test_a_changed_secret_file_rotates_the_secret(lab: tuple[str, Path, dict[str, Any]]) -> None:
    name, where, base = lab
    old = node_sh(name, "node1", "docker secret ls --format '{{.Name}}' --filter label=dnet.managed=true").split()
    (where / "token.txt").write_text("file-secret-2\n")
    path = write(where, inventory(base, "bye"))
    plan = json.loads(run("plan", "-i", path, "--json").stdout)
    assert "file-secret" not in json.dumps(plan)
    assert [(c["kind"], c["action"]) for c in plan["changes"]] == \
        [("secret", "create"), ("service", "update"), ("secret", "remove")]
    r = run("apply", "-i", path, "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    new = node_sh(name, "node1", "docker secret ls --format '{{.Name}}' --filter label=dnet.managed=true").split()
    assert len(old) == len(new) == 1 and old != new and new[0].startswith("token-")
    task = task_on(name, "node2", "api")
    assert node_sh(name, "node2", f"docker exec {task} cat /run/secrets/token") == "file-secret-2\n"


def test_an_engine_that_refuses_a_daemon_key_gets_its_old_file_back(lab: tuple[str, Path, dict[str, Any]]) -> None:
    name, where, base = lab
    inv = inventory(base, "bye")
    inv["hosts"]["node3"]["docker"] = {"daemon": {"no-such-option": True}}
    before = node_sh(name, "node3", "cat /etc/docker/daemon.json")
    r = run("apply", "-i", write(where, inv), "--yes")
    assert r.returncode != 0
    said = r.stdout + r.stderr
    assert "node3: the engine did not start with the new daemon.json, so the previous one is back" in said
    assert node_sh(name, "node3", "cat /etc/docker/daemon.json") == before
    assert node_sh(name, "node3", "docker info --format '{{.LoggingDriver}}'").strip() == "local"
    r = run("apply", "-i", write(where, inventory(base, "bye")), "--yes")  # and the cluster comes back whole
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_engine_version_is_held_and_an_unavailable_one_changes_nothing(
        lab: tuple[str, Path, dict[str, Any]]) -> None:
    """The lab is offline, so an upgrade cannot be fetched: the version it has is held, and asking for one its apt
    sources lack fails on that host with the reason, its engine untouched and the node active again."""
    name, where, base = lab
    version = node_sh(name, "node3", "dpkg-query -W -f '${Version}' docker.io").split(".")[:2]
    inv = inventory(base, "bye")
    inv["defaults"]["docker"]["version"] = ".".join(version)
    path = write(where, inv)
    r = run("apply", "-i", path, "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    for node in ("node1", "node2", "node3"):
        assert "docker.io" in node_sh(name, node, "apt-mark showhold").split()
    assert run("plan", "-i", path, "--detailed-exitcode").returncode == 0
    engine = node_sh(name, "node3", "docker version --format '{{.Server.Version}}'")
    inv["hosts"]["node3"]["docker"] = {"version": "99.0"}
    r = run("apply", "-i", write(where, inv), "--yes")
    assert r.returncode != 0
    assert "no docker.io 99.0.* in the apt sources of this host" in r.stdout + r.stderr
    assert node_sh(name, "node3", "docker version --format '{{.Server.Version}}'") == engine
    avail = node_sh(name, "node1", "docker node inspect node3 --format '{{.Spec.Availability}}'")
    assert avail.strip() == "active"


def test_destroy_keeps_volumes_unless_asked(lab: tuple[str, Path, dict[str, Any]]) -> None:
    name, where, base = lab
    path = write(where, inventory(base, "bye"))
    r = run("destroy", "-i", path, "--yes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert node_sh(name, "node1", "docker secret ls -q --filter label=dnet.managed=true") == ""
    assert "cachedata" in node_sh(name, "node3", "docker volume ls -q")
    r = run("destroy", "-i", path, "--yes", "--volumes")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    for node in ("node2", "node3"):
        assert node_sh(name, node, "docker volume ls -q --filter label=dnet.managed=true") == ""
