"""`dnet doctor` on a real lab before apply: truthful about this kernel, and it finds what was broken on purpose."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import jsondoc
from tests.lablib import dnet, example_lab, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.85"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with example_lab("d", NET, tmp_path_factory.mktemp("doctor")) as (name, inv):
        yield name, inv


def doctor(inv: Path) -> tuple[int, list[dict[str, Any]]]:
    r = dnet("doctor", "-i", str(inv), "--json")
    data = json.loads(r.stdout)
    jsondoc.check("doctor", data, ("kernel",))
    return r.returncode, data["findings"]


def test_a_fresh_lab_is_healthy_but_has_no_ipvs(lab: tuple[str, Path]) -> None:
    code, found = doctor(lab[1])
    assert code == 0, found
    assert [f["key"] for f in found] == ["no-ipvs"]
    ipvs = found[0]
    # the example publishes in host mode with dnsrr: a note, and what it means for publish modes
    assert ipvs["severity"] == "info" and ipvs["hosts"] == ["node1", "node2", "node3"]
    assert "ingress-mode published ports" in str(ipvs["what"]) and "mode: host" in str(ipvs["fix"])


def test_blocked_gossip_and_vxlan_a_route_overlap_and_a_big_overlay_mtu(lab: tuple[str, Path], tmp_path: Path) -> None:
    name, inv = lab
    node_sh(name, "node3", "iptables -I INPUT -p tcp --dport 7946 -j DROP")
    node_sh(name, "node2", "iptables -I INPUT -p udp --dport 4789 -j DROP")
    node_sh(name, "node2", "ip route add 172.30.0.0/25 dev eth0")  # localnet is 172.30.0.0/24 on node2
    node_sh(name, "node1", "ip route add 10.220.5.0/24 dev eth0")  # inside swarm.default_addr_pool
    big = tmp_path / "mtu.yml"
    big.write_text(inv.read_text().replace("    subnet: 10.77.0.0/24\n", "    subnet: 10.77.0.0/24\n    mtu: 1480\n"))
    try:
        code, found = doctor(big)
    finally:
        node_sh(name, "node3", "iptables -D INPUT -p tcp --dport 7946 -j DROP")
        node_sh(name, "node2", "iptables -D INPUT -p udp --dport 4789 -j DROP")
        node_sh(name, "node2", "ip route del 172.30.0.0/25 dev eth0")
        node_sh(name, "node1", "ip route del 10.220.5.0/24 dev eth0")
    assert code == 1
    by: dict[str, list[dict[str, Any]]] = {}
    for f in found:
        by.setdefault(f["key"], []).append(f)
    blocked = sorted((*f["hosts"], str(f["what"]).split()[0]) for f in by["swarm-port-blocked"])
    assert blocked == [("node1", "node2", "4789/udp"), ("node1", "node3", "7946/tcp"),
                       ("node2", "node3", "7946/tcp"), ("node3", "node2", "4789/udp")], blocked
    assert [f["hosts"] for f in by["subnet-overlap"]] == [["node2"]]
    assert "172.30.0.0/25" in str(by["subnet-overlap"][0]["evidence"])
    assert [f["hosts"] for f in by["pool-overlap"]] == [["node1"]]
    assert "pool 10.220.0.0/16 overlaps the host's route 10.220.5.0/24" in str(by["pool-overlap"][0]["what"])
    assert sorted(h for f in by["overlay-mtu"] for h in f["hosts"]) == ["node1", "node2", "node3"]
    assert "1450" in str(by["overlay-mtu"][0]["fix"])
    code, found = doctor(inv)  # and all of it was put back
    assert code == 0 and [f["key"] for f in found] == ["no-ipvs"]


def test_a_path_mtu_black_hole_and_an_engine_mtu_too_large_for_it(lab: tuple[str, Path]) -> None:
    name, inv = lab
    r = dnet("lab", "fault", "--name", name, "mtu", "node3", "1400")  # node1 and node2 still say 1500
    assert r.returncode == 0, r.stderr
    try:
        code, found = doctor(inv)
    finally:
        assert dnet("lab", "fault", "--name", name, "heal", "node3").returncode == 0
    assert code == 1
    path: dict[tuple[str, ...], dict[str, Any]] = {tuple(f["hosts"]): f for f in found if f["key"] == "path-mtu"}
    # the black hole into node3 (no error on the sender) and node3's own smaller interface, both ways
    assert sorted(path) == [("node1", "node3"), ("node2", "node3"), ("node3", "node1"), ("node3", "node2")]
    one = path[("node1", "node3")]
    # a veth lets 4 bytes (a VLAN tag's room) over its MTU through, so the black hole starts at 1400 to 1404
    size = int(str(one["what"]).split("over ")[1].split()[0])
    assert 1400 <= size <= 1404 and "1500-byte VXLAN" in str(one["what"])
    assert f"ping -M do -s {size - 28} 192.168.85.13 from node1: answered" in one["evidence"]
    assert f"ping -M do -s {size - 27} 192.168.85.13 from node1: no answer" in one["evidence"]
    assert f"mtu to {size - 50} or less" in str(one["fix"])
    assert "over 1400 bytes" in str(path[("node3", "node1")]["what"])  # node3's own interface: exact
    engine = [f for f in found if f["key"] == "engine-mtu"]
    assert [f["hosts"] for f in engine] == [["node3"]] and "1450" in str(engine[0]["what"])
    code, found = doctor(inv)  # healed: the MTU is back
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
    _open_in_chromium(tmp_path / "report.html", list(model.hosts))


def _open_in_chromium(page_file: Path, hosts: list[str]) -> None:
    """The page as a browser shows it, with the network off: the picture laid out, the matrix, and a failed
    cell's link landing on its check and hint."""
    chromium = shutil.which("chromium")
    if not chromium:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (scripts/setup.sh installs it)")
        pytest.skip("chromium is not installed here (apt-get install chromium); CI runs this part")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_context(offline=True, viewport={"width": 1280, "height": 800}).new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            page.goto(page_file.as_uri())
            box = page.locator("svg").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100, box
            drawn = page.locator("svg text").all_text_contents()
            assert all(any(h in t for t in drawn) for h in hosts), drawn
            assert page.locator("table td.ok, table td.fail").count() > 5
            link = page.locator("td.fail a").first
            target = str(link.get_attribute("href"))
            link.click()
            assert page.url.endswith(target)
            row = page.locator(target)
            top = row.evaluate("e => e.getBoundingClientRect().top")
            assert -5 < top < 800, top  # scrolled to the failed check (sub-pixel borders)
            hint = row.locator("td").last.inner_text()
            assert len(hint) > 10, hint
            assert page.screenshot(full_page=True)[:8] == b"\x89PNG\r\n\x1a\n"
            assert all(u.startswith("file:") for u in asked), asked  # nothing from the network
        finally:
            browser.close()
