"""`dnet doctor` on a real lab before apply: truthful about this kernel, and it finds what was broken on purpose."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import jsondoc
from tests.lablib import dnet, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.85"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    name = f"d{uuid.uuid4().hex[:6]}"
    inv = tmp_path_factory.mktemp("doctor") / "lab.yml"
    r = dnet("lab", "up", "--name", name, "--subnet", f"{NET}.0/24", "--with-example", "-o", str(inv))
    assert r.returncode == 0, r.stderr
    yield name, inv
    dnet("lab", "down", "--name", name)


def doctor(inv: Path) -> tuple[int, list[dict[str, object]]]:
    r = dnet("doctor", "-i", str(inv), "--json")
    data = json.loads(r.stdout)
    jsondoc.check("doctor", data)
    return r.returncode, data["findings"]


def test_a_fresh_lab_is_healthy_but_has_no_ipvs(lab: tuple[str, Path]) -> None:
    code, found = doctor(lab[1])
    assert code == 0, found
    assert [f["key"] for f in found] == ["no-ipvs"]
    ipvs = found[0]
    # the example publishes in host mode with dnsrr: a note, and what it means for publish modes
    assert ipvs["severity"] == "info" and ipvs["hosts"] == ["node1", "node2", "node3"]
    assert "ingress-mode published ports" in str(ipvs["what"]) and "mode: host" in str(ipvs["fix"])


def test_blocked_gossip_an_overlapping_route_and_a_too_large_overlay_mtu(lab: tuple[str, Path], tmp_path: Path) -> None:
    name, inv = lab
    node_sh(name, "node3", "iptables -I INPUT -p tcp --dport 7946 -j DROP")
    node_sh(name, "node2", "ip route add 172.30.0.0/25 dev eth0")  # localnet is 172.30.0.0/24 on node2
    big = tmp_path / "mtu.yml"
    big.write_text(inv.read_text().replace("    subnet: 10.77.0.0/24\n", "    subnet: 10.77.0.0/24\n    mtu: 1480\n"))
    try:
        code, found = doctor(big)
    finally:
        node_sh(name, "node3", "iptables -D INPUT -p tcp --dport 7946 -j DROP")
        node_sh(name, "node2", "ip route del 172.30.0.0/25 dev eth0")
    assert code == 1
    by = {}
    for f in found:
        by.setdefault(f["key"], []).append(f)
    blocked = sorted(tuple(f["hosts"]) for f in by["swarm-port-blocked"])  # type: ignore[arg-type]
    assert blocked == [("node1", "node3"), ("node2", "node3")]
    assert all("7946/tcp" in str(f["what"]) for f in by["swarm-port-blocked"])
    assert [f["hosts"] for f in by["subnet-overlap"]] == [["node2"]]
    assert "172.30.0.0/25" in str(by["subnet-overlap"][0]["evidence"])
    assert sorted(h for f in by["overlay-mtu"] for h in f["hosts"]) == ["node1", "node2", "node3"]  # type: ignore[union-attr]
    assert "1450" in str(by["overlay-mtu"][0]["fix"])
    code, found = doctor(inv)  # and all of it was put back
    assert code == 0 and [f["key"] for f in found] == ["no-ipvs"]


def test_graph_and_report_show_every_host_network_and_workload(lab: tuple[str, Path], tmp_path: Path) -> None:
    from dnet.inventory import load

    inv = lab[1]
    model = load(inv).model
    names = [*model.hosts, *model.networks, *model.containers, *model.services]
    r = dnet("graph", "-i", str(inv), "-o", str(tmp_path / "topo.dot"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "topo.dot").read_text()
    assert text.startswith("digraph dnet {") and all(f'"{n}' in text or f":{n}" in text for n in names), text
    assert "forward 8443/tcp -> node2:9090" in text and "8080/tcp (host) -> web:80" in text
    r = dnet("graph", "-i", str(inv), "-o", str(tmp_path / "topo.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "topo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = dnet("report", "-i", str(inv), "-o", str(tmp_path / "report.html"))  # before apply: checks fail
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and all(n in html for n in names)
    assert "no IPVS" in html and 'class="fail"><a href="#check-' in html and "<tr id='check-" in html
    assert "<script" not in html and "<link" not in html  # self-contained
