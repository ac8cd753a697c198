"""Verify without a lab: derivation from recorded facts, probe output parsing, hints."""
from __future__ import annotations

import re
import subprocess
from collections import Counter

import paramiko

from dnet.inventory import hosts, loads
from dnet.transport.base import Result
from dnet.verify import explain, probe
from dnet.verify.derive import derive, instances
from dnet.verify.findings import Finding
from dnet.verify.model import Check, Scope, Where
from tests.conftest import EXAMPLE
from tests.test_facts_plan import facts


def checks() -> list[Check]:
    inv = loads(EXAMPLE.read_text()).model
    return derive(inv, hosts(inv, paramiko.SSHConfig()), facts("applied"), {"upstream.lab": "192.168.77.2"})


def test_instances_from_facts() -> None:
    inv = loads(EXAMPLE.read_text()).model
    insts = {i.name: i for i in instances(inv, facts("applied"))}
    assert {"edge", "db", "web.1", "web.2", "web.3"} == set(insts)
    assert insts["edge"].host == "node2" and insts["edge"].ports == [80] and "localnet" in insts["edge"].ips
    assert insts["db"].ports == [5432] and set(insts["db"].ips) == {"backnet"}
    assert {insts[f"web.{n}"].host for n in (1, 2, 3)} == {"node1", "node2", "node3"}


def test_a_container_labelled_as_a_task_counts_only_when_a_manager_lists_it() -> None:
    """Any docker user can put swarm's task labels on a plain container; the manager's task list decides."""
    import dataclasses

    inv = loads(EXAMPLE.read_text()).model
    fs = facts("applied")
    real = next(c for c in fs["node2"].containers if c.service == "web")
    fake = dataclasses.replace(real, id="f" * 64, name="web.9.impostor",
                               labels={**real.labels, "com.docker.swarm.task.id": "impostor",
                                       "com.docker.swarm.task.name": "web.9.impostor"})
    fs["node2"].containers.append(fake)
    assert "web.9" in {i.name for i in instances(inv, fs)}  # no manager's list read: the labels are all there is
    fs["node1"].tasks = {c.labels["com.docker.swarm.task.id"]: c.id for f in fs.values() for c in f.containers
                         if c.is_task and c is not fake}
    assert {i.name for i in instances(inv, fs)} == {"edge", "db", "web.1", "web.2", "web.3"}
    fs["node1"].tasks[real.labels["com.docker.swarm.task.id"]] = "another container"  # a copied task ID
    assert "web.2" not in {i.name for i in instances(inv, fs)}


def test_every_scope_is_derived() -> None:
    cs = checks()
    by_scope = Counter(int(c.scope) for c in cs)
    assert set(by_scope) == {1, 2, 3, 4, 5}
    assert by_scope[1] == 6  # one declared port per instance, plus web's task count
    pairs = {c.tags["pair"] for c in cs if c.tags.get("vxlan")}
    assert len(pairs) == 6  # every ordered pair of the three hosts
    assert sum(1 for c in cs if c.tags.get("swarm") == "control") == 2
    assert sum(1 for c in cs if c.tags.get("swarm") == "gossip") == 6
    db_out = [c for c in cs if c.src == "db" and c.scope == 4]
    assert [c.expect for c in db_out] == [False]  # backnet is internal: must not reach
    assert any(c.tags.get("egress") == "ip" and "192.168.77.2" in c.what for c in cs)


def test_isolation_probes_only_local_bridge_addresses() -> None:
    iso = [c for c in checks() if c.tags.get("isolation")]
    assert iso and all(c.tags["net"] == "localnet" and not c.expect for c in iso)


def test_probe_script_and_parse() -> None:
    cs = [Check("c1", Scope(1), "a", "a", "t", ["tcp", "127.0.0.1", "80"], where=Where("ctr", "h", "x")),
          Check("c2", Scope(1), "a", "b", "t", ["dns", "web", "10.0.0.1,10.0.0.2"], where=Where("ctr", "h", "x")),
          Check("c3", Scope(1), "a", "b", "t", ["http", "http://x/"], False, where=Where("ctr", "h", "x"))]
    text = probe.script(cs)
    assert "tcp c1 127.0.0.1 80 &" in text and text.rstrip().endswith("wait")
    probe.parse("noise\n@@ c1 ok connected\n@@ c3 timeout no answer\n", cs)
    assert (cs[0].result, cs[0].ok) == ("ok", True)
    assert (cs[1].result, cs[1].ok) == ("error", False)
    assert (cs[2].result, cs[2].ok) == ("timeout", True)  # must-not-reach that did not reach


def test_hint_names_vxlan_and_the_node() -> None:
    cs = checks()
    for c in cs:
        c.result = "timeout" if c.tags.get("vxlan") and "node1" in c.tags["pair"].split(">") else "ok"
        if not c.expect and c.result == "ok":
            c.result = "timeout"
    hints = explain.hints(cs, facts("applied"))
    assert any("VXLAN (4789/udp)" in h and "node1" in h for h in hints)


def test_hint_for_daemon_dns() -> None:
    cs = checks()
    for c in cs:
        bad = c.src == "edge" and c.tags.get("egress") in ("dns", "http")
        c.result = "unresolved" if bad else ("ok" if c.expect else "timeout")
    hints = explain.hints(cs, facts("applied"))
    assert any("egress DNS fails from edge" in h and "daemon.json" in h for h in hints)


def test_full_size_checks_ride_along_every_cross_host_and_egress_path() -> None:
    cs = checks()
    mtu = [c for c in cs if c.tags.get("mtu")]
    overlay = {(c.tags["net"], c.tags["pair"]) for c in mtu if "net" in c.tags}
    vxlan = {(c.tags["net"], c.tags["pair"]) for c in cs if c.tags.get("vxlan")}
    assert overlay == vxlan  # one full-size probe per overlay pair that is probed
    assert {c.tags["pair"] for c in mtu if c.tags.get("underlay")} == {
        f"{a}>{b}" for a in ("node1", "node2", "node3") for b in ("node1", "node2", "node3") if a != b}
    egress = [c for c in mtu if c.tags.get("egress") == "mtu"]
    assert egress and all(c.action == ["mtu", "192.168.77.2"] for c in egress)
    assert all(c.action[0] == "mtu" and c.expect for c in mtu)


def test_a_lost_full_size_packet_is_an_mtu_problem_with_hosts_interfaces_sizes_and_fix() -> None:
    from dnet.facts import HostFacts

    cs = checks()
    for c in cs:
        c.result, c.detail = ("ok" if c.expect else "timeout"), "fine"
        touches_node1 = "node1" in c.tags.get("pair", "").split(">")
        if c.tags.get("mtu") and touches_node1:
            c.result, c.detail = "mtu", "1450-byte packets via eth0 (mtu 1450) do not cross, 84-byte ones do"
    f = {h: HostFacts(h, mtus={"eth0": 1300 if h == "node1" else 1500}, addresses={"eth0": [f"192.168.77.1{i}"]})
         for i, h in enumerate(("node1", "node2", "node3"), 1)}
    addrs = {h: f"192.168.77.1{i}" for i, h in enumerate(("node1", "node2", "node3"), 1)}
    out = explain.hints(cs, f, addrs)
    failed = [c for c in cs if not c.ok]
    assert failed and all(c.result == "mtu" for c in failed)
    assert len(out) == 1 and all(c.tags["hint"] == out[0] for c in failed)
    hint = out[0]
    assert "all through node1" in hint and "node1 eth0 mtu 1300" in hint and "node2 eth0 mtu 1500" in hint
    assert "1450-byte packets are lost while 84-byte ones cross" in hint
    assert "to 1250 or less" in hint and "raise the smaller underlay MTU" in hint


def test_probe_parses_the_mtu_result() -> None:
    cs = [Check("c1", Scope(3), "a", "b", "mtu", ["mtu", "10.0.0.2"])]
    probe.parse("@@ c1 mtu 1450-byte packets via eth0 (mtu 1450) do not cross, 84-byte ones do; path MTU 1250\n", cs)
    assert cs[0].result == "mtu" and not cs[0].ok and "path MTU 1250" in cs[0].detail


EVIDENCE = """
@@dnet:ip_forward
0
@@dnet:filter
-P INPUT ACCEPT
-A INPUT -p udp -m udp --dport 4789 -j DROP
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-USER -p tcp -m tcp --dport 9090 -j REJECT --reject-with icmp-port-unreachable
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
@@dnet:nat
-P POSTROUTING ACCEPT
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE
@@dnet:dns
192.168.77.2 yes
192.168.77.3 no
@@dnet:end
"""


def test_evidence_is_parsed_from_one_batched_read() -> None:
    from dnet.facts.evidence import parse as parse_evidence

    ev = parse_evidence("node2", EVIDENCE)
    assert ev.ip_forward is False
    assert [(r.chain, r.protocol, r.port) for r in ev.drops] == [("INPUT", "udp", 4789), ("DOCKER-USER", "tcp", 9090)]
    assert ev.masquerade == ["172.17.0.0/16", "172.18.0.0/16"] and not ev.masqueraded("172.30.0.0/24")
    assert ev.dns == {"192.168.77.2": True, "192.168.77.3": False}


def test_findings_name_the_cause_host_evidence_and_checks() -> None:
    from dnet.facts.evidence import parse as parse_evidence
    from dnet.verify.findings import Ctx, find

    inv = loads(EXAMPLE.read_text()).model
    cs = checks()
    for c in cs:
        c.result, c.detail = ("ok" if c.expect else "timeout"), "fine"
        if c.tags.get("published") and c.dst.startswith("node2:"):
            c.result, c.detail = "timeout", "node2:9090 timed out"
    ev = {"node2": parse_evidence("node2", EVIDENCE.replace("0\n@@dnet:filter", "0\n@@dnet:filterx"))}
    ctx = Ctx(inv, facts("applied"), ev, {}, {i.name: i for i in instances(inv, facts("applied"))}, 4789)
    found = find(cs, ctx)
    assert [f.cause for f in found] == ["IP forwarding is off on node2: the kernel routes nothing between its "
                                        "containers and the network"]
    assert found[0].evidence == ["node2: net.ipv4.ip_forward = 0"] and found[0].hosts == ["node2"]
    assert set(found[0].checks) == {c.id for c in cs if not c.ok}
    ev["node2"].ip_forward = True  # then the DOCKER-USER rule on 9090 is the cause
    ev["node2"] = parse_evidence("node2", EVIDENCE.replace("@@dnet:ip_forward\n0", "@@dnet:ip_forward\n1"))
    for c in cs:
        c.tags.pop("finding", None)
    found = find(cs, ctx)
    assert found[0].cause == "a firewall rule on node2 drops tcp/9090 (DOCKER-USER chain)"
    assert found[0].evidence == ["node2: iptables -A DOCKER-USER -p tcp -m tcp --dport 9090 -j REJECT "
                                 "--reject-with icmp-port-unreachable"]


def test_must_not_reach_checks_wait_less_but_still_cover_a_lost_packet() -> None:
    """Silence proves a negative check, so its wait is verify's critical path: 3 s for http (a DNS query and a
    SYN are each sent again after 1 s), 2 s for tcp (nc's own), the full waits for checks that must answer."""
    checks = [Check("c1", Scope(4), "db", "u", "http", ["http", "http://upstream.lab/"], expect=False),
              Check("c2", Scope(4), "edge", "u", "http", ["http", "http://upstream.lab/"]),
              Check("c3", Scope(3), "edge", "web", "tcp", ["tcp", "web", "80"], expect=False)]
    lines = probe.script(checks).splitlines()
    assert "(T=3; http c1 http://upstream.lab/) &" in lines
    assert "http c2 http://upstream.lab/ &" in lines and "(T=2; tcp c3 web 80) &" in lines
    lib = probe.script([])
    assert 'timeout "${T:-5}" wget' in lib and 'nc -w "${T:-2}"' in lib


def test_a_check_repeated_in_one_source_runs_once_and_both_get_its_answer() -> None:
    """The example's db has a derived and a declared must-not-reach check to the same URL: one wget, two results."""
    w = Where("ctr", "node3", "db1")
    cs = [Check("c1", Scope(4), "db", "u", "http", ["http", "http://upstream.lab/"], False, where=w),
          Check("c2", Scope(5), "db", "u", "http", ["http", "http://upstream.lab/"], False, where=w),
          Check("c3", Scope(4), "db", "u", "http", ["http", "http://upstream.lab/"], True, where=w)]
    lines = probe.script(cs).splitlines()
    assert "(T=3; http c1 http://upstream.lab/) &" in lines and not any(" c2 " in ln for ln in lines)
    assert "http c3 http://upstream.lab/ &" in lines  # must reach: a different wait, so its own run
    probe.parse("@@ c1 timeout no answer within 3s\n@@ c3 ok hi\n", cs)
    assert [(c.result, c.ok) for c in cs] == [("timeout", True), ("timeout", True), ("ok", True)]


class _Recorder:
    """A transport that records what is sent and answers a probe with every check's id as ok."""

    def __init__(self, name: str, sent: list[tuple[str, str]]) -> None:
        self.name, self.sent = name, sent
        self.logs: dict[str, list[str]] = {}
        self.lost = False  # the detached probe's container is gone when its output is read

    def run(self, command: str, **_: object) -> Result:
        self.sent.append((self.name, command))
        if command == "sh -s":  # the probe image is there
            return Result(self.name, command, 0, "present\n", "")
        ids = re.findall(r"\b(c\d+)\b", command)
        name = re.search(r"dnet-probe-\w+-\d+", command)
        if command.startswith("docker run -d ") and name:  # started: its answers come with docker logs
            self.logs[name[0]] = ids
            return Result(self.name, command, 0, "0123abcd\n", "")
        if command.startswith("docker logs") and name:
            ids = self.logs.pop(name[0])
            if self.lost:  # the command itself, in a real shell, with a docker whose logs fail and rm works
                fake = 'docker() { if [ "$1" = logs ]; then echo "Error: No such container: $3" >&2; return 1; fi; }'
                p = subprocess.run(["sh", "-c", f"{fake}\n{command}"], capture_output=True, text=True)
                return Result(self.name, command, p.returncode, p.stdout, p.stderr)
        return Result(self.name, command, 0, "".join(f"@@ {i} ok fine\n" for i in ids), "")


def test_a_source_that_waits_out_silence_starts_before_every_other_source() -> None:
    """Its wait is verify's critical path: it starts detached (docker run -d) before any other probe is sent, and
    its output is collected with docker logs while the others run."""
    sent: list[tuple[str, str]] = []
    ts = {h: _Recorder(h, sent) for h in ("node1", "node3")}
    quick = [Check(f"c{i}", Scope(2), "web", "x", "tcp", ["tcp", "10.0.0.9", "80"], where=Where("ctr", "node1", "w1"))
             for i in (1, 2)]
    slow = [Check("c3", Scope(4), "db", "u", "http", ["http", "http://upstream.lab/"], False,
                  where=Where("ctr", "node3", "db1"))]
    probe.run(quick + slow, ts, lambda m: None)  # type: ignore[arg-type]
    runs = [(h, c) for h, c in sent if "docker run" in c or "docker logs" in c]
    assert runs[0][0] == "node3" and "docker run -d --log-driver json-file" in runs[0][1] and " c3 " in runs[0][1]
    assert [h for h, c in runs[1:] if "docker run --rm" in c] == ["node1"]
    assert any(h == "node3" and c.startswith("docker logs -f dnet-probe-") for h, c in runs[1:])
    assert [c.result for c in quick + slow] == ["ok", "ok", "ok"]


def test_an_engine_whose_overlay_gossip_lags_is_the_finding_for_its_overlay_paths() -> None:
    from dnet.gossip import Gap
    from dnet.verify.findings import Ctx, find

    inv = loads(EXAMPLE.read_text()).model
    cs = checks()
    lagging = [c for c in cs if c.tags.get("net") == "appnet" and "node3" in c.tags.get("pair", "").split(">")
               and not c.tags.get("mtu")]
    assert lagging
    for c in cs:
        c.result, c.detail = ("ok" if c.expect else "timeout"), "fine"
    for c in lagging:
        c.result, c.detail = "unresolved", "no answer"
    gap = Gap("appnet", "node3", ["node1", "web's task 10.77.0.3"], ["node1"])
    ctx = Ctx(inv, facts("applied"), {}, {}, {i.name: i for i in instances(inv, facts("applied"))}, 4789, [gap])
    found = find(cs, ctx)
    assert [f.cause for f in found] == ["the engines' gossip has not spread overlay appnet: node3 does not know of "
                                        "node1, web's task 10.77.0.3; their DNS and VXLAN forwarding leave these "
                                        "out, so traffic to and from them fails"]
    assert found[0].hosts == ["node1", "node3"] and set(found[0].checks) == {c.id for c in lagging}
    assert found[0].evidence == ["node3: docker network inspect -v appnet lists no node1",
                                 "node3: docker network inspect -v appnet lists no web's task 10.77.0.3"]
    assert "run verify again" in found[0].fix and "restart docker on node3" in found[0].fix
    gossip_port = next(c for c in cs if c.tags.get("swarm") == "gossip" and c.where.host == "node3"
                       and c.dst == "node1")
    gossip_port.result = "timeout"  # the port itself does not get through: that is the fix, not waiting
    for c in cs:
        c.tags.pop("finding", None)
    found = find(cs, ctx)
    assert len(found) == 1 and gossip_port.id in found[0].checks
    assert found[0].fix == ("open 7946/tcp and 7946/udp between the swarm hosts (the gossip port checks node3 -> "
                            "node1 fail: timeout), then run verify again")  # one pair: either end may block it
    gossip_port.result = "ok"
    ctx.gossip = []  # nothing known about the gossip: no such finding
    for c in cs:
        c.tags.pop("finding", None)
    assert not any("does not know" in f.cause for f in find(cs, ctx))


def test_evidence_reads_raw_table_drops_and_skips_dockers_encrypted_overlay_guard() -> None:
    from dnet.facts.evidence import parse as parse_evidence

    text = EVIDENCE.replace("@@dnet:nat", "-A INPUT -p udp -m policy --dir in --pol none -m udp --dport 4789 -m u32 "
                                          "--u32 \"0x0>>0x16&0x3c@0xc&0xffffff00=0x100100\" -j DROP\n"
                                          "@@dnet:raw\n-A DNET-FAULT -p udp -m udp --dport 4789 -m addrtype "
                                          "--dst-type LOCAL -j DROP\n@@dnet:nat")
    ev = parse_evidence("node2", text)
    assert [(r.table, r.chain, r.protocol, r.port) for r in ev.drops] == [
        ("filter", "INPUT", "udp", 4789), ("filter", "DOCKER-USER", "tcp", 9090), ("raw", "DNET-FAULT", "udp", 4789)]
    raw = ev.drops[-1]
    rule = "DNET-FAULT -p udp -m udp --dport 4789 -m addrtype --dst-type LOCAL -j DROP"
    assert (raw.command(), raw.delete()) == (f"iptables -t raw -A {rule}", f"iptables -t raw -D {rule}")


def _mesh_case(ipvs: bool) -> tuple[list[Check], list[Finding]]:
    """The example with web published in ingress mode, its only task on node1, and its port failing on node2."""
    from dnet.facts.evidence import parse as parse_evidence
    from dnet.verify.findings import Ctx, find

    inv = loads(EXAMPLE.read_text().replace("mode: host}", "mode: ingress}").replace(
        "endpoint_mode: dnsrr", "endpoint_mode: vip")).model
    fs = facts("applied")
    for f in fs.values():
        f.ipvs = ipvs
    cs = derive(inv, hosts(inv, paramiko.SSHConfig()), fs, {"upstream.lab": "192.168.77.2"})
    for c in cs:
        c.result, c.detail = ("ok" if c.expect else "timeout"), "fine"
        if c.tags.get("mode") == "ingress" and c.dst == "node2:8080":
            c.result, c.detail = "timeout", "nc: timed out"
    insts = {i.name: i for i in instances(inv, fs) if not (i.workload == "web" and i.host != "node1")}
    raw = EVIDENCE.replace("@@dnet:ip_forward\n0", "@@dnet:ip_forward\n1").replace(
        "-A INPUT -p udp -m udp --dport 4789 -j DROP\n", "").replace(
        "@@dnet:nat", "@@dnet:raw\n-A PREROUTING -p udp -m udp --dport 4789 -j DROP\n@@dnet:nat")
    ctx = Ctx(inv, fs, {"node2": parse_evidence("node2", raw)}, {}, insts, 4789)
    return cs, find(cs, ctx)


def test_an_ingress_port_failing_only_where_no_task_runs_is_the_routing_mesh() -> None:
    cs, found = _mesh_case(ipvs=True)
    mesh = [f for f in found if "routing mesh" in f.cause]
    assert len(mesh) == 1
    f = mesh[0]
    assert f.cause == ("the routing mesh on node2 does not reach service web's tasks on node1: port 8080 fails on "
                       "the nodes that run no task")
    assert f.hosts == ["node2", "node1"]
    assert f.evidence[:2] == ["web tasks run on node1",
                              "node2: iptables -t raw -A PREROUTING -p udp -m udp --dport 4789 -j DROP"]
    assert set(f.checks) == {c.id for c in cs if c.tags.get("mode") == "ingress" and not c.ok}
    assert "open udp/4789 (VXLAN) and 7946 between node2 and node1" in f.fix


def test_without_ipvs_the_mesh_finding_says_the_kernel_lacks_it() -> None:
    _, found = _mesh_case(ipvs=False)
    causes = [f.cause for f in found]
    assert ("no IPVS (ip_vs) in the kernel of node2: the routing mesh cannot work there, so service web's port 8080 "
            "answers only where a task runs") in causes


def test_a_detached_probe_whose_output_cannot_be_read_says_why() -> None:
    sent: list[tuple[str, str]] = []
    t = _Recorder("node3", sent)
    t.lost = True
    slow = [Check("c3", Scope(4), "db", "u", "http", ["http", "http://upstream.lab/"], False,
                  where=Where("ctr", "node3", "db1"))]
    probe.run(slow, {"node3": t}, lambda m: None)  # type: ignore[dict-item]
    assert slow[0].result == "error" and slow[0].detail.startswith("probe failed on node3: Error: No such container")
