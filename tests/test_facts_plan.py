"""Facts parsing and planning from recorded outputs of a real 3-node lab (fresh and applied)."""
from __future__ import annotations

import json

import paramiko
import pytest

from dnet.errors import DnetError
from dnet.facts import FactsError, HostFacts, NetworkFact, parse
from dnet.inventory import hosts, loads
from dnet.plan.diff import diff
from dnet.plan.model import NetworkRecreate, NodeAvailability, NodeLabels, SwarmJoin
from dnet.plan.world import World
from dnet.tasks import Context, swarm
from dnet.testing import FakeTransport
from tests.conftest import EXAMPLE, ROOT

DATA = ROOT / "tests" / "data"
NODES = ["node1", "node2", "node3"]


def facts(kind: str) -> dict[str, HostFacts]:
    return {n: parse(n, (DATA / f"{kind}-{n}.txt").read_text()) for n in NODES}


def world(kind: str, text: str | None = None) -> World:
    inv = loads(text or EXAMPLE.read_text()).model
    f = facts(kind)
    local: dict[str, str | None] = {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]}
    return World(inv, hosts(inv, paramiko.SSHConfig()), f, local)


def test_parse_fresh_node() -> None:
    f = facts("fresh")["node2"]
    assert f.os_id == "debian" and f.init == "sysv" and f.engine and f.engine.startswith("20.10")
    assert f.daemon == {"dns": ["192.168.77.2"]} and f.swarm_state == "inactive"
    assert {n.name for n in f.networks} == {"bridge", "host", "none"}
    assert f.images["dnet/probe:latest"].startswith("sha256:") and not f.nat_rules and not f.ipvs


def test_parse_applied_manager_and_worker() -> None:
    f = facts("applied")
    m, w = f["node1"], f["node2"]
    assert m.is_manager and m.cluster_id and len(m.nodes) == 3
    web, appnet, edge = m.service("web"), m.network("appnet"), w.container("edge")
    assert web and appnet and edge
    assert web.labels["dnet.managed"] == "true"
    assert appnet.subnets[0] == "10.77.0.0/24"
    assert not w.is_manager and w.swarm_state == "active" and w.node_id in {n.id for n in m.nodes}
    assert edge.labels["dnet.kind"] == "container"
    assert any("DNET-FWD" in r for r in m.nat_rules) and m.daemon["mtu"] == 1450


@pytest.mark.parametrize("host", ["node1", "node2"])
def test_engine_api_and_cli_read_the_same_facts(host: str) -> None:
    """The facts script reads through the Engine API (curl on the socket) when it can, else the docker CLI.

    Both outputs were recorded from the same applied host one after the other; they must parse the same.
    """
    api, cli = ((DATA / f"{kind}-{host}.txt").read_text() for kind in ("api", "cli"))
    assert '"Platform"' in api.split("@@dnet:docker")[1] and '"Swarm"' in api  # really the API's answers
    a, c = parse(host, api), parse(host, cli)
    assert a == c and a.engine and a.containers and a.networks and a.swarm.state == "active"


def test_parse_missing_docker_and_a_broken_daemon_json() -> None:
    f = parse("x", "@@dnet:docker\nMISSING\n@@dnet:daemon\n{not json\n@@dnet:networks\n\n")
    assert f.engine is None and f.engine_error == "MISSING" and f.daemon == {} and f.networks == []
    assert not f.daemon_valid


@pytest.mark.parametrize(("section", "body", "says"), [
    ("networks", "[1,\n", "cannot read its networks (not JSON"),
    ("containers", '"x"', "cannot read its containers (expected a JSON list of objects"),
    ("containers", '{"Id": "x", "Name": "a"} {"Id"', "cannot read its containers (not JSON"),
    ("containers", '[{"Id": "x"}]', "cannot read its containers ('Name' is missing)"),
    ("services", '[{"ID": "s", "Spec": {"Name": "web", "Labels": []}}]', "'Labels' is a list, expected an object"),
    ("swarm", '"active"', "cannot read its swarm state (expected a JSON object"),
])
def test_malformed_facts_are_a_host_error(section: str, body: str, says: str) -> None:
    with pytest.raises(FactsError) as exc:
        parse("node9", f"@@dnet:{section}\n{body}\n@@dnet:end\n")
    assert str(exc.value).startswith("node9: ") and says in str(exc.value)


def test_fresh_plan_is_complete_and_ordered() -> None:
    plan = diff(world("fresh"))
    assert not plan.errors
    steps = [(c.host, c.kind, c.name, c.action) for c in plan.ordered()]
    assert steps[:3] == [(n, "daemon", "/etc/docker/daemon.json", "update") for n in NODES]
    assert steps[3] == ("node1", "swarm", "swarm", "init")
    assert {s for s in steps if s[3] == "join"} == {("node2", "swarm", "swarm", "join"), ("node3", "swarm", "swarm",
                                                                                          "join")}
    assert ("node2", "network", "localnet", "create") in steps and ("node1", "service", "web", "create") in steps
    assert ("node1", "forward", "1 forwards", "rewrite") in steps and ("node3", "container", "db", "create") in steps
    assert len(steps) == 16
    assert [c.phase for c in plan.ordered()] == sorted(c.phase for c in plan.ordered())


def test_applied_plan_is_empty() -> None:
    plan = diff(world("applied"))
    assert plan.changes == [] and plan.errors == []


def test_subnet_change_names_what_it_disconnects() -> None:
    text = EXAMPLE.read_text().replace("subnet: 10.78.0.0/24", "subnet: 10.79.0.0/24")
    plan = diff(world("applied", text))
    c, svc = plan.ordered()
    assert (c.host, c.name, c.action) == ("node1", "backnet", "recreate")
    assert "container db@node3" in c.detail and "service web" in c.detail
    assert isinstance(c, NetworkRecreate) and c.containers[0].container == "db" and c.services_rm == ("web",)
    assert (svc.kind, svc.name, svc.action) == ("service", "web", "recreate")


def test_overlap_with_an_existing_network_or_route_is_refused_in_the_plan() -> None:
    w = world("applied")
    w.facts["node2"].networks.append(NetworkFact({}, "id", "theirs", "bridge", "local", ["172.30.0.0/16"], False,
                                                 False))
    w.facts["node2"].routes.append("172.30.0.128/25 dev eth7 proto kernel scope link src 172.30.0.130")
    plan = diff(w)
    assert "node2: network 'localnet' (172.30.0.0/24) overlaps existing docker network 'theirs' (172.30.0.0/16); " \
        "pick another subnet" in plan.errors
    assert any(e.startswith("node2: network 'localnet' (172.30.0.0/24) overlaps the route '172.30.0.128/25 dev eth7")
               for e in plan.errors)


def test_host_in_another_swarm_is_reported_not_skipped() -> None:
    w = world("applied")
    w.facts["node3"].swarm.node_id = "someothernode"
    plan = diff(w)
    assert any(e.startswith("node3: already in another swarm") for e in plan.errors)


def test_network_not_made_by_dnet_is_not_touched() -> None:
    w = world("applied")
    localnet = w.facts["node2"].network("localnet")
    assert localnet
    localnet.labels = {}
    plan = diff(w)
    assert any("network 'localnet' exists but was made by something other than dnet" in e for e in plan.errors)
    assert not any(c.name == "localnet" for c in plan.changes)


def test_stopped_container_is_started_and_label_drift_is_fixed() -> None:
    w = world("applied")
    db = w.facts["node3"].container("db")
    assert db
    db.running = False
    node2 = next(n for n in w.facts["node1"].nodes if n.hostname == "node2")
    node2.labels["zone"] = "z"
    plan = diff(w)
    assert {(c.name, c.action, c.detail) for c in plan.changes} == {("db", "start", "stopped"),
                                                                     ("node2", "label", "+zone=b")}


def test_removed_things_are_pruned() -> None:
    text = EXAMPLE.read_text().split("forwards:")[0].replace("  db:\n    host: node3\n", "  dbx:\n    host: node3\n")
    plan = diff(world("applied", text))
    acts = {(c.host, c.kind, c.name, c.action) for c in plan.changes}
    assert ("node3", "container", "db", "remove") in acts and ("node3", "container", "dbx", "create") in acts
    assert ("node1", "forward", "0 forwards", "remove") in acts


def test_join_token_never_reaches_errors() -> None:
    inv = loads(EXAMPLE.read_text()).model
    specs = hosts(inv, paramiko.SSHConfig())
    token = "SWMTKN-1-secretsecretsecret"
    leader = FakeTransport("node1", [(r"join-token -q", 0, f"{token}\n{token}\n10.0.0.1\n", "")])  # the CLI's way
    node2 = FakeTransport("node2", [(r"/swarm/join", 0, "400", f'{{"message": "bad token {token}"}}')])
    ctx = Context(inv, specs, facts("fresh"), {"node1": leader, "node2": node2}, "node1")
    with pytest.raises(DnetError) as exc:
        swarm.join(ctx, SwarmJoin(host="node2", role="worker"))
    text = str(exc.value) + repr(exc.value.__dict__)
    assert token not in text and "***" in text and "HTTP 400" in text
    assert token in node2.stdins[0].decode() and token not in node2.commands[0]  # used on stdin, never shown


def test_plan_json_has_no_payloads() -> None:
    plan = diff(world("fresh"))
    text = json.dumps(plan.public())
    assert "SWMTKN" not in text and '"data"' not in text


def test_a_labs_own_networks_are_never_pruned_or_destroyed() -> None:
    from dnet.plan.destroy import destroy

    w = world("applied")
    lab_net = NetworkFact({"dnet.managed": "true", "dnet.lab": "demo"}, "labid", "dnet-lab-demo", "bridge", "local",
                          ["192.168.77.0/24"], False, False)
    w.facts["node2"].networks.append(lab_net)
    assert not [c for c in diff(w).changes if c.name == "dnet-lab-demo"]
    assert not [c for c in destroy(w, leave_swarm=False).changes if c.name == "dnet-lab-demo"]
    assert [c.name for c in destroy(w, leave_swarm=False).changes if c.kind == "network"]  # its own still go


def test_availability_is_declared_and_strangers_are_reported_or_pruned() -> None:
    from dnet.facts import NodeFact

    text = EXAMPLE.read_text().replace("    roles: [worker]\n    labels: {zone: b}\n  node3:",
                                       "    roles: [worker]\n    labels: {zone: b}\n    availability: drain\n  node3:")
    w = world("applied", text)
    stranger = NodeFact({}, "zz9node", "old-box", "worker", "active", "down", "192.168.77.99")
    w.facts["node1"].nodes.append(stranger)
    plan = diff(w)
    assert [(c.name, c.detail) for c in plan.changes] == [("node2", "availability active -> drain")]
    assert plan.warnings[-1].startswith("swarm node old-box (192.168.77.99, worker, down) is not in the inventory")
    w.prune_nodes = True
    removal = [c for c in diff(w).changes if c.action == "remove"]
    assert [(c.host, c.kind, c.name) for c in removal] == [("node1", "node", "old-box")]


STALE = 'LISTEN 0      4096   *:7946 *:* users:(("dockerd",pid=344,fd=30))'


def with_gossip(kind: str, listeners: dict[str, str]) -> dict[str, HostFacts]:
    """Recorded facts with a `gossip` section (what listens on 7946/tcp) added per host."""
    return {n: parse(n, (DATA / f"{kind}-{n}.txt").read_text().replace(
        "@@dnet:end", f"@@dnet:gossip\n{listeners.get(n, '')}\n@@dnet:end")) for n in NODES}


def test_an_engine_that_left_a_swarm_but_holds_its_gossip_port_is_restarted_before_it_joins() -> None:
    """Seen on Docker 20.10 after `destroy --leave-swarm`: the host that left last keeps 7946/tcp, and joining again
    leaves it without overlay peers. Plan says so; apply restarts that engine first, then joins."""
    f = with_gossip("fresh", {"node2": STALE, "node1": STALE})
    assert f["node2"].stale_gossip and not f["node3"].stale_gossip
    inv = loads(EXAMPLE.read_text()).model
    w = World(inv, hosts(inv, paramiko.SSHConfig()), f, {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]})
    plan = diff(w)
    swarm_changes = {c.host: c for c in plan.changes if c.kind == "swarm"}
    assert swarm_changes["node1"].restart and swarm_changes["node2"].restart  # type: ignore[attr-defined]
    assert not swarm_changes["node3"].restart  # type: ignore[attr-defined]
    assert "after restarting the engine: it still holds 7946/tcp" in swarm_changes["node2"].detail
    assert "restarting" not in swarm_changes["node3"].detail and not plan.errors


def test_another_program_on_the_gossip_port_is_a_plan_error() -> None:
    f = with_gossip("fresh", {"node3": 'LISTEN 0 5 *:7946 *:* users:(("nc",pid=9,fd=3))'})
    inv = loads(EXAMPLE.read_text()).model
    w = World(inv, hosts(inv, paramiko.SSHConfig()), f, {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]})
    plan = diff(w)
    assert any(e.startswith("node3: 7946/tcp") and '"nc"' in e for e in plan.errors), plan.errors
    assert not any(c.host == "node3" and c.kind == "swarm" for c in plan.changes)


def test_a_swarm_member_listening_on_its_gossip_port_is_normal() -> None:
    f = with_gossip("applied", {n: STALE for n in NODES})
    assert not any(x.stale_gossip for x in f.values())


def test_doctor_names_an_engine_holding_a_stale_gossip_port() -> None:
    from types import SimpleNamespace

    from dnet import doctor

    s = SimpleNamespace(facts=with_gossip("fresh", {"node3": STALE}))
    found = doctor.CHECKS["gossip"].run(doctor.Exam(s, {}, NODES, False, False, {}, {}, 0, 0))  # type: ignore[arg-type]
    assert [(f.key, f.hosts) for f in found] == [("gossip-stale", ["node3"])]
    assert "dockerd" in found[0].evidence[0]


@pytest.mark.parametrize(("state", "node_id", "managers", "joins"), [
    ("pending", "n3", [("m1", "192.168.77.11")], True),  # cut off while joining this swarm
    ("error", "", [], True),  # cut off before it had an identity: in no swarm, nothing to lose
    ("error", "n3", [("x1", "10.9.9.9")], False),  # another swarm's managers: not dnet's to end
])
def test_a_join_cut_off_by_a_partition_is_left_and_joined_again(state: str, node_id: str,
                                                                managers: list[tuple[str, str]], joins: bool) -> None:
    from dnet.facts.model import SwarmFact

    f = facts("applied")
    f["node3"].swarm = SwarmFact(state, node_id, remote_managers=managers)
    inv = loads(EXAMPLE.read_text()).model
    plan = diff(World(inv, hosts(inv, paramiko.SSHConfig()), f,
                      {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]}))
    join = [c for c in plan.changes if c.host == "node3" and isinstance(c, SwarmJoin)]
    if joins:
        assert join and join[0].stuck == state and f"after leaving a join stuck in '{state}'" in join[0].detail
        assert not plan.errors
    else:
        assert not join and any(e.startswith(f"node3: swarm state is '{state}'") for e in plan.errors), plan.errors


def test_a_stuck_join_that_the_swarm_already_labelled_is_labelled_again_after_joining_anew() -> None:
    """A join cut off mid-way can leave the swarm a node with the labels an earlier run gave it; leaving and
    joining again makes a new node without them, so the same apply labels the new one."""
    from dataclasses import replace

    f = facts("applied")
    old = f["node3"].node_id
    leader_nodes = {n.id: n for n in f["node1"].nodes}
    assert leader_nodes[old].labels.get("zone") == "b"  # what the earlier run gave the old node
    f["node3"].swarm = replace(f["node3"].swarm, state="pending")
    inv = loads(EXAMPLE.read_text()).model
    plan = diff(World(inv, hosts(inv, paramiko.SSHConfig()), f,
                      {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]}))
    kinds = [(type(c).__name__, c.host) for c in plan.changes if "node3" in (c.host, c.name)]
    assert ("SwarmJoin", "node3") in kinds and ("NodeLabels", "node1") in kinds, kinds
    labels = next(c for c in plan.changes if isinstance(c, NodeLabels) and c.name == "node3")
    assert labels.add == {"zone": "b"}


def test_a_node_joining_anew_gets_its_declared_availability_in_the_same_apply() -> None:
    text = EXAMPLE.read_text().replace("    roles: [worker]\n", "    roles: [worker]\n    availability: drain\n", 1)
    plan = diff(world("fresh", text))
    av = [c for c in plan.changes if isinstance(c, NodeAvailability)]
    assert len(av) == 1 and av[0].availability == "drain", plan.changes


PROC_ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
*\t0000000A\t00000000\t0201\t0\t0\t0\t000000FF\t0\t0\t0
"""


def test_routes_read_from_proc_read_as_ip_route_starts_them() -> None:
    from dnet.facts import routes

    assert routes(PROC_ROUTE) == ["default via 192.168.0.1 dev eth0", "192.168.0.0/24 dev eth0",
                                  "172.17.0.0/16 dev docker0"]
    # a big-endian host writes its words the other way round: its masks say so
    big = PROC_ROUTE.replace("0100A8C0", "C0A80001").replace("0000A8C0", "C0A80000").replace(
        "00FFFFFF", "FFFFFF00").replace("000011AC", "AC110000").replace("0000FFFF", "FFFF0000")
    assert routes(big) == routes(PROC_ROUTE)
    assert routes("default via 10.0.0.1 dev eth0 \n") == ["default via 10.0.0.1 dev eth0 "]  # recorded `ip route`


def test_rules_from_iptables_save_read_as_iptables_s() -> None:
    from dnet.facts import rules

    text = ("*nat\n:DNET-FWD - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DNET-FWD\n"
            "-A DNET-FWD -p tcp -m tcp --dport 8080 -m comment --comment dnet -j DNAT --to-destination 10.0.0.2:80\n"
            "*mangle\n*filter\n:DNET-ALLOW - [0:0]\n-A FORWARD -j DNET-ALLOW\n")
    assert rules(text) == {
        "nat": ["-N DNET-FWD", "-A PREROUTING -m addrtype --dst-type LOCAL -j DNET-FWD",
                "-A DNET-FWD -p tcp -m tcp --dport 8080 -m comment --comment dnet -j DNAT --to-destination "
                "10.0.0.2:80"],
        "filter": ["-N DNET-ALLOW", "-A FORWARD -j DNET-ALLOW"]}
    f = parse("h", f"@@dnet:rules\n{text}@@dnet:end\n")
    assert f.nat_rules[0] == "-N DNET-FWD" and f.filter_rules == ["-N DNET-ALLOW", "-A FORWARD -j DNET-ALLOW"]


def test_mtus_read_from_sys_class_net() -> None:
    from dnet.facts import links

    assert links("/sys/class/net/eth0 1450\n/sys/class/net/lo 65536\n") == {"eth0": 1450, "lo": 65536}
    assert links("2: eth0@if9: <BROADCAST> mtu 1500 qdisc noqueue\n") == {"eth0": 1500}
