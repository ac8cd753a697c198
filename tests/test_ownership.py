"""Two inventories on the same hosts never touch each other's things, and destroy leaves every foreign thing.

One 3-node lab runs the example (cluster `default`); a second inventory, cluster `other`, puts a network, a
container and a forward on node1 and node2 of the same lab.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lablib import dnet, dnet_json, http_get, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.84"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    name = f"o{uuid.uuid4().hex[:6]}"
    d = tmp_path_factory.mktemp("ownership")
    inv = d / "lab.yml"
    r = dnet("lab", "up", "--name", name, "--subnet", f"{NET}.0/24", "--with-example", "-o", str(inv))
    assert r.returncode == 0, r.stderr
    try:
        code, out = dnet_json("apply", "-i", str(inv), "--yes")
        assert code == 0, json.dumps(out)[-3000:]
        data = yaml.safe_load(inv.read_text())
        other = {
            "version": 1, "cluster": "other", "defaults": {k: v for k, v in data["defaults"].items() if k != "docker"},
            "hosts": {h: {"address": data["hosts"][h]["address"]} for h in ("node1", "node2")},
            "networks": {"sidenet": {"driver": "bridge", "subnet": "172.31.50.0/24", "hosts": ["node1"]}},
            "containers": {"side": {"host": "node1", "image": "dnet/probe:latest", "networks": ["sidenet"],
                                    "command": ["httpd", "-f", "-p", "80", "-h", "/www"], "ports": ["9191:80/tcp"]}},
            "forwards": [{"host": "node1", "listen": 8444, "to": "node2:9090", "protocol": "tcp"}],
        }
        (d / "other.yml").write_text(yaml.safe_dump(other, sort_keys=False))
        yield name, inv, d / "other.yml"
    finally:
        dnet("lab", "down", "--name", name)


def _no_changes(inv: Path) -> None:
    r = dnet("plan", "-i", str(inv), "--json")
    plan = json.loads(r.stdout)
    assert plan["changes"] == [] and plan["errors"] == [], plan


def test_two_clusters_on_the_same_hosts_leave_each_other_alone(lab: tuple[str, Path, Path]) -> None:
    name, inv, other = lab
    code, out = dnet_json("apply", "-i", str(other), "--yes")
    assert code == 0 and out["summary"]["failed"] == 0, json.dumps(out)[-3000:]
    owner = node_sh(name, "node1", "docker inspect side --format '{{index .Config.Labels \"dnet.cluster\"}}'")
    assert owner == "other\n"
    assert http_get(f"http://{NET}.11:8444/").strip() == "dnet probe ok"  # other's forward
    assert http_get(f"http://{NET}.11:8443/").strip() == "dnet probe ok"  # the example's, beside it
    _no_changes(inv)  # the example prunes none of other's things, nor rewrites other's forward away
    _no_changes(other)  # and other sees none of the example's things (edge on node2, the swarm's) as its own
    code, out = dnet_json("destroy", "-i", str(other), "--yes")
    assert code == 0, json.dumps(out)[-3000:]
    removed = sorted((c["kind"], c["name"]) for c in out["changes"])
    assert removed == [("container", "side"), ("forward", "0 forwards"), ("network", "sidenet")], removed
    _no_changes(inv)
    assert http_get(f"http://{NET}.11:8443/").strip() == "dnet probe ok"  # the example's forward survived
    assert "edge" in node_sh(name, "node2", "docker ps --format '{{.Names}}'").split()
    rules = node_sh(name, "node1", "iptables -t nat -S DNET-FWD")
    assert "8443" in rules and "8444" not in rules


def test_destroy_leave_swarm_refuses_a_swarm_that_is_not_the_inventorys(lab: tuple[str, Path, Path]) -> None:
    name, inv, other = lab
    code, out = dnet_json("destroy", "-i", str(other), "--leave-swarm", "--yes")
    assert code == 1, out
    assert sorted(e.split(":")[0] for e in out["errors"]) == ["node1", "node2"]
    assert all("in a swarm other than the inventory's" in e for e in out["errors"])
    assert "active" in node_sh(name, "node2", "docker info --format '{{.Swarm.LocalNodeState}}'")
    _no_changes(inv)  # nothing was removed


FOREIGN_LABELS = st.sampled_from([
    {},  # not dnet's at all
    {"dnet.managed": "true", "dnet.cluster": "default"},  # the example's cluster
    {"dnet.managed": "true", "dnet.cluster": "someone-else", "dnet.kind": "container"},
    {"com.example.team": "payments"},
])
THING = st.tuples(st.sampled_from(["container", "network", "volume"]), st.sampled_from(["node1", "node2"]),
                  st.from_regex(r"f[a-z0-9]{3,10}", fullmatch=True), FOREIGN_LABELS)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(things=st.lists(THING, min_size=1, max_size=4, unique_by=lambda t: (t[1], t[2])))
def test_destroy_removes_no_foreign_container_network_or_volume(lab: tuple[str, Path, Path],
                                                                 things: list[tuple[str, str, str, dict[str, str]]]
                                                                 ) -> None:
    name, _, other = lab
    code, out = dnet_json("apply", "-i", str(other), "--yes")
    assert code == 0, json.dumps(out)[-3000:]
    make = {"container": "docker run -d --name {n} {l} dnet/probe:latest httpd -f -p 80 -h /www",
            "network": "docker network create {l} {n}", "volume": "docker volume create {l} {n}"}
    look = {"container": "docker ps -q -f name=^{n}$", "network": "docker network ls -q -f name=^{n}$",
            "volume": "docker volume ls -q -f name=^{n}$"}
    try:
        for kind, host, n, labels in things:
            node_sh(name, host, make[kind].format(n=n, l=" ".join(f"--label {k}={v}" for k, v in labels.items())))
        code, out = dnet_json("destroy", "-i", str(other), "--yes")
        assert code == 0, json.dumps(out)[-3000:]
        assert sorted(c["name"] for c in out["changes"]) == ["0 forwards", "side", "sidenet"], out["changes"]
        for kind, host, n, labels in things:
            assert node_sh(name, host, look[kind].format(n=n)).strip(), f"{kind} {n} on {host} ({labels}) was removed"
    finally:
        for kind, host, n, _ in things:
            rm = "rm -f" if kind == "container" else f"{kind} rm"
            node_sh(name, host, f"docker {rm} {n} >/dev/null 2>&1 || true", check=False)
