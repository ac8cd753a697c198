"""Verify on a real 3-node lab: healthy, then broken on purpose in five ways; each asserts which checks fail
and which hint is given. No test passes by skipping probes: every run asserts the checks it expects ran."""
from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dnet.tasks.base import STALE_TASKS
from tests import jsondoc
from tests.lablib import dnet, dnet_json, example_lab, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.90"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with example_lab("v", NET, tmp_path_factory.mktemp("verify")) as (name, inv):
        assert dnet_json("apply", "-i", str(inv), "--yes")[0] == 0
        yield name, inv


Run = tuple[int, list[dict[str, Any]], list[str], list[dict[str, Any]]]


def run(inv: Path) -> Run:
    """Verify; return the exit code, checks, hints and findings."""
    code, out = dnet_json("verify", "-i", str(inv))
    assert out["checks"], "no checks ran"
    assert all(c["result"] != "pending" for c in out["checks"])
    return code, out["checks"], out["hints"], out["findings"]


def one_finding(found: list[dict[str, Any]], checks: list[dict[str, Any]], cause: str) -> dict[str, Any]:
    """The single finding whose cause contains `cause`; it lists every failed check, and no other finding exists."""
    assert len(found) == 1, [f["cause"] for f in found]
    f = found[0]
    assert cause in f["cause"], f
    assert len(f["checks"]) == len(failed(checks))
    return f


def run_broken(inv: Path, node: str, lab: str, breaker: str, mender: str) -> Run:
    """Break something on a node over SSH, verify, and mend it again whatever happened."""
    node_sh(lab, node, breaker)
    try:
        return run(inv)
    finally:
        node_sh(lab, node, mender)


def failed(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if not c["ok"]]


def healthy(inv: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        code, checks, _, found = run(inv)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert found == [], found
    assert code == 0, [(c["from"], c["to"], c["check"], c["result"], c["detail"]) for c in failed(checks)]


def test_healthy_after_apply(lab: tuple[str, Path], tmp_path: Path) -> None:
    junit = tmp_path / "verify.xml"
    r = dnet("verify", "-i", str(lab[1]), "--json", "--junit", str(junit))
    out = json.loads(r.stdout)
    jsondoc.check("verify", out, ("unreachable",))
    assert r.returncode == 0 and out["summary"]["failed"] == 0 and out["summary"]["passed"] >= 80
    assert out["findings"] == [] and out["hints"] == []
    scopes = {c["scope"] for c in out["checks"]}
    assert scopes == {"inside a container", "same host", "across hosts", "out to the internet", "declared checks"}
    for c in out["checks"]:
        assert {"scope", "from", "to", "ok", "detail"} <= set(c)
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and int(root.get("tests", "0")) == len(out["checks"])
    table = dnet("verify", "-i", str(lab[1]))
    assert table.returncode == 0 and "connectivity matrix" in table.stdout and "0 failed" in table.stdout


def test_blocked_vxlan_on_one_node(lab: tuple[str, Path]) -> None:
    name, inv = lab
    rule = "INPUT -p udp --dport 4789 -j DROP"
    code, checks, hints, found = run_broken(inv, "node1", name, f"iptables -I {rule}", f"iptables -D {rule}")
    assert code == 1
    vxlan_node1 = [c for c in checks if c.get("vxlan") and "node1" in c["pair"].split(">")]
    assert vxlan_node1 and all(not c["ok"] for c in vxlan_node1)
    for c in failed(checks):  # nothing but overlay traffic through node1 fails
        assert ("pair" in c and "node1" in c["pair"].split(">")) or \
            (c["scope"] == "declared checks" and c["to"] == "db:5432"), c
    assert all(c["ok"] for c in checks if c.get("vxlan") and "node1" not in c["pair"].split(">"))
    assert any("VXLAN (4789/udp)" in h and "node1" in h for h in hints)
    f = one_finding(found, checks, "a firewall rule on node1 drops udp/4789 (INPUT chain)")
    assert f["hosts"] == ["node1"] and any("--dport 4789 -j DROP" in e for e in f["evidence"])
    healthy(inv)


def test_overlay_views_read_alike_through_the_engine_api_and_the_docker_cli(lab: tuple[str, Path]) -> None:
    from dnet import converge, gossip
    from dnet.inventory.loader import load
    from dnet.session import open_session

    s = open_session(load(str(lab[1])), False, lambda _: None)
    try:
        leader = converge.world(s).leader()
        assert leader
        names, services = ["appnet", "backnet"], ["web"]
        for h in ("node1", "node2", "node3"):
            t = s.transports[h]
            api = gossip.overlay_views(t, names, services, services if h == leader else None)
            no_api = CLIOnly(t)  # the probe never sets A: the docker CLI's way, on the same engine
            cli = gossip.overlay_views(no_api, names, services, services if h == leader else None)
            assert no_api.sent and cli == api, (h, cli, api)
            assert set(api[0]) == set(names) and all(("node", addr) in api[0]["appnet"]
                                                     for addr in ("192.168.90.11", "192.168.90.12", "192.168.90.13"))
            if h == leader:
                assert len(api[1]["appnet"]) == 3 and api[1]["appnet"] <= api[0]["appnet"]
    finally:
        s.close()


class CLIOnly:
    """A transport whose Engine API probe always fails."""

    def __init__(self, t: Any) -> None:
        self.t, self.name, self.sent = t, t.name, 0

    def run(self, command: str, **kw: Any) -> Any:
        assert " && A=1" in command
        self.sent += 1
        return self.t.run(command.replace(" && A=1", " && A="), **kw)

    def stream_in(self, command: str, source: Any, **kw: Any) -> Any:
        raise AssertionError("not used")

    def close(self) -> None:
        self.t.close()


def test_gossip_blocked_on_one_node_names_what_each_engine_misses(lab: tuple[str, Path]) -> None:
    name, inv = lab
    # in the raw table, which the evidence read does not list: the finding must come from the engines' views
    rules = [f"-t raw {{}} {chain} -p {p} --dport 7946 -j DROP" for chain in ("PREROUTING", "OUTPUT")
             for p in ("tcp", "udp")]
    node_sh(name, "node3", "; ".join(f"iptables {r.format('-I')}" for r in rules))
    try:
        peers = "docker network inspect -v appnet --format '{{len .Peers}}'"
        for _ in range(60):  # the others' gossip gives node3 up after about 10 s
            if node_sh(name, "node1", peers, check=False).strip() == "2":
                break
            time.sleep(1)
        code, checks, _, found = run(inv)
    finally:
        node_sh(name, "node3", "; ".join(f"iptables {r.format('-D')}" for r in rules))
    assert code == 1
    causes = [f["cause"] for f in found]
    gossip = {f["cause"].split(":")[0]: f for f in found if f["cause"].startswith("the engines' gossip has not")}
    assert set(gossip) == {"the engines' gossip has not spread overlay appnet",
                           "the engines' gossip has not spread overlay backnet"}, causes
    f = gossip["the engines' gossip has not spread overlay appnet"]
    assert "node1 does not know of node3" in f["cause"] and "node2 does not know of node3" in f["cause"]
    assert "node1: docker network inspect -v appnet lists no node3" in f["evidence"]
    assert "open 7946/tcp and 7946/udp" in f["fix"] and "each goes to or from node3" in f["fix"], f["fix"]
    assert not [c for c in causes if "without a cause" in c], found  # every failure explained
    assert all("node3" in c.get("pair", "node3").split(">") or "node3" in (c["on"], c["to"].split(":")[0])
               or c["to"] == "db:5432" for c in failed(checks)), failed(checks)
    healthy(inv)


def test_stopped_container(lab: tuple[str, Path]) -> None:
    name, inv = lab
    code, checks, _, found = run_broken(inv, "node2", name, "docker stop -t 1 edge >/dev/null",
                                        "docker start edge >/dev/null")
    assert code == 1
    bad = failed(checks)
    to_edge = [c for c in bad if c["to"] in ("node2:9090", "node1:8443")]
    assert to_edge and all(c["result"] == "refused" for c in to_edge if c["from"] != "operator" or
                           c["check"].startswith("edge port") or c["check"].startswith("forward node1"))
    for c in bad:
        assert c["from"] == "edge" or c["to"] in ("node2:9090", "node1:8443"), c
    assert all(c["result"] in ("refused", "unresolved", "error", "wrong") for c in bad)
    assert all(c["ok"] for c in checks if c["from"].startswith("web") and c["scope"] != "same host")
    f = one_finding(found, checks, "container edge on node2 is not running (exited")
    assert f["hosts"] == ["node2"] and "docker logs edge" in f["fix"]
    healthy(inv)


def test_published_port_without_dnat_and_proxy(lab: tuple[str, Path]) -> None:
    name, inv = lab
    breaker = ("iptables -t nat -S DOCKER | grep -- '--dport 9090 ' | sed 's/^-A/-D/' | "
               "while read -r r; do eval iptables -t nat $r; done; pkill -f '[d]ocker-proxy.*-host-port 9090'; true")
    code, checks, _, _ = run_broken(inv, "node2", name, breaker, "docker restart -t 1 edge >/dev/null")
    assert code == 1
    bad = failed(checks)
    assert {c["to"] for c in bad} <= {"node2:9090", "node1:8443"}
    edge_port = [c for c in checks if c["check"] == "edge port 9090/tcp"]
    assert edge_port and all(not c["ok"] and c["result"] in ("refused", "timeout") for c in edge_port)
    healthy(inv)


def test_dead_engine_dns_breaks_names_not_addresses(lab: tuple[str, Path]) -> None:
    name, inv = lab
    stale = STALE_TASKS.format(ids='$(docker inspect -f "{{.Id}}" edge)')  # what dnet's own restarts clear too
    node_sh(name, "node2", f"""sed -i 's/"{NET}.2"/"{NET}.3"/' /etc/docker/daemon.json && service docker restart \
>/dev/null 2>&1; for i in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker start edge >/dev/null 2>&1 || {{ {stale}; docker start edge >/dev/null; }}""")  # a killed engine does not
    # always restart unless-stopped containers
    try:
        deadline = time.monotonic() + 90
        while True:  # the engine restarted: wait until edge and node2's web task run again
            code, checks, hints, found = run(inv)
            if not any(c["result"] == "error" for c in checks) or time.monotonic() > deadline:
                break
            time.sleep(2)
        egress = [c for c in checks if c.get("egress") in ("dns", "http", "ip")]
        on2 = [c for c in egress if c["on"] == "node2"]
        assert {c["from"] for c in on2} >= {"edge"}
        assert all(not c["ok"] and c["result"] in ("unresolved", "timeout") for c in on2 if c["egress"] in ("dns",
                                                                                                            "http"))
        assert all(c["ok"] for c in on2 if c["egress"] == "ip")
        assert all(c["ok"] for c in egress if c["on"] != "node2")
        assert any("egress DNS fails from" in h and "edge" in h for h in hints)
        f = next(f for f in found if "DNS server" in f["cause"])
        assert f["hosts"] == ["node2"] and f"{NET}.3" in f["cause"]
        assert f"node2: {NET}.3 does not answer a query from the host" in f["evidence"]
        assert all("edge" in c or "web" in c for c in f["checks"])
    finally:
        code, out = dnet_json("apply", "-i", str(inv), "--yes")  # dnet puts the declared DNS back
        assert code == 0 and any(c["kind"] == "daemon" and c["host"] == "node2" for c in out["changes"])
    healthy(inv)


def test_internal_network_with_a_way_out(lab: tuple[str, Path]) -> None:
    name, inv = lab
    code, checks, hints, found = run_broken(inv, "node3", name, "docker network connect bridge db",
                                    "docker network disconnect bridge db")
    assert code == 1
    leak = [c for c in checks if c["from"] == "db" and c["scope"] == "out to the internet"]
    assert leak and all(c["expect"] == "unreachable" and not c["ok"] and c["result"] == "ok" for c in leak)
    assert any("has a way out" in h for h in hints)
    f = next(f for f in found if "db on node3 reaches the internet although its declared networks are internal"
             in f["cause"])
    assert all(c.startswith("db -> ") for c in f["checks"])
    assert any("not declared: bridge" in e for e in f["evidence"])
    healthy(inv)


def test_ip_forward_off(lab: tuple[str, Path]) -> None:
    name, inv = lab
    code, checks, _, found = run_broken(inv, "node2", name, "sysctl -qw net.ipv4.ip_forward=0",
                                        "sysctl -qw net.ipv4.ip_forward=1")
    assert code == 1
    f = one_finding(found, checks, "IP forwarding is off on node2")
    assert f["evidence"] == ["node2: net.ipv4.ip_forward = 0"] and f["hosts"] == ["node2"]
    assert any("edge ->" in c for c in f["checks"]) and any("node2:9090" in c for c in f["checks"])
    assert not any("host is down" in c.get("hint", "") for c in checks)
    healthy(inv)


def test_missing_masquerade_for_a_subnet(lab: tuple[str, Path]) -> None:
    name, inv = lab
    save = "iptables -t nat -S POSTROUTING | grep -- '-s 172.30.0.0/24 ' > /tmp/masq"
    breaker = f"{save}; sed 's/^-A/-D/' /tmp/masq | while read -r r; do eval iptables -t nat $r; done"
    mender = "while read -r r; do eval iptables -t nat $r; done < /tmp/masq"
    code, checks, _, found = run_broken(inv, "node2", name, breaker, mender)
    assert code == 1
    f = one_finding(found, checks, "no NAT (MASQUERADE) for 172.30.0.0/24 on node2")
    assert all(c.startswith("edge -> ") for c in f["checks"])
    assert "node2: ip_forward is on" in f["ruled_out"]
    healthy(inv)


def test_service_below_its_replica_count(lab: tuple[str, Path]) -> None:
    name, inv = lab
    gone = ("for i in $(seq 60); do [ \"$(docker service ps web --format '{{.CurrentState}}' | grep -c '^Running')\" "
            "= 2 ] && break; sleep 0.5; done")  # the removed task's container has stopped (desired state Remove)
    code, _, _, found = run_broken(inv, "node1", name, f"docker service scale web=2 >/dev/null 2>&1; {gone}",
                                   "docker service scale --detach web=3 >/dev/null")
    assert code == 1
    causes = [f["cause"] for f in found]
    assert "service web runs 2 of 3 tasks" in causes, causes
    assert "docker service ps web" in found[causes.index("service web runs 2 of 3 tasks")]["fix"]
    healthy(inv)


def test_interrupted_verify_leaves_no_probe_containers(lab: tuple[str, Path]) -> None:
    import signal
    import sys

    from tests.conftest import ROOT

    name, inv = lab
    proc = subprocess.Popen([sys.executable, "-m", "dnet", "verify", "-i", str(inv)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # interrupt once probes are running somewhere
        if any(node_sh(name, n, "docker ps -q --filter label=dnet.probe", check=False).strip()
               for n in ("node1", "node2", "node3")):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no probe container ever ran")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    for n in ("node1", "node2", "node3"):
        assert node_sh(name, n, "docker ps -aq --filter label=dnet.probe").strip() == ""


def test_lowered_underlay_mtu_on_one_node_is_an_mtu_black_hole(lab: tuple[str, Path]) -> None:
    name, inv = lab
    code, checks, hints, found = run_broken(inv, "node1", name, "ip link set eth0 mtu 1300",
                                            "ip link set eth0 mtu 1500")
    bad = failed(checks)
    assert code == 1 and bad
    assert all(c["result"] == "mtu" for c in bad), [(c["check"], c["result"]) for c in bad]
    # Into node1 full-size packets vanish (its link drops them, nobody reports it); out of node1 the sender
    # knows its own MTU and tells the source ("fragmentation needed"), so path MTU discovery works.
    assert all(c.get("pair", "").endswith(">node1") for c in bad), [(c["check"], c.get("pair")) for c in bad]
    into = [c for c in checks if c.get("mtu") and c.get("pair", "").endswith(">node1")]
    assert into and all(not c["ok"] for c in into)
    assert all(c["ok"] for c in checks if c.get("mtu") and c.get("pair", "").startswith("node1>"))
    assert all(c["ok"] for c in checks if not c.get("mtu"))  # the small checks on the same paths pass
    assert len(hints) == 1 and "node1 eth0 mtu 1300" in hints[0] and "1250 or less" in hints[0]
    f = one_finding(found, checks, "MTU black hole")
    assert "node1" in f["hosts"] and any("node1 eth0 mtu 1300" in e for e in f["evidence"])
    healthy(inv)  # restored: no false alarm


def test_lowered_engine_and_overlay_mtu_that_fit_the_path_pass(lab: tuple[str, Path], tmp_path: Path) -> None:
    """Last in this module: it leaves the lab on a 1300-byte underlay (the lab goes right after)."""
    name, inv = lab
    low = inv.read_text().replace("mtu: 1450", "mtu: 1250")
    for net in ("appnet", "backnet", "localnet"):
        low = low.replace(f"  {net}:", f"  {net}:\n    mtu: 1250", 1)
    fitted = tmp_path / "mtu.yml"
    fitted.write_text(low)
    for n in ("node1", "node2", "node3"):  # a VPN-like underlay: 1300 everywhere
        node_sh(name, n, "ip link set eth0 mtu 1300")
    node_sh(name, "node3", "docker run -d --name by-hand dnet/probe:latest >/dev/null")  # no restart policy
    plan = json.loads(dnet("plan", "-i", str(fitted), "--json").stdout)
    daemon = {c["host"]: c["detail"] for c in plan["changes"] if c["kind"] == "daemon"}
    assert "by-hand (not dnet's)" in daemon["node3"] and "moves tasks web." in daemon["node3"]
    code, out = dnet_json("apply", "-i", str(fitted), "--yes")
    assert code == 0, out
    restarts = [c for c in out["changes"] if c["kind"] == "daemon"]
    assert [c["host"] for c in restarts][-1] == "node1"  # workers first, the manager last, one at a time
    assert all("drained and set active again" in c["message"] for c in restarts)
    running = node_sh(name, "node3", "docker inspect by-hand --format '{{.State.Running}}'").strip()
    assert running == "true"  # the operator's own container came back after the engine restart
    assert node_sh(name, "node2", "docker network inspect appnet --format "
                                  "'{{index .Options \"com.docker.network.driver.mtu\"}}'").strip() == "1250"
    healthy(fitted)
