"""VM labs (`--provider qemu`): two VMs running Debian's own kernel, so the routing mesh (IPVS), an encrypted overlay
(ESP) and netem run for real, which container labs on this machine's kernel cannot do.

One lab for the module, made by dnet's own pytest marker (`dnet_lab(provider="qemu", nodes=2)`): the VM image
build (once per recipe, about 3 minutes), boot, and one apply of a service published in ingress mode with its only
task on node1, beside a container on node2, on an encrypted overlay. The last test removes it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dnet.lab import qemu
from dnet.lab.state import LabState, labs_dir
from dnet.pytest_plugin import DnetLab
from tests import jsondoc
from tests.lablib import dnet, dnet_json, http_get, node_sh

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800), pytest.mark.dnet_lab(provider="qemu", nodes=2)]
WORKLOADS = """
networks:
  secure:
    driver: overlay
    subnet: 10.91.0.0/24
    encrypted: true
    attachable: true
services:
  web:
    image: dnet/probe:latest
    command: [httpd, -f, -p, "80", -h, /www]
    replicas: 1
    networks: [secure]
    placement: {constraints: ["node.hostname == node1"]}
    ports:
      - {published: 8080, target: 80, protocol: tcp, mode: ingress}
containers:
  peer:
    host: node2
    image: dnet/probe:latest
    command: [httpd, -f, -p, "80", -h, /www]
    networks: [secure]
"""


_APPLIED: dict[str, Path] = {}


@pytest.fixture
def vms(dnet_lab: DnetLab, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The marker's lab (made once for the module through dnet's pytest plugin), applied once."""
    if dnet_lab.name not in _APPLIED:
        inv = tmp_path_factory.mktemp("vm") / "lab.yml"
        # http egress only: the upstream's https server (openssl s_server) answers one handshake at a time, and
        # four emulated clients queued behind each other overran verify's TLS wait in one CI run; https egress
        # is proven on container labs (test_tls_probe, test_first_hour)
        text = dnet_lab.inventory.read_text()
        assert "  - https://upstream.lab/\n" in text
        inv.write_text(text.replace("  - https://upstream.lab/\n", "") + WORKLOADS)
        r = dnet("apply", "-i", str(inv), "--yes", timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        _APPLIED[dnet_lab.name] = inv
    return dnet_lab.name, _APPLIED[dnet_lab.name]


def _ips(name: str) -> dict[str, str]:
    return {n.name: n.address for n in LabState.load(name).nodes}


def _verify(inv: Path) -> tuple[int, dict[str, Any]]:
    return dnet_json("verify", "-i", str(inv))


def test_the_routing_mesh_answers_on_both_vms_with_one_task(vms: tuple[str, Path]) -> None:
    name, _ = vms
    tasks = node_sh(name, "node1", "docker service ps web --filter desired-state=running --format '{{.Node}}'")
    assert tasks.split() == ["node1"]
    ips = _ips(name)
    for node in ("node1", "node2"):  # from this machine, node2 included although no task runs there
        assert "dnet probe ok" in http_get(f"http://{ips[node]}:8080/", timeout=15)
    # from inside the VM without a task, to itself and to the other VM
    for node in ("node2", "node1"):
        assert "dnet probe ok" in node_sh(name, "node2", f"curl -s -m 10 http://{ips[node]}:8080/")


def test_verify_passes_with_ingress_checks_and_full_size_encrypted_probes(vms: tuple[str, Path]) -> None:
    _, inv = vms
    rc, out = _verify(inv)
    assert rc == 0, [(c["from"], c["to"], c["check"], c["result"], c["detail"]) for c in out["checks"] if not c["ok"]]
    ingress = {(c["from"], c["to"]) for c in out["checks"] if c.get("mode") == "ingress" and c["ok"]}
    # every ingress-published port from every other node and from the operator, task or not
    assert ingress == {("node2", "node1:8080"), ("operator", "node1:8080"), ("node1", "node2:8080"),
                       ("operator", "node2:8080")}
    enc = [c for c in out["checks"] if c.get("encrypted") == "true" and c["check"].startswith("mtu")]
    assert enc and all(c["ok"] for c in enc)
    # Docker leaves 76 bytes for VXLAN and ESP: the probes fill the overlay's 1424 and cross whole
    assert all(c["detail"].startswith("1424-byte packets") for c in enc), [c["detail"] for c in enc]


def test_blocked_vxlan_breaks_the_mesh_only_where_no_task_runs(vms: tuple[str, Path]) -> None:
    name, inv = vms
    r = dnet("lab", "fault", "--name", name, "drop", "node2", "udp/4789")
    assert r.returncode == 0, r.stderr
    try:
        rc, out = _verify(inv)
    finally:
        dnet("lab", "fault", "--name", name, "heal")
    assert rc == 1
    by = {(c["from"], c["to"]): c for c in out["checks"] if c.get("mode") == "ingress"}
    assert by[("operator", "node1:8080")]["ok"]
    assert not by[("operator", "node2:8080")]["ok"] and not by[("node1", "node2:8080")]["ok"]
    mesh = [f for f in out["findings"] if "routing mesh" in f["cause"]]
    assert len(mesh) == 1, out["findings"]
    assert mesh[0]["cause"] == ("the routing mesh on node2 does not reach service web's tasks on node1: port 8080 "
                                "fails on the nodes that run no task")
    assert mesh[0]["hosts"] == ["node2", "node1"]
    assert "operator -> node2:8080: web port 8080 (ingress)" in mesh[0]["checks"]
    assert any("--dport 4789" in e and e.startswith("node2: iptables -t raw") for e in mesh[0]["evidence"])
    assert "udp/4789" in mesh[0]["fix"]


def test_trace_follows_an_ingress_port_through_ipvs_to_the_task(vms: tuple[str, Path]) -> None:
    _, inv = vms
    rc, out = dnet_json("trace", "-i", str(inv), "operator", "node2:8080")
    assert rc == 0 and out["reached"], out
    jsondoc.check("trace", out)
    whats = [h["what"] for h in out["hops"]]
    assert any(w.startswith("into the ingress sandbox (routing mesh): port 8080 gets firewall mark") for w in whats)
    assert any(re.match(r"IPVS \(rr\) balances mark \d+ over: web\.1 on node1$", w) for w in whats), whats
    node1 = _ips(vms[0])["node1"]
    assert any(w.startswith("ingress overlay: VXLAN with VNI") and f"to {node1} (node1)" in w for w in whats)
    assert out["hops"][-1]["where"] == "web.1 on node1"


def test_netem_delay_raises_the_round_trip_and_heal_removes_it(vms: tuple[str, Path]) -> None:
    name, _ = vms

    def rtt() -> float:
        out = node_sh(name, "node1", f"ping -c 5 -i 0.2 -q {_ips(name)['node2']} | tail -1")
        return float(out.split("=")[1].split("/")[1])  # rtt min/avg/max/mdev = a/b/c/d ms: the average

    before = rtt()
    r = dnet("lab", "fault", "--name", name, "delay", "node2", "200")
    assert r.returncode == 0, r.stderr
    try:
        delayed = rtt()
    finally:
        assert dnet("lab", "fault", "--name", name, "heal").returncode == 0
    after = rtt()
    assert 180 <= delayed - before <= 300, (before, delayed)
    assert after < before + 50, (before, after)


def test_doctor_finds_ipvs_xfrm_and_netem_in_the_vm_kernel(vms: tuple[str, Path]) -> None:
    _, inv = vms
    rc, out = dnet_json("doctor", "-i", str(inv))
    assert rc == 0, out["findings"]
    jsondoc.check("doctor", out, ("kernel",))
    for host in ("node1", "node2"):
        assert out["kernel"][host] == {"vxlan": "yes", "bridge": "yes", "ipvs": "yes", "xfrm": "yes", "esp": "yes",
                                       "netem": "yes"}
    assert not [f for f in out["findings"] if f["key"] in ("no-ipvs", "no-xfrm", "path-mtu")]


def test_status_then_down_leaves_no_vm_tap_or_network(vms: tuple[str, Path]) -> None:
    name, _ = vms
    rc, out = dnet_json("lab", "status", "--name", name)
    assert rc == 0
    rows = {n["node"]: n for n in out["nodes"]}
    assert rows["node1"]["state"] == rows["node2"]["state"] == "running"
    assert rows["node1"]["container"].startswith("qemu pid ")
    assert rows["upstream"]["state"] == "running"
    state = LabState.load(name)
    assert state.provider == "qemu"
    for vm in ("node1", "node2"):  # the seed disk carries the VM's SSH host key: only its owner reads it
        assert (state.dir / vm / "seed.img").stat().st_mode & 0o777 == 0o600
        assert (state.dir / vm / "seed").stat().st_mode & 0o777 == 0o700
    r = dnet("lab", "down", "--name", name)
    assert r.returncode == 0, r.stderr
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(labs_dir() / name) not in ps
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert qemu.bridge_name(name) not in links
    nets = subprocess.run(["docker", "network", "ls", "--filter", f"label=dnet.lab={name}", "-q"],
                          capture_output=True, text=True).stdout
    assert nets.strip() == "" and not (labs_dir() / name).exists()
